"""A party's inbox, laid out by register and day (<inbox>/<register>/<YYYYMMDD>/<file>): which files
are candidates, which register and day each is of, and what is moved aside before any adapter opens."""

from __future__ import annotations

import os
import time

import pytest

from producers.files.adapter import FileAdapterOptions
from producers.files.watch import DropFolder, inbox_place, scan, scan_inbox
from schemas.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "d", provinces=("44", "CJ"))


def drop(path, text="船舶识别号\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def test_the_inbox_scan_takes_files_by_register_and_day_and_never_what_was_moved_aside(tmp_path):
    inbox = tmp_path / "inbox"
    wanted = [drop(inbox / "ship" / "20240601" / "a.xlsx"), drop(inbox / "营运船舶" / "20240602" / "b.csv"),
              drop(inbox / "port_enterprise" / "c.csv"), drop(inbox / "vehicle_20240601.csv")]
    for skipped in (inbox / "ship" / "20240601" / "processed" / "old.xlsx", inbox / "ship" / "rejected" / "x.csv",
                    inbox / "ship" / "20240601" / "d.xlsx.part", inbox / "ship" / "20240601" / "a.xlsx.errors.csv",
                    inbox / "ship" / "20240601" / "deeper" / "too_deep.csv"):
        drop(skipped)
    assert set(scan_inbox(inbox)) == set(wanted)
    assert set(scan(inbox)) == {inbox / "vehicle_20240601.csv"}  # one register's folder: only its own files


@pytest.mark.parametrize("relative, register, day, rule", [
    ("ship/20240601/a.xlsx", "ship", "20240601", None),
    ("营运船舶/20240601/a.xlsx", "ship", "20240601", None),
    ("shipping_enterprise/20241231/a.csv", "shipping_enterprise", "20241231", None),
    ("waterway_project/a.csv", "waterway_project", "", None),
    ("port_enterprise_20240601.csv", "port_enterprise", "", None),
    ("ships/20240601/a.xlsx", None, "", "unknown_entity"),
    ("ship/2024-06-01/a.xlsx", "ship", "", "bad_date_folder"),
    ("ship/20240231/a.xlsx", "ship", "", "bad_date_folder"),
])
def test_a_files_place_in_the_inbox_says_its_register_and_day(tmp_path, relative, register, day, rule):
    entity, found_day, why_not = inbox_place(tmp_path, tmp_path / relative)
    assert (entity, found_day) == (register, day)
    assert (why_not.rule if why_not else None) == rule


def test_a_register_folder_the_party_may_not_publish_is_moved_aside_file_by_file_the_others_go_on(settings, tmp_path):
    inbox = tmp_path / "inbox"
    refused = [drop(inbox / "vehicle" / "20240601" / "v1.csv", "车牌号码\n"),
               drop(inbox / "operator" / "20240601" / "o1.csv", "统一社会信用代码\n")]
    misplaced = drop(inbox / "ship" / "0601" / "s.csv")
    folder = DropFolder(settings, "CJ", inbox, None, FileAdapterOptions())
    try:
        results = [folder._load(path) for path in (*refused, misplaced)]
    finally:
        folder.close()
    for path, result in zip(refused, results):
        assert result.status == "rejected" and "register_not_allowed" in result.reason
        assert result.moved_to == path.parent / "rejected" / path.name and not path.exists()
        assert "rule: register_not_allowed" in (path.parent / "rejected" / f"{path.name}.reason").read_text("utf-8")
    assert results[2].status == "rejected" and "bad_date_folder" in results[2].reason
    assert not (settings.data_dir / "adapters").exists()  # no adapter was opened for any of them


def test_ready_files_of_the_inbox_load_oldest_day_first(settings, tmp_path):
    inbox = tmp_path / "inbox"
    late = drop(inbox / "ship" / "20240602" / "b.csv")
    early = drop(inbox / "ship" / "20240601" / "a.csv")
    now = time.time_ns()
    os.utime(late, ns=(now - 10 * 10**9,) * 2)
    os.utime(early, ns=(now - 5 * 10**9,) * 2)  # written later, of an earlier day
    folder = DropFolder(settings, "CJ", inbox, None, FileAdapterOptions())
    loaded = []
    folder._load = lambda path: loaded.append(path) or type("R", (), {"status": "rejected"})()
    try:
        folder._previous = scan_inbox(inbox)
        folder.poll(settle_s=0)
    finally:
        folder.close()
    assert loaded == [early, late]
