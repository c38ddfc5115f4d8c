"""Adapter metrics against the real broker: what was read, what the broker acknowledged, and the spool depth."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

import pytest
from prometheus_client import REGISTRY

from deploy.broker import free_port
from deploy.errors import StackError
from deploy.scrape import scrape
from deploy.topics import create_topics, exchange_topics
from producers.database.adapter import DbAdapter, DbAdapterConfig
from schemas.settings import Settings

from test_file_adapter import OPERATOR_HEADER, REPO, consume, drop_file, operators, watch_command, watch_env

pytestmark = pytest.mark.integration
READ, SENT, DEPTH = "roadx_adapter_events_read_total", "roadx_adapter_events_sent_total", "roadx_adapter_spool_depth"


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=("44", "11"),
                    topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    return made


def adapter_samples(address: str, province: str, adapter: str) -> dict[str, float]:
    """read / sent / depth of one province and adapter as the endpoint serves them."""
    wanted = {"province": province, "adapter": adapter}
    return {name: value for name, labels, value in scrape(address) if name in (READ, SENT, DEPTH) and labels == wanted}


def test_watching_adapter_serves_read_sent_and_spool_depth_that_agree_with_the_rows(settings, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = operators(40, seed=3)
    port = free_port()
    proc = subprocess.Popen(watch_command(drop), env=watch_env(settings, ROADX_METRICS_PORT=str(port)), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        drop_file(drop, "operator_20240601.csv", OPERATOR_HEADER, rows)
        deadline, seen = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the adapter exited with {proc.returncode}"
            try:
                seen = adapter_samples(f"127.0.0.1:{port}", "44", "files")
            except StackError:  # not serving yet
                seen = {}
            if seen.get(SENT) == len(rows) and seen.get(DEPTH) == 0:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert seen == {READ: len(rows), SENT: len(rows), DEPTH: 0}
    assert len(consume(settings, "44", expected=len(rows))) == len(rows)


def sample(name: str, province: str, adapter: str) -> float:
    return REGISTRY.get_sample_value(name, {"province": province, "adapter": adapter}) or 0.0


def test_database_adapter_counts_each_row_read_and_acknowledged(settings, tmp_path):
    path = tmp_path / "province.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE operators (uscc TEXT, name TEXT, region_code TEXT, status TEXT, version INTEGER)")
        db.executemany("INSERT INTO operators VALUES (?, ?, ?, 'active', ?)",
                       [(row[0], row[1], row[2], i) for i, row in enumerate(operators(5, seed=4))])
    config = DbAdapterConfig(province="11", url=f"sqlite:///{path}", table="operators", entity="operator",
                             key="uscc", cursor="version")
    before = {name: sample(name, "11", "db") for name in (READ, SENT)}
    adapter = DbAdapter(settings, config)
    try:
        report = adapter.run_once(timeout=60)
    finally:
        adapter.close()
    assert (report.read, report.acked) == (5, 5)
    assert sample(READ, "11", "db") - before[READ] == 5
    assert sample(SENT, "11", "db") - before[SENT] == 5
    assert sample(DEPTH, "11", "db") == 0
