"""The restartable synthetic adapter's pure parts: where a resumed run continues, and its pacing."""

from __future__ import annotations

import json

import pytest

from deploy import cli
from producers.errors import GeneratorConfigError
from producers.spool import Spool
from producers.synthetic import Pacer, resume_point


@pytest.fixture
def spool(tmp_path):
    with Spool(tmp_path / "44.db") as opened:
        yield opened


def test_a_fresh_spool_resumes_from_the_start(spool):
    assert resume_point(spool, seed=7, total=100) == 0


def test_a_checkpointed_spool_resumes_after_its_generated_count(spool):
    spool.append([("t", b"k", b"v")], checkpoint=json.dumps({"seed": 7, "generated": 40}))
    assert resume_point(spool, seed=7, total=100) == 40


def test_a_spool_of_another_seed_is_refused(spool):
    spool.append([], checkpoint=json.dumps({"seed": 8, "generated": 40}))
    with pytest.raises(GeneratorConfigError, match="seed 8, not 7"):
        resume_point(spool, seed=7, total=100)


@pytest.mark.parametrize("checkpoint, message", [
    ("row-300", "not a synthetic checkpoint"),
    (json.dumps({"seed": 7}), "not a synthetic checkpoint"),
    (json.dumps([7, 40]), "not a synthetic checkpoint"),
    (json.dumps({"seed": 7, "generated": 101}), "outside 0..100"),
    (json.dumps({"seed": 7, "generated": "40"}), "outside 0..100"),
])
def test_a_checkpoint_that_is_not_a_synthetic_one_names_the_spool(spool, checkpoint, message):
    spool.append([], checkpoint=checkpoint)
    with pytest.raises(GeneratorConfigError, match=message) as caught:
        resume_point(spool, seed=7, total=100)
    assert "44.db" in str(caught.value)


def test_the_pacer_sleeps_only_when_generation_runs_ahead_of_the_rate():
    now, slept = [100.0], []
    pacer = Pacer(rate=100, clock=lambda: now[0], sleep=slept.append)
    pacer(500)  # the first call (possibly far into a resumed run) sets the origin
    now[0] = 100.5
    pacer(600)  # 100 events in 0.5 s: 0.5 s ahead
    now[0] = 103.0
    pacer(700)  # 200 events in 3 s: behind, no sleep
    assert slept == [pytest.approx(0.5)]


def test_a_zero_rate_never_sleeps():
    slept = []
    pacer = Pacer(rate=0, sleep=slept.append)
    for generated in (10, 10_000, 20_000):
        pacer(generated)
    assert slept == []


def test_the_adapter_needs_events_and_seed():
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["worker", "synthetic", "--events", "10"])
    args = cli.build_parser().parse_args(["worker", "synthetic", "--events", "10", "--seed", "3", "--rate", "50"])
    assert (args.events, args.seed, args.rate, args.chunk) == (10, 3, 50.0, 200)


@pytest.mark.parametrize("argv, message", [
    (["--events", "-1", "--seed", "1"], "--events must not be negative"),
    (["--events", "10", "--seed", "1", "--rate", "-5"], "--rate must not be negative"),
])
def test_bad_options_exit_2_with_a_clear_error(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("ROADX_BOOTSTRAP_SERVERS", raising=False)
    assert cli.main(["worker", "synthetic", *argv]) == 2
    assert message in capsys.readouterr().err


def test_without_a_broker_the_adapter_says_which_setting_is_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("ROADX_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path))
    assert cli.main(["worker", "synthetic", "--events", "10", "--seed", "1"]) == 2
    assert "ROADX_BOOTSTRAP_SERVERS" in capsys.readouterr().err
