"""Snapshot diff, durable snapshot state, deterministic events, daily-file parsing and drop-folder rules."""

from __future__ import annotations

import csv
import uuid

import pytest

from producers.files.daily_file import move_aside, parse_daily_file, write_error_report
from producers.errors import FileRejected
from producers.files.adapter import SYSTEM, file_event
from producers.files.watch import ready_files, still_being_written
from producers.files.snapshot import Change, FileState, SnapshotStore, diff_snapshot, diff_upserts

A, B, C = {"v": 1}, {"v": 2}, {"v": 3}


def test_snapshot_diff_gives_creates_updates_and_deletes():
    previous = {"k1": A, "k2": B, "k3": C}
    current = {"k2": (2, {"v": 22}), "k1": (3, A), "k4": (4, {"v": 4})}
    assert diff_snapshot(previous, current) == [
        Change("u", "k2", B, {"v": 22}, 2), Change("c", "k4", None, {"v": 4}, 4), Change("d", "k3", C, None)]


def test_a_bad_row_does_not_delete_its_record():
    assert diff_snapshot({"k1": A, "k2": B}, {"k1": (2, A)}, present_but_bad={"k2"}) == []


def test_upserts_never_delete_and_skip_unchanged_rows():
    assert diff_upserts({"k1": A, "k2": B}, {"k1": (2, A), "k3": (3, C)}) == [Change("c", "k3", None, C, 3)]


def test_snapshot_store_commits_changes_seq_and_file_state_together(tmp_path):
    store = SnapshotStore(tmp_path / "state.db")
    state = store.begin("f1", "day1.csv", 1000, tmp_path / "copy")
    assert store.unfinished() == [state] and state.base_seq == 0
    store.commit(state, [Change("c", "k1", None, A), Change("c", "k2", None, B)], 2000)
    second = store.begin("f2", "day2.csv", 3000, tmp_path / "copy2")
    assert second.base_seq == 2
    store.commit(second, [Change("u", "k1", A, C), Change("d", "k2", B, None)], 4000)
    store.close()
    reopened = SnapshotStore(tmp_path / "state.db")
    assert reopened.records() == {"k1": C} and reopened.seq() == 4
    assert reopened.unfinished() == [] and reopened.file("f1").status == "done"


def test_file_event_id_is_the_same_for_the_same_file_key_and_op():
    state = FileState("abc", "day1.csv", "started", 10, 1_717_200_000_000, "copy")
    change = Change("c", "operator:X", None, A, 2)
    first = file_event("44", "operator", state, 11, change, True)
    assert first == file_event("44", "operator", state, 11, change, True)
    assert first["source"] == {"province": "44", "system": SYSTEM, "table": "day1.csv", "seq": 11, "snapshot": True,
                               "submission": None}
    assert uuid.UUID(first["event_id"]).version == 5
    other_op = file_event("44", "operator", state, 11, Change("u", "operator:X", A, B, 2), True)
    other_file = file_event("44", "operator", FileState("abd", *list(state.__dict__.values())[1:]), 11, change, True)
    assert len({first["event_id"], other_op["event_id"], other_file["event_id"]}) == 3


HEADER = "统一社会信用代码,业户名称,行政区划代码,状态\n"


def test_daily_file_reports_duplicate_keys_and_keeps_the_first(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(HEADER + "91350100M000100Y43,甲,350100,正常\n91350100M000100Y43,乙,350100,正常\n"
                    "91110000600037341L,丙,110000,bogus\n", "utf-8")
    parsed = parse_daily_file(path, "operator")
    assert list(parsed.current) == ["operator:91350100M000100Y43"]
    assert parsed.current["operator:91350100M000100Y43"][1]["name"] == "甲"
    assert [(f.row, f.rule) for f in parsed.failures] == [(3, "duplicate_key"), (4, "unknown_code")]
    assert "row 2" in parsed.failures[0].message
    assert parsed.bad_keys == {"operator:91110000600037341L"}


def test_error_report_lists_each_failure_and_defuses_formulas(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(HEADER + "=cmd|' /C calc'!A0,甲,350100,正常\n", "utf-8")
    parsed = parse_daily_file(path, "operator")
    report = write_error_report(path, parsed.failures)
    assert report.name == "operators.csv.errors.csv"
    with open(report, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "field", "rule", "message", "raw"]
    assert rows[1][:3] == ["2", "uscc", "formula_injection"]
    assert rows[1][4].startswith("'=cmd")


def test_rejected_file_is_moved_aside_with_its_reason(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_bytes(b"\x00\x01")
    moved = move_aside(path, FileRejected("binary_content", "operators.csv holds NUL bytes"))
    assert moved == tmp_path / "rejected" / "operators.csv" and not path.exists()
    reason = (tmp_path / "rejected" / "operators.csv.reason").read_text("utf-8")
    assert "rule: binary_content" in reason and "NUL bytes" in reason
    path.write_bytes(b"\x00")
    second = move_aside(path, FileRejected("binary_content", "again"))
    assert second != moved and second.exists() and moved.exists()


@pytest.mark.parametrize("name", ["day1.csv.part", "day1.tmp", "~$day1.xlsx", ".day1.csv", "day1.csv.crdownload"])
def test_names_of_files_being_written_are_never_picked_up(name):
    assert still_being_written(name)


def test_only_files_unchanged_between_scans_and_settled_are_ready(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    now = 100 * 10**9
    previous = {a: (10, now - 5 * 10**9), b: (10, now - 5 * 10**9), c: (10, now - 10**8)}
    current = {a: (10, now - 5 * 10**9), b: (20, now - 10**8), c: (10, now - 10**8)}
    assert ready_files(current, previous, now, settle_s=1.0) == [a]
    assert ready_files(current, {}, now, settle_s=1.0) == []
