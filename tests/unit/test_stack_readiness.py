"""The embedded stack is ready when every part it announces answers; what `roadx up` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.commands.stack import describe_up
from deploy.errors import StackError
from deploy.readiness import Part, wait_ready
from deploy.stack import StackInfo
from schemas.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def answers_after(tries: int):
    calls = []

    def probe() -> None:
        calls.append(1)
        if len(calls) <= tries:
            raise StackError("connection refused")
    return probe, calls


def test_ready_once_every_part_answered_each_probed_until_it_did():
    clock = Clock()
    broker, broker_calls = answers_after(0)
    store, store_calls = answers_after(3)
    wait_ready([Part("broker", "b", broker), Part("store", "s", store)], 10, clock=clock, sleep=clock.sleep)
    assert (len(broker_calls), len(store_calls)) == (1, 4)


def test_a_part_silent_past_the_timeout_is_named_with_its_last_answer():
    clock = Clock()
    broker, _ = answers_after(0)
    store, _ = answers_after(10_000)
    with pytest.raises(StackError) as caught:
        wait_ready([Part("broker", "127.0.0.1:1", broker), Part("store", "http://127.0.0.1:2/", store)], 5,
                   clock=clock, sleep=clock.sleep)
    assert str(caught.value) == "not ready within 5s: store at http://127.0.0.1:2/: connection refused"
    assert clock.now == pytest.approx(5, abs=0.2)


def test_a_part_that_dies_ends_the_wait_at_once():
    clock = Clock()
    store, calls = answers_after(10_000)
    checks = []

    def check_alive() -> None:
        checks.append(1)
        if len(checks) == 3:
            raise StackError("the sink process exited with code 1")
    with pytest.raises(StackError, match="the sink process exited"):
        wait_ready([Part("store", "s", store)], 60, check_alive, clock=clock, sleep=clock.sleep)
    assert len(calls) == 2 and clock.now < 1


def info(store_http: str = "127.0.0.1:8124") -> StackInfo:
    return StackInfo(supervisor_pid=42, bootstrap_servers="127.0.0.1:9092", data_dir="/x",
                     metrics={"streams": "127.0.0.1:9101", "sink": "127.0.0.1:9102"}, store_http=store_http)


def test_up_prints_the_store_url_with_curl_and_clickhouse_connect_examples():
    text = describe_up(Settings(data_dir=Path("my data")), info(), Path("my data/logs"))
    lines = text.splitlines()
    assert "  sql      http://127.0.0.1:8124/ (ClickHouse HTTP, read-only, database roadx)" in lines
    assert "  roadx query 'SELECT count() FROM change_log' --data-dir 'my data'" in lines
    assert "  curl --data-binary 'SELECT count() FROM change_log' http://127.0.0.1:8124/" in lines
    assert "  clickhouse_connect.get_client(host='127.0.0.1', port=8124)" in lines
    assert lines[-1] == "stop it with: roadx down --data-dir 'my data'"


def test_up_on_a_clickhouse_server_names_it_without_its_password():
    settings = Settings(data_dir=Path("d"), clickhouse_url="http://etl:s3cret@ch.example:8123/x",
                        clickhouse_database="exchange")
    text = describe_up(settings, info(store_http=""), Path("d/logs"))
    assert "  store    http://ch.example:8123/x (database exchange)" in text.splitlines()
    assert "s3cret" not in text and "curl" not in text
