"""The daily file adapter against the real embedded broker: files in, signed change events out."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from openpyxl import Workbook

from deploy import cli
from deploy.broker import free_port
from deploy.topics import create_topics, exchange_topics
from producers.synthetic import identities
from producers.errors import PublishError
from producers.files.adapter import FileAdapter, FileAdapterOptions
from producers.files.watch import DropFolder
from producers.files.headers import load_mapping
from producers.files.snapshot import SnapshotStore
from producers.spool import Spool
from producers.files.tabular import ReadLimits
from schemas import signing
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings, to_environ

pytestmark = pytest.mark.integration
PROVINCES = ("44", "11")
OPERATOR_HEADER = ["统一社会信用代码", "业户名称", "行政区划代码", "经营许可证号", "经营范围", "状态"]
VEHICLE_HEADER = ["车牌号码", "车牌颜色", "车辆类型", "统一社会信用代码", "核定座位", "核定吨位", "状态"]
OWNER = "91350100M000100Y43"


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=PROVINCES,
                    topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    return made


def consume(settings: Settings, province: str, expected: int, timeout: float = 60) -> list[dict]:
    """Every event on ``prov.<P>.changes`` (signature checked), reading a little past ``expected``."""
    consumer = Consumer({
        **settings.kafka_conf(), "group.id": f"{settings.topic_prefix}check", "enable.auto.commit": False,
        "session.timeout.ms": settings.session_timeout_ms, "heartbeat.interval.ms": 1000,
    })
    codec, key = EventCodec(EmbeddedRegistry()), settings.province_key(province)
    topic = settings.topics.province_changes(province)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(5000, 0.5) if m.error() is None]
        messages += [m for m in consumer.consume(5000, 1.0) if m.error() is None]
    finally:
        consumer.close()
    events = []
    for message in messages:
        assert signing.verify(message.value(), key)
        event = codec.decode(message.value())[1]
        assert message.key() == event["entity_key"].encode("utf-8")
        events.append(event)
    return events


def operators(n: int, seed: int = 1) -> list[list[str]]:
    rng = random.Random(seed)
    return [[identities.make_uscc(rng, "440300"), f"深圳顺达{i}运输有限公司", "440300", f"粤交运管许可深字44030000{i:04d}号",
             "道路普通货物运输", "正常"] for i in range(n)]


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def load(settings: Settings, path: Path, entity: str = "operator", **options):
    with FileAdapter(settings, "44", entity, FileAdapterOptions(**options)) as adapter:
        return adapter.process(path)


def test_gbk_csv_with_chinese_headers_publishes_one_signed_create_per_row(settings, tmp_path):
    rows = operators(5)
    path = write_csv(tmp_path / "经营业户_20240601.csv", OPERATOR_HEADER, rows, encoding="gbk")
    result = load(settings, path)
    assert (result.status, result.encoding, result.rows, result.creates, result.bad_rows) == (
        "loaded", "gb18030", 5, 5, 0)

    events = consume(settings, "44", expected=5)
    assert sorted(e["entity_key"] for e in events) == sorted(f"operator:{r[0]}" for r in rows)
    assert {e["op"] for e in events} == {"c"} and all(e["before"] is None for e in events)
    assert sorted(e["source"]["seq"] for e in events) == [1, 2, 3, 4, 5]
    first = next(e for e in events if e["entity_key"] == f"operator:{rows[0][0]}")
    assert first["after"]["name"] == "深圳顺达0运输有限公司" and first["after"]["status"] == "active"
    assert first["source"] == {"province": "44", "system": "file-adapter", "table": path.name,
                               "seq": first["source"]["seq"], "snapshot": True, "submission": result.submission}
    assert result.submission.startswith("44/file/operator/")


def test_xlsx_vehicle_file_publishes_typed_records(settings, tmp_path):
    path = tmp_path / "营运车辆.xlsx"
    book = Workbook()
    book.active.append(VEHICLE_HEADER)
    book.active.append(["粤B12345", "黄", "旅游客车", OWNER, 45, None, "正常"])
    book.active.append(["粤B54321", 2, "普通货车", OWNER, None, "18吨", "营运"])
    book.save(path)
    assert load(settings, path, "vehicle").creates == 2

    events = {e["entity_key"]: e for e in consume(settings, "44", expected=2)}
    assert set(events) == {"vehicle:粤B12345:2", "vehicle:粤B54321:2"}
    assert events["vehicle:粤B12345:2"]["after"]["seats"] == 45
    assert events["vehicle:粤B12345:2"]["after"]["vehicle_class"] == "charter_bus"
    assert events["vehicle:粤B54321:2"]["after"]["tonnage_kg"] == 18000


def test_second_days_snapshot_yields_exactly_its_creates_updates_and_deletes(settings, tmp_path):
    day1 = operators(6)
    load(settings, write_csv(tmp_path / "day1.csv", OPERATOR_HEADER, day1))
    day2 = [list(r) for r in day1[1:5]] + operators(8, seed=2)[6:]
    day2[0][5] = "停业"  # day1[1] suspended
    result = load(settings, write_csv(tmp_path / "day2.csv", OPERATOR_HEADER, day2))
    assert (result.creates, result.updates, result.deletes) == (2, 1, 2)

    events = [e for e in consume(settings, "44", expected=11) if e["source"]["table"] == "day2.csv"]
    by_op = {op: sorted(e["entity_key"] for e in events if e["op"] == op) for op in "cud"}
    assert by_op == {
        "c": sorted(f"operator:{r[0]}" for r in day2[4:]),
        "u": [f"operator:{day1[1][0]}"],
        "d": sorted(f"operator:{r[0]}" for r in (day1[0], day1[5])),
    }
    update = next(e for e in events if e["op"] == "u")
    assert (update["before"]["status"], update["after"]["status"]) == ("active", "suspended")
    assert all(e["after"] is None and e["before"]["uscc"] for e in events if e["op"] == "d")
    assert sorted(e["source"]["seq"] for e in events) == list(range(7, 12))


def test_file_with_bad_rows_delivers_every_good_row_and_reports_every_bad_one(settings, tmp_path):
    good = operators(4)
    bad_checksum = [good[0][0][:-1] + ("0" if good[0][0][-1] != "0" else "1")] + good[0][1:]
    rows = [good[0], good[1],
            bad_checksum,                                               # row 4: invalid_uscc
            ["", "无代码运输公司", "440300", "", "", "正常"],              # row 5: missing_required
            [good[2][0], "短行"],                                        # row 6: wrong_column_count
            [good[1][0]] + good[1][1:],                                  # row 7: duplicate_key
            ["=cmd|' /C calc'!A0", "注入公司", "440300", "", "", "正常"],  # row 8: formula_injection
            [good[3][0], "长" * 3000, "440300", "", "", "正常"],          # row 9: line_too_long
            good[2], good[3]]
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER, rows)
    result = load(settings, path, limits=ReadLimits(max_line_bytes=4096))
    assert (result.rows, result.creates, result.bad_rows) == (10, 4, 6)

    events = consume(settings, "44", expected=4)
    assert sorted(e["entity_key"] for e in events) == sorted(f"operator:{r[0]}" for r in good)
    with open(result.error_report, encoding="utf-8-sig", newline="") as handle:
        report = [(int(r["row"]), r["field"], r["rule"]) for r in csv.DictReader(handle)]
    assert report == [(4, "uscc", "invalid_uscc"), (5, "uscc", "missing_required"), (6, "", "wrong_column_count"),
                      (7, "", "duplicate_key"), (8, "uscc", "formula_injection"), (9, "", "line_too_long")]


def test_export_without_a_status_column_loads_with_the_mappings_constant_and_canonical_identifiers(
        settings, tmp_path):
    rows = [row[:5] for row in operators(3)]
    spaced = rows[1][0][:8] + "\u3000" + rows[1][0][8:]
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER[:5], [rows[0], [spaced, *rows[1][1:]], rows[2]])
    assert load(settings, path).status == "rejected"  # missing_columns: status
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER[:5], [rows[0], [spaced, *rows[1][1:]], rows[2]])
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"constants": {"status": "营业"}}, ensure_ascii=False), "utf-8")
    result = load(settings, path, mapping=load_mapping(mapping, "operator"))
    assert (result.status, result.creates, result.bad_rows, result.normalised) == ("loaded", 3, 0, 1)

    events = consume(settings, "44", expected=3)
    assert sorted(e["entity_key"] for e in events) == sorted(f"operator:{r[0]}" for r in rows)
    assert {e["after"]["status"] for e in events} == {"active"}
    with open(result.error_report, encoding="utf-8-sig", newline="") as handle:
        report = [(int(r["row"]), r["field"], r["rule"], r["message"]) for r in csv.DictReader(handle)]
    assert report == [(3, "uscc", "normalised", f"{spaced!r} is stored in canonical form as {rows[1][0]!r}")]


def test_unreadable_files_are_moved_aside_and_the_other_files_still_load(settings, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(os.urandom(64) + b"\x00" * 64)
    unknown = write_csv(tmp_path / "unknown.csv", OPERATOR_HEADER + ["备注"], [r + ["x"] for r in operators(2)])
    good = write_csv(tmp_path / "good.csv", OPERATOR_HEADER, operators(3, seed=7))
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)

    status = cli.main(["produce", "files", "--province", "44", "--entity", "operator", "--receipt-seconds", "0",
                       str(empty), str(binary), str(unknown), str(good)])
    out = capsys.readouterr().out
    assert status == 1
    assert "empty.csv: rejected, empty_file" in out and "binary.csv: rejected, binary_content" in out
    assert "unknown.csv: rejected, unknown_columns" in out and "'备注'" in out
    assert "good.csv: loaded 3 rows" in out
    rejected = tmp_path / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == sorted(
        f"{n}{s}" for n in ("empty.csv", "binary.csv", "unknown.csv") for s in ("", ".reason"))
    assert len(consume(settings, "44", expected=3)) == 3


def test_the_same_file_dropped_twice_is_processed_once(settings, tmp_path):
    rows = operators(3)
    first = load(settings, write_csv(tmp_path / "a.csv", OPERATOR_HEADER, rows))
    again = load(settings, write_csv(tmp_path / "a-resent.csv", OPERATOR_HEADER, rows))
    assert first.status == "loaded" and again.status == "duplicate" and "a.csv" in again.reason
    assert len(consume(settings, "44", expected=3)) == 3


def test_broker_unreachable_while_reading_then_back_loses_nothing(settings, tmp_path):
    rows = operators(300)
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER, rows)
    offline = settings.with_overrides(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(PublishError):
        load(offline, path, delivery_timeout_s=3, chunk=50, max_pending=100)
    with Spool(offline.spool_dir / "files.44.operator.db") as spool:
        assert spool.depth() == 150  # read on into the spool up to its bound, then waited for the broker

    with FileAdapter(settings, "44", "operator", FileAdapterOptions(chunk=50, max_pending=100)) as adapter:
        resumed = adapter.resume()
    assert [(r.path.name, r.creates) for r in resumed] == [("operators.csv", 300)]
    events = consume(settings, "44", expected=300)
    assert len(events) == 300 and len({e["event_id"] for e in events}) == 300
    assert {e["entity_key"] for e in events} == {f"operator:{r[0]}" for r in rows}
    assert sorted(e["source"]["seq"] for e in events) == list(range(1, 301))
    assert load(settings, path).status == "duplicate"


def test_incremental_file_upserts_and_never_deletes(settings, tmp_path):
    day1 = operators(3)
    load(settings, write_csv(tmp_path / "day1.csv", OPERATOR_HEADER, day1), incremental=True)
    changed = [day1[0][:5] + ["吊销"]] + operators(5, seed=3)[4:]
    result = load(settings, write_csv(tmp_path / "day2.csv", OPERATOR_HEADER, changed), incremental=True)
    assert (result.creates, result.updates, result.deletes) == (1, 1, 0)
    events = [e for e in consume(settings, "44", expected=5) if e["source"]["table"] == "day2.csv"]
    assert sorted((e["op"], e["entity_key"]) for e in events) == sorted(
        [("u", f"operator:{day1[0][0]}"), ("c", f"operator:{changed[1][0]}")])
    assert all(e["source"]["snapshot"] is False for e in events)


def test_adapter_killed_mid_file_resumes_and_delivers_every_change_once(settings, tmp_path):
    total = 100_000
    path = tmp_path / "vehicles.csv"
    with open(path, "w", encoding="gbk", newline="") as out:
        out.write(",".join(VEHICLE_HEADER) + "\n")
        out.writelines(f"粤B{i:05d},2,货车,{OWNER},,18000,正常\n" for i in range(total))
    env = {**os.environ, **to_environ(settings)}
    command = [sys.executable, "-m", "deploy.cli", "produce", "files", "--province", "44", "--entity", "vehicle",
               "--receipt-seconds", "0", str(path)]  # no hub answers here: receipts are tested apart
    spool_path = settings.spool_dir / "files.44.vehicle.db"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spooled = _wait_for_spooled(spool_path, proc, minimum=10_000)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 0 < spooled < total
    store = SnapshotStore(settings.data_dir / "adapters" / "files.44.vehicle.db")
    assert len(store.unfinished()) == 1  # killed in the middle of the file
    store.close()

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr
    assert "resumed and loaded 100000 rows" in finished.stdout

    events = consume(settings, "44", expected=total, timeout=600)  # returns once all are read; slow only under load
    assert len({e["event_id"] for e in events}) == total
    assert {e["entity_key"] for e in events} == {f"vehicle:粤B{i:05d}:2" for i in range(total)}


def _wait_for_spooled(spool_path: Path, proc: subprocess.Popen, minimum: int, timeout: float = 90) -> int:
    """How many events the running adapter has spooled, once at least ``minimum``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if spool_path.exists():
            try:
                with sqlite3.connect(f"file:{spool_path}?mode=ro", uri=True, timeout=5) as db:
                    rows = db.execute("SELECT value FROM checkpoint").fetchall()
            except sqlite3.OperationalError:
                rows = []
            if rows and json.loads(rows[0][0])["spooled"] >= minimum:
                return json.loads(rows[0][0])["spooled"]
        time.sleep(0.01)
    raise AssertionError(f"the adapter did not spool {minimum} events (exit code {proc.poll()})")


def test_watched_folder_loads_complete_files_and_leaves_partial_ones(settings, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    write_csv(drop / "operator_20240601.csv", OPERATOR_HEADER, operators(3))
    write_csv(drop / "operator_20240602.csv.part", OPERATOR_HEADER, operators(5))
    write_csv(drop / "notes.csv", OPERATOR_HEADER, operators(1))
    folder = DropFolder(settings, "44", drop, None, FileAdapterOptions())
    try:
        time.sleep(0.3)  # let the files' mtimes age past the settle time
        results = folder.run(settle_s=0.2, poll_s=0.1, report=lambda _r: None, once=True)
    finally:
        folder.close()
    assert sorted((r.path.name, r.status) for r in results) == [("notes.csv", "rejected"),
                                                               ("operator_20240601.csv", "loaded")]
    assert (drop / "processed" / "operator_20240601.csv").exists()
    assert (drop / "rejected" / "notes.csv.reason").exists()
    assert (drop / "operator_20240602.csv.part").exists()
    assert len(consume(settings, "44", expected=3)) == 3


def test_snapshot_that_would_delete_most_records_is_moved_aside_unless_allowed(settings, tmp_path):
    day1 = operators(30)
    load(settings, write_csv(tmp_path / "day1.csv", OPERATOR_HEADER, day1))
    truncated = write_csv(tmp_path / "day2.csv", OPERATOR_HEADER, day1[:5])
    refused = load(settings, truncated)
    assert refused.status == "rejected" and "mass_delete" in refused.reason and "25 of 30" in refused.reason
    assert refused.moved_to == tmp_path / "rejected" / "day2.csv"
    allowed = load(settings, refused.moved_to, max_delete_share=None)
    assert (allowed.status, allowed.deletes) == ("loaded", 25)
    assert sum(1 for e in consume(settings, "44", expected=55) if e["op"] == "d") == 25


REPO = Path(__file__).resolve().parents[2]


def drop_file(folder: Path, name: str, header: list[str], rows: list[list[str]]) -> Path:
    """Write ``name`` the way a transfer does: as ``name.part``, renamed once complete."""
    partial = write_csv(folder / f"{name}.part", header, rows)
    return partial.replace(folder / name)


def watch_command(drop: Path) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "roadx"), "produce", "files", "--province", "44", "--watch", str(drop),
            "--settle-seconds", "0.3", "--poll-seconds", "0.2"]


def watch_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}, **to_environ(settings), **extra}


def wait_for_files(folder: Path, count: int, proc: subprocess.Popen, timeout: float = 60) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the watcher exited with {proc.returncode}"
        found = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{folder} did not get {count} files")


def test_watch_cli_loads_a_dropped_file_once_and_exits_cleanly_on_sigterm(settings, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = operators(4, seed=9)
    proc = subprocess.Popen(watch_command(drop), env=watch_env(settings), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        drop_file(drop, "operator_20240601.csv", OPERATOR_HEADER, rows)
        events = consume(settings, "44", expected=4)
        assert sorted(e["entity_key"] for e in events) == sorted(f"operator:{r[0]}" for r in rows)
        first, = wait_for_files(drop / "processed", 1, proc)

        drop_file(drop, "operator_20240601.csv", OPERATOR_HEADER, rows)  # the same file again
        wait_for_files(drop / "processed", 2, proc)
        assert not (drop / "operator_20240601.csv").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert len(consume(settings, "44", expected=5, timeout=5)) == 4  # no new events for the repeat
    assert first.name == "operator_20240601.csv"
    lines = out.splitlines()
    assert len(lines) == 2 and "loaded 4 rows" in lines[0] and "4 created" in lines[0]
    assert "skipped, same content as operator_20240601.csv" in lines[1]
