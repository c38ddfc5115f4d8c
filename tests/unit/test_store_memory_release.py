"""``FreedMemoryRelease``: when the sink asks the embedded engine to hand freed pages back.

Pure timing logic against a recording store; the real engine's effect is in
``tests/integration/test_sink_store.py``.
"""

from __future__ import annotations

import logging

from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.store import FreedMemoryRelease


class RecordingStore:
    def __init__(self, refuse: bool = False) -> None:
        self.commands: list[str] = []
        self.refuse = refuse

    def command(self, sql: str) -> None:
        self.commands.append(sql)
        if self.refuse:
            raise DatabaseError("Code: 48. DB::Exception: not implemented (NOT_IMPLEMENTED)")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_releases_at_most_once_a_period():
    store, clock = RecordingStore(), Clock()
    release = FreedMemoryRelease(store, embedded=True, every=1.0, clock=clock)
    release.tick()
    assert store.commands == []  # not in the first period
    clock.now += 1.0
    release.tick()
    release.tick()
    assert store.commands == ["SYSTEM JEMALLOC PURGE"]
    clock.now += 0.5
    release.tick()
    assert len(store.commands) == 1
    clock.now += 0.5
    release.tick()
    assert len(store.commands) == 2


def test_a_clickhouse_server_is_never_asked():
    store, clock = RecordingStore(), Clock()
    release = FreedMemoryRelease(store, embedded=False, every=1.0, clock=clock)
    for _ in range(5):
        clock.now += 2.0
        release.tick()
    assert store.commands == []


def test_an_engine_that_refuses_is_logged_once_and_not_asked_again(caplog):
    store, clock = RecordingStore(refuse=True), Clock()
    release = FreedMemoryRelease(store, embedded=True, every=1.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="roadx.sinks"):
        for _ in range(4):
            clock.now += 2.0
            release.tick()
    assert store.commands == ["SYSTEM JEMALLOC PURGE"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "NOT_IMPLEMENTED" in warnings[0]
