"""``roadx produce files``: argument errors, progress and result lines, one adapter per province and entity."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from deploy import cli
from deploy.commands import produce as produce_commands
from deploy.commands.produce import ProgressLine, describe
from producers.errors import AdapterBusyError, FileAdapterError
from producers.files.adapter import FileAdapter, FileResult
from schemas.settings import Settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith("ROADX_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROADX_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path / "roadx"))


@pytest.mark.parametrize("argv, message", [
    ([], "give either PATH... or --watch DIR"),
    (["a.csv"], "--entity is required"),
    (["--entity", "operator", "missing.csv"], "no such file: missing.csv"),
    (["--entity", "operator", "a.csv", "--max-line-bytes", "0"], "--max-line-bytes must be at least 1"),
    (["--entity", "operator", "--watch", "nowhere-dir"], "is not a directory"),
])
def test_bad_arguments_are_a_clear_error(clean_env, capsys, argv, message):
    assert cli.main(["produce", "files", "--province", "44", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unknown_province_is_a_clear_error(clean_env, capsys, tmp_path):
    (tmp_path / "a.csv").write_text("uscc\n", "utf-8")
    assert cli.main(["produce", "files", "--province", "99", "--entity", "operator", str(tmp_path / "a.csv")]) == 2
    assert "unknown province '99'" in capsys.readouterr().err


def test_second_adapter_for_the_same_province_and_entity_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path, provinces=("44",))
    with FileAdapter(settings, "44", "vehicle"):
        with pytest.raises(AdapterBusyError):
            FileAdapter(settings, "44", "vehicle")
        FileAdapter(settings, "44", "operator").close()  # another entity is independent
    FileAdapter(settings, "44", "vehicle").close()  # released on close


def test_unknown_entity_is_refused(tmp_path):
    with pytest.raises(FileAdapterError, match="unknown entity 'bus'"):
        FileAdapter(Settings(data_dir=tmp_path, provinces=("44",)), "44", "bus")


def test_progress_line_shows_rows_read_and_events_sent():
    out = io.StringIO()
    progress = ProgressLine(out, interval_s=0)
    progress("read", 10_000, None)
    progress("sent", 500, 500)
    progress.clear()
    assert "read 10000 rows" in out.getvalue() and "sent 500/500" in out.getvalue()


def test_result_lines_say_what_happened_to_each_file():
    loaded = FileResult(Path("a.csv"), "loaded", rows=10, bad_rows=2, creates=5, updates=2, deletes=1, events=8,
                        encoding="gb18030", error_report=Path("a.csv.errors.csv"))
    assert describe(loaded) == ("a.csv: loaded 10 rows (gb18030), 5 created, 2 updated, 1 deleted, 8 events; "
                                "2 bad rows reported in a.csv.errors.csv")
    rejected = FileResult(Path("b.csv"), "rejected", reason="empty_file: b.csv is empty", moved_to=Path("rejected/b.csv"))
    assert describe(rejected) == "b.csv: rejected, empty_file: b.csv is empty (moved to rejected/b.csv)"


def test_the_configured_allow_list_and_the_mappings_constants_reach_the_adapter(clean_env, monkeypatch, tmp_path):
    allow, mapping, data = tmp_path / "pilot.txt", tmp_path / "map.json", tmp_path / "a.csv"
    allow.write_text("91350100M000100Y44\n", "utf-8")
    mapping.write_text('{"constants": {"status": "营业"}}', "utf-8")
    data.write_text("uscc\n", "utf-8")
    monkeypatch.setenv("ROADX_USCC_ALLOW_FILE", str(allow))
    seen = {}

    class Adapter:
        def __init__(self, settings, province, entity, options, progress):
            seen["options"] = options

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def resume(self):
            return []

        def process(self, path):
            return FileResult(path, "loaded")

    monkeypatch.setattr(produce_commands, "FileAdapter", Adapter)
    assert cli.main(["produce", "files", "--province", "44", "--entity", "operator", "--mapping", str(mapping),
                     str(data)]) == 0
    assert seen["options"].uscc_allow == {"91350100M000100Y44"}
    assert seen["options"].mapping.constants == {"status": "营业"}


def test_the_result_line_counts_identifiers_written_in_canonical_form():
    loaded = FileResult(Path("a.csv"), "loaded", rows=1, creates=1, events=1, encoding="utf-8", normalised=1,
                        error_report=Path("a.csv.errors.csv"))
    assert describe(loaded).endswith("; 1 identifiers written in canonical form, noted in a.csv.errors.csv")
