"""``roadx bench --scale`` on a small load: three rounds through the real worker and sink, the
curve at each point, the ratios and memory, every entity in the store (else the run fails).

No timing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import json
import re

import pytest

from deploy.bench.report import SCALE
from deploy.bench.scale import point_label, rounds, scale_figure
from deploy.errors import DeployError

from test_bench import run_bench

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_a_small_initial_load_gives_the_curve_its_ratios_and_memory(tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert run_bench("--scale", "--scale-points", "3000,9000", "--scale-round", "3000", "--json", str(out)) == 0
    printed = capsys.readouterr()
    figures = json.loads(out.read_text("utf-8"))["figures"]
    per_point = {scale_figure(part, n) for part in ("worker", "sink") for n in (3_000, 9_000)}
    assert set(figures) == set(SCALE) | per_point | {"scale_store_bytes_3k", "scale_store_bytes_9k"}
    for key, figure in figures.items():
        assert figure["value"] > 0, key
        assert figure["label"] in printed.out, key
    assert "round 2: 3,000 events, state of 6,000 before it" in figures[scale_figure("worker", 9_000)]["note"]
    each_round = re.findall(r"scale: round (\d+): worker [\d,]+ events/s, peak RSS [\d,]+ MiB; "
                            r"sink [\d,]+ events/s, peak RSS [\d,]+ MiB", printed.err)
    assert each_round == ["0", "1", "2"]  # what every round took, so the memory's growth can be read


def test_rounds_end_on_every_point_and_points_name_their_size():
    assert rounds((1_000_000, 2_500_000), 1_000_000) == [(0, 1_000_000), (1_000_000, 1_000_000),
                                                         (2_000_000, 500_000)]
    assert [point_label(n) for n in (1_000_000, 20_000_000, 500_000, 2_500)] == ["1M", "20M", "500k", "2500"]


@pytest.mark.parametrize("argv,message", [
    (("--scale", "--scale-points", "9000,3000"), "--scale-points must be increasing"),
    (("--scale", "--scale-points", "0"), "--scale-points must be increasing"),
    (("--scale", "--scale-round", "0"), "--scale-round positive"),
    (("--scale", "--phases", "pipeline"), "give it or --phases, not both"),
])
def test_a_bad_scale_option_is_refused_before_anything_starts(argv, message):
    with pytest.raises(DeployError, match=message):
        run_bench(*argv)
