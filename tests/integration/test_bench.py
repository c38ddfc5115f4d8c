"""``roadx bench`` on a small run: every figure is measured, positive, in the table and the JSON file.

No timing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.commands import bench as bench_commands
from deploy.bench import measure
from deploy.bench.report import ALL_FIGURES, SCALE, TARGETS
from deploy.errors import DeployError
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def run_bench(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="roadx")
    bench_commands.add_parser(parser.add_subparsers(dest="command"), lambda p: p)
    args = parser.parse_args(["bench", *argv])
    return args.handler(Settings(provinces=("11", "44", "31", "51")), args)


@pytest.mark.timeout(900)
def test_small_bench_prints_every_figure_and_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(measure, "STAGE_SAMPLE", 1_500)  # the stage alone holds at most this many in memory
    out = tmp_path / "bench.json"
    status = run_bench("--events", "2000", "--state-entities", "10000", "--faust-events", "2000",
                       "--latency-seconds", "2", "--service-entities", "2000", "--service-seconds", "1",
                       "--json", str(out))
    printed = capsys.readouterr()
    assert status == 0
    data = json.loads(out.read_text("utf-8"))
    unmeasured = set(SCALE)  # the initial load runs alone (--scale)
    if importlib.util.find_spec("quixstreams") is None:  # the Quix peer is the bench extra
        unmeasured |= {"peer_quix", "cpu_peer_quix", "rss_peer_quix_mib"}
    assert set(data["figures"]) == set(ALL_FIGURES) - unmeasured
    for key, figure in data["figures"].items():
        # 0 is a finding for the highest rate under the latency bound: no rate offered stayed under it
        assert figure["value"] > 0 or (key == "latency_max_rate" and "none stayed under" in figure["note"]), key
        assert figure["label"] in printed.out, key
    assert {t["figure"] for t in data["targets"]} == {t.figure for t in TARGETS}
    assert all(t["met"] in (True, False) for t in data["targets"] if t["figure"] not in unmeasured)
    assert data["figures"]["stream_worker"]["ratios"]["faust_agent"] > 0
    assert data["figures"]["stage_alone"]["note"].startswith("1,500 events in batches of ")
    assert data["machine"]["nproc"] >= 1
    assert data["options"]["service_entities"] == 2000
    assert "all answered 200" in data["figures"]["service_p99_1000_ms"]["note"]
    measured, sent = re.match(r"([\d,]+) rows measured of ([\d,]+) sent",
                              data["figures"]["latency_p99_ms"]["note"]).groups()
    assert measured == sent  # every paced event is new to the line: each is stored, each measured
    assert "bench: " in printed.err  # progress went to stderr


def test_bench_refuses_too_few_events_before_starting_anything(capsys):
    with pytest.raises(DeployError, match="--events must be at least 100"):
        run_bench("--events", "5")


def test_bench_refuses_a_register_too_small_for_the_service_phase(capsys):
    with pytest.raises(DeployError, match="--service-entities must be at least 2"):
        run_bench("--service-entities", "1")


def test_bench_refuses_an_unknown_phase_before_starting_anything(capsys):
    with pytest.raises(DeployError, match="--phases: servce is not a phase of the bench; the phases are ceilings"):
        run_bench("--phases", "service,servce")


@pytest.mark.timeout(600)
def test_one_phase_alone_gives_only_its_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert run_bench("--phases", "service", "--service-entities", "2000", "--service-seconds", "1",
                     "--json", str(out)) == 0
    figures = json.loads(out.read_text("utf-8"))["figures"]
    assert set(figures) == {key for key in ALL_FIGURES if key.startswith(("service_", "rss_service"))}


@pytest.mark.timeout(300)
def test_a_terminated_bench_stops_its_broker_and_removes_its_work_directory(tmp_path):
    env = {**os.environ, "ROADX_DATA_DIR": str(tmp_path / "data"), "ROADX_PROVINCES": "11,44"}
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "bench", "--phases", "ceilings", "--events", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()  # "bench: embedded broker on …, work directory …"
        found = re.search(r"embedded broker on [\d.]+:\d+, work directory (\S+)", first)
        assert found, first
        work = Path(found.group(1))
        assert work.is_dir()
        started = _children(proc.pid)
        assert started, "the bench started no broker"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "roadx: interrupted" in err
    assert not work.exists()
    assert not [pid for pid in started if _alive(pid)]


def _children(parent: int) -> list[int]:
    """Pids of the processes whose parent is ``parent``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
