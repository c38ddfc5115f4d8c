"""The whole line from the command line: demo, query, up/down, and bad input to the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def roadx(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie awaiting its reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    result = roadx("demo", "--provinces", "4", "--events", "4000", "--seed", "7",
                   "--data-dir", str(data_dir), "--json")
    return data_dir, result


def test_demo_reconciles_and_exits_zero(demo_run):
    _data_dir, result = demo_run
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["reconciled"] and summary["problems"] == []
    assert summary["produced"] == 4000
    assert summary["produced"] == summary["stored_events"] + summary["duplicates_dropped"] + summary["rejected"]
    assert summary["duplicates_dropped"] > 0 and summary["rejected"] > 0
    assert summary["routed_by_target"] and summary["routed_by_target"] == summary["expected_routed_by_target"]
    # cases naming a ship a navigation administration registered go to that administration
    assert summary["routed_by_target"].get("CJ", 0) + summary["routed_by_target"].get("ZJ", 0) > 0
    assert summary["table_rows"]["current_vehicles"] > 0
    assert "drained" in result.stderr
    findings = summary["findings_by_dimension"]
    assert findings and sum(findings.values()) >= summary["rejected"] and set(findings) <= {
        "completeness", "conformity", "relational", "provenance"}
    assert summary["unchanged"] >= 0 and summary["stale"] >= 0
    service = summary["service"]
    assert service["checked"] > 0 and service["agreed"] == service["checked"], service
    assert "answers agree with the store" in result.stderr
    cases = summary["cases"]
    assert cases["workflows"] > 0 and cases["received"] == cases["workflows"]
    assert 0 < cases["answered"] == cases["expected_answered"] < cases["workflows"]


def test_query_answers_from_the_store_after_the_demo(demo_run):
    data_dir, _ = demo_run
    result = roadx("query", "SELECT count() AS n FROM roadx.change_log FINAL", "--data-dir", str(data_dir),
                   "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(demo_run[1].stdout)
    assert json.loads(result.stdout) == [{"n": summary["stored_events"]}]


def test_demo_run_again_in_the_same_data_dir_reconciles_again(demo_run):
    """A new embedded broker has none of the old changelogs: stream state left from the first run is not used."""
    data_dir, first = demo_run
    again = roadx("demo", "--provinces", "4", "--events", "4000", "--seed", "7", "--data-dir", str(data_dir), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    summary, before = json.loads(again.stdout), json.loads(first.stdout)
    assert summary["reconciled"] and summary["stored_events"] == before["stored_events"] > 0


def test_query_with_bad_sql_is_a_clear_error(demo_run):
    data_dir, _ = demo_run
    result = roadx("query", "SELEC nonsense", "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert result.stderr.startswith("roadx: error:") and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (("demo", "--provinces", "0"), "--provinces must be between 1 and 31"),
    (("demo", "--events", "0"), "--events must be at least 1"),
    (("demo", "--duplicate-rate", "0.9"), "--duplicate-rate must be in"),
])
def test_demo_rejects_bad_options(args, message, tmp_path):
    result = roadx(*args, "--data-dir", str(tmp_path))
    assert result.returncode == 2 and message in result.stderr


def test_query_without_a_store_says_to_run_the_demo(tmp_path):
    result = roadx("query", "SELECT 1", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "run `roadx demo` first" in result.stderr


def test_up_then_down_leaves_no_process_behind(tmp_path):
    up = roadx("up", "--data-dir", str(tmp_path), timeout=120)
    assert up.returncode == 0, up.stderr
    record = json.loads((tmp_path / "stack.json").read_text())
    pids = [record["supervisor_pid"], *record["pids"].values()]
    try:
        assert all(pid_alive(p) for p in pids)
        again = roadx("up", "--data-dir", str(tmp_path), timeout=60)
        assert again.returncode == 2 and "already running" in again.stderr
        live = roadx("query", "SELECT 1 AS one", "--data-dir", str(tmp_path), "--format", "tsv")
        assert live.returncode == 0 and live.stdout.split() == ["one", "1"], live.stderr
    finally:
        down = roadx("down", "--data-dir", str(tmp_path), timeout=60)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(pid_alive(p) for p in pids)
    assert not (tmp_path / "stack.json").exists()


def test_killing_the_supervisor_takes_its_parts_with_it(tmp_path):
    up = roadx("up", "--data-dir", str(tmp_path), timeout=120)
    assert up.returncode == 0, up.stderr
    record = json.loads((tmp_path / "stack.json").read_text())
    parts = list(record["pids"].values())
    os.kill(record["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(pid_alive(p) for p in parts):
        time.sleep(0.2)
    alive = [p for p in parts if pid_alive(p)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


def test_a_crashed_part_stops_the_whole_stack(tmp_path):
    up = roadx("up", "--data-dir", str(tmp_path), timeout=120)
    assert up.returncode == 0, up.stderr
    record = json.loads((tmp_path / "stack.json").read_text())
    everyone = [record["supervisor_pid"], *record["pids"].values()]
    try:
        os.kill(record["pids"]["sink"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(pid_alive(p) for p in everyone):
            time.sleep(0.2)
        assert [p for p in everyone if pid_alive(p)] == []
        assert not (tmp_path / "stack.json").exists()
        log = (tmp_path / "logs" / "supervisor.log").read_text()
        assert "the sink process exited" in log
    finally:
        for pid in everyone:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
