"""An XLSX of ships from 长江航务管理局 (party CJ) with good and bad rows, end to end: roadx produce
files → the real stream worker → the real sink → ``current_ships``, the hub's receipt beside the
file; and roadx check on the same file gives the rows and rules the adapter and the hub gave."""

from __future__ import annotations

import json
import time

import pytest

from deploy import check, cli
from deploy.topics import create_topics, exchange_topics
from schemas.settings import Settings, to_environ
from sinks.sink import run_sink
from sinks.store import open_store
from streams.worker import run as run_stream_worker

from test_adapter_to_store import Background
from test_file_inbox_water import PARTY, ROWS, report_rows, ships_xlsx

pytestmark = pytest.mark.integration
WAIT_SECONDS = 120


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=("44", PARTY),
                    topic_prefix=f"t{unique}.", partitions=1, national_partitions=2, sink_flush_seconds=0.3,
                    stream_batch_size=100)
    create_topics(bootstrap, exchange_topics(made))
    return made


def stored(settings: Settings, workers: list[Background]) -> list[tuple]:
    """The ships of ``current_ships`` once the hub's findings on them are stored too."""
    db, deadline = settings.clickhouse_database, time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert all(worker.alive() for worker in workers), [w.failure for w in workers]
        store = open_store(settings)
        try:
            ships = store.query(f"SELECT ship_id, imo, mmsi, ship_type, status, province FROM {db}.current_ships "
                                f"ORDER BY ship_id").result_rows
        except Exception:  # the sink has not made its views yet
            ships = []
        finally:
            store.close()
        if len(ships) == 3:
            return ships
        time.sleep(0.3)
    raise AssertionError("the store does not hold the three good ships")


def test_an_xlsx_of_ships_from_changjiang_loads_into_the_store_and_roadx_check_finds_what_the_line_found(
        monkeypatch, settings, tmp_path):
    ships = ships_xlsx(tmp_path / "长江航务管理局-营运船舶-20240601.xlsx")
    checked = check.check_file(ships, PARTY, "ship", check.CheckOptions(report=tmp_path / "check.errors.csv"))
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    workers = [Background("stream-worker", lambda stop: run_stream_worker(settings, stop)),
               Background("sink", lambda stop: run_sink(settings, stop))]
    try:
        # Exit 1: the file had bad rows (the good ones are loaded and receipted all the same).
        assert cli.main(["produce", "files", "--party", PARTY, "--entity", "ship", "--receipt-seconds", "60",
                         str(ships)]) == 1
        found = stored(settings, workers)
    finally:
        for worker in workers:
            worker.stop()

    assert found == [("CN20190001", "9074729", "413000001", "bulk_carrier", "active", PARTY),
                     ("CN20190002", None, "413000002", "container", "active", PARTY),
                     ("CN20190005", None, "413000005", "tug", "laid_up", PARTY)]
    receipt = json.loads(ships.with_name(ships.name + ".receipt.json").read_text("utf-8"))
    assert (receipt["party"], receipt["status"], receipt["expected"], receipt["accepted"]) == (PARTY, "accepted", 3, 3)
    # The same rows, the same rules: the adapter's report, and what the hub found on the rows it took in.
    bad = sorted((number, rule) for number, (_cells, rule) in enumerate(ROWS, start=2) if rule)
    adapter_report = ships.with_name(ships.name + ".errors.csv")
    assert report_rows(tmp_path / "check.errors.csv") == report_rows(adapter_report)
    assert sorted((f.row, f.rule) for f in checked.findings if f.stage == "adapter" and f.rule != "normalised") == bad
    store = open_store(settings)
    try:
        hub = {(str(key), str(rule)) for key, rule in store.query(
            f"SELECT entity_key, rule FROM {settings.clickhouse_database}.quality_findings "
            f"WHERE province = '{PARTY}' AND dimension != 'relational'").result_rows}
    finally:
        store.close()
    assert {(f.key, f.rule) for f in checked.findings if f.stage == "hub" and f.dimension != "relational"} == hub
    assert checked.rejected_rows == 2 and checked.rows == 5
