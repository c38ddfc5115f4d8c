"""Daily files end to end: a GBK CSV with Chinese headers and an XLSX go through ``roadx produce files``,
the real stream stage and the sink into a chDB store, every row intact."""

from __future__ import annotations

import csv
import json
import random
import threading
import time
from pathlib import Path

import pytest
from openpyxl import Workbook

from deploy import cli
from deploy.topics import create_topics, exchange_topics
from producers.synthetic import identities
from schemas.settings import Settings, to_environ
from sinks.sink import run_sink
from sinks.store import open_store
from streams.worker import run as run_stream_worker

pytestmark = pytest.mark.integration

OPERATOR_HEADER = ["统一社会信用代码", "业户名称", "行政区划代码", "经营许可证号", "经营范围", "状态"]
VEHICLE_HEADER = ["车牌号码", "车牌颜色", "车辆类型", "统一社会信用代码", "核定座位", "核定吨位", "状态"]
WAIT_SECONDS = 90


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=("44", "11"),
                    topic_prefix=f"t{unique}.", partitions=1, national_partitions=2, sink_flush_seconds=0.3,
                    stream_batch_size=100)
    create_topics(bootstrap, exchange_topics(made))
    return made


def operator_rows() -> list[list]:
    rng = random.Random(44)
    return [[identities.make_uscc(rng, "440300"), f"深圳市鹏程{i}号运输有限公司", "440300",
             f"粤交运管许可深字44030000{i:04d}号", "道路普通货物运输", "正常"] for i in range(4)]


def vehicle_rows(owners: list[str]) -> list[list]:
    return [[f"粤B{i:05d}", "黄", "普通货车" if i % 2 else "旅游客车", owners[i % len(owners)],
             "" if i % 2 else str(30 + i), f"{18 + i}吨" if i % 2 else "", "营运"] for i in range(1, 7)]


def write_operators_xlsx(path: Path, rows: list[list]) -> Path:
    book = Workbook()
    book.active.append(OPERATOR_HEADER)
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def write_vehicles_gbk_csv(path: Path, rows: list[list]) -> Path:
    with open(path, "w", encoding="gbk", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(VEHICLE_HEADER)
        writer.writerows(rows)
    return path


def produce_files(monkeypatch, settings: Settings, entity: str, path: Path, receipt_seconds: str = "60") -> int:
    """``roadx produce files``: it waits ``receipt_seconds`` for the hub's receipt ("0": the line runs no sink)."""
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    return cli.main(["produce", "files", "--province", "44", "--entity", entity, "--receipt-seconds", receipt_seconds,
                     str(path)])


class Background:
    """Runs ``target(stop)`` in a thread; ``stop`` ends it; a failure is re-raised on stop."""

    def __init__(self, name: str, target) -> None:
        self.stop_event, self.failure = threading.Event(), []

        def run() -> None:
            try:
                target(self.stop_event)
            except BaseException as exc:  # re-raised in the test by stop()
                self.failure.append(exc)

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        if self.failure:
            raise self.failure[0]
        assert not self.thread.is_alive(), f"{self.thread.name} did not stop"


def wait_for_rows(settings: Settings, expected: int, workers: list[Background]) -> None:
    """Poll the store until ``change_log`` holds ``expected`` rows (or a worker died)."""
    db = settings.clickhouse_database
    store = open_store(settings)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        count = 0
        while time.monotonic() < deadline:
            for worker in workers:
                assert worker.alive(), f"{worker.thread.name} stopped: {worker.failure}"
            try:
                count = store.query(f"SELECT count() FROM {db}.change_log").result_rows[0][0]
            except Exception:  # the sink has not created its tables yet
                count = 0
            if count >= expected:
                return
            time.sleep(0.3)
        raise AssertionError(f"the store holds {count} of {expected} changes after {WAIT_SECONDS}s")
    finally:
        store.close()


def test_gbk_csv_with_chinese_headers_and_an_xlsx_load_end_to_end_into_the_store(monkeypatch, settings, tmp_path):
    operators = operator_rows()
    vehicles = vehicle_rows([row[0] for row in operators])
    xlsx = write_operators_xlsx(tmp_path / "经营业户_20240601.xlsx", operators)
    gbk = write_vehicles_gbk_csv(tmp_path / "营运车辆_20240601.csv", vehicles)
    assert gbk.read_bytes().decode("gbk").startswith("车牌号码")  # really GBK on disk

    workers = [Background("stream-worker", lambda stop: run_stream_worker(settings, stop)),
               Background("sink", lambda stop: run_sink(settings, stop))]
    try:
        # Each file is a submission: produce files returns once the hub's receipt is beside it.
        assert produce_files(monkeypatch, settings, "operator", xlsx) == 0
        assert produce_files(monkeypatch, settings, "vehicle", gbk) == 0
        wait_for_rows(settings, len(operators) + len(vehicles), workers)
    finally:
        for worker in workers:
            worker.stop()
    for path, rows in ((xlsx, operators), (gbk, vehicles)):
        receipt = json.loads(path.with_name(path.name + ".receipt.json").read_text("utf-8"))
        assert (receipt["status"], receipt["expected"], receipt["accepted"], receipt["rejected"]) == (
            "accepted", len(rows), len(rows), 0)

    db = settings.clickhouse_database
    store = open_store(settings)
    try:
        stored_operators = store.query(
            f"SELECT uscc, name, region_code, permit_no, business_scope, status, province, last_op "
            f"FROM {db}.current_operators ORDER BY uscc").result_rows
        stored_vehicles = store.query(
            f"SELECT entity_key, plate, plate_color, vehicle_class, operator_uscc, seats, tonnage_kg, status, "
            f"province FROM {db}.current_vehicles ORDER BY plate").result_rows
        log = store.query(f"SELECT source_system, source_table, op, count() FROM {db}.change_log "
                          f"GROUP BY source_system, source_table, op").result_rows
        dead_letters = store.query(f"SELECT count() FROM {db}.dlq").result_rows[0][0]
    finally:
        store.close()

    assert stored_operators == sorted(
        (r[0], r[1], r[2], r[3], r[4], "active", "44", "c") for r in operators)
    expected_vehicles = [
        (f"vehicle:{r[0]}:2", r[0], 2, "truck" if i % 2 else "charter_bus", r[3],
         None if i % 2 else 30 + i, (18 + i) * 1000 if i % 2 else None, "active", "44")
        for i, r in enumerate(vehicles, start=1)]
    assert stored_vehicles == sorted(expected_vehicles, key=lambda v: v[1])
    assert sorted(log) == sorted([("file-adapter", gbk.name, "c", len(vehicles)),
                                  ("file-adapter", xlsx.name, "c", len(operators))])
    assert dead_letters == 0
