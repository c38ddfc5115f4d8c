"""Every roadx command finds the stack the same way: --data-dir, else ROADX_DATA_DIR, else ./.roadx."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from deploy import cli

# Commands that run on a directory of their own, never on a stack's: bench always uses a
# temporary one; chaos takes --data-dir but uses a temporary one when none is given.
OWN_DIRECTORY = {("bench",)}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every runnable command: (its words, its parser)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from commands(sub, (*path, name))


def takes_data_dir(parser: argparse.ArgumentParser) -> bool:
    return any("--data-dir" in a.option_strings for a in parser._actions)


@pytest.fixture(autouse=True)
def no_roadx_environment(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("ROADX_")]:
        monkeypatch.delenv(name)


def test_every_command_on_a_stack_or_data_directory_takes_data_dir():
    found = dict(commands(cli.build_parser()))
    assert ("produce", "files") in found and ("topics", "plan") in found and ("status",) in found
    missing = [" ".join(words) for words, parser in found.items()
               if words not in OWN_DIRECTORY and not takes_data_dir(parser)]
    assert missing == []


@pytest.mark.parametrize("argv", [
    ["produce", "files", "--province", "44", "--entity", "operator", "a.csv", "--data-dir", "d1"],
    ["produce", "--data-dir", "d1", "files", "--province", "44", "--entity", "operator", "a.csv"],
    ["produce", "db", "--province", "44", "--url", "sqlite:///x.db", "--table", "t", "--entity", "operator",
     "--key", "id", "--cursor", "updated", "--data-dir", "d1"],
    ["topics", "plan", "--data-dir", "d1"],
    ["subscribe", "--province", "44", "--data-dir", "d1"],
    ["worker", "sink", "--data-dir", "d1"],
])
def test_data_dir_is_accepted_after_the_subcommand(argv):
    assert cli.build_parser().parse_args(argv).data_dir == Path("d1")


def test_no_data_dir_flag_leaves_the_choice_to_the_settings():
    args = cli.build_parser().parse_args(["produce", "files", "--province", "44", "a.csv"])
    assert getattr(args, "data_dir", None) is None


def run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("argv", [
    ["produce", "files", "--province", "44", "--entity", "operator", "ROWS"],
    ["produce", "db", "--province", "44", "--url", "sqlite:///x.db", "--table", "t", "--entity", "operator",
     "--key", "id", "--cursor", "updated"],
    ["subscribe", "--province", "44"],
    ["topics", "plan"],
    ["status"],
])
def test_a_data_dir_without_a_stack_is_a_one_line_error_naming_it(argv, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n", "utf-8")
    empty = tmp_path / "empty"
    code, err = run([str(rows) if a == "ROWS" else a for a in argv] + ["--data-dir", str(empty)], capsys)
    assert code == 2
    assert err.startswith("roadx: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert f"roadx up --data-dir {empty}" in err


@pytest.mark.parametrize("argv", [
    ["query", "SELECT 1"], ["up"], ["down"], ["status"], ["report", "--month", "2024-06"],
    ["verify", "X1"], ["produce", "files", "--province", "44", "--watch", "."], ["topics", "apply"],
])
def test_a_data_dir_that_is_a_file_is_refused_with_exit_status_2(argv, tmp_path, capsys):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x", "utf-8")
    code, err = run([*argv, "--data-dir", str(a_file)], capsys)
    assert code == 2
    assert err == f"roadx: error: --data-dir {a_file} is not a directory\n"


def test_a_data_dir_under_a_file_is_refused_naming_the_file(tmp_path, capsys):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x", "utf-8")
    code, err = run(["up", "--data-dir", str(a_file / "stack")], capsys)
    assert code == 2 and f"({a_file} is a file)" in err and "Traceback" not in err


def test_roadx_data_dir_is_honoured_when_no_flag_is_given(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path / "from-env"))
    code, err = run(["produce", "files", "--province", "44", "--watch", str(tmp_path)], capsys)
    assert code == 2 and f"roadx up --data-dir {tmp_path / 'from-env'}" in err


def test_the_flag_wins_over_roadx_data_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path / "from-env"))
    code, err = run(["status", "--data-dir", str(tmp_path / "from-flag")], capsys)
    assert code == 2 and str(tmp_path / "from-flag") in err and "from-env" not in err


def test_a_roadx_data_dir_that_is_a_file_is_refused_naming_the_variable(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x", "utf-8")
    monkeypatch.setenv("ROADX_DATA_DIR", str(a_file))
    code, err = run(["query", "SELECT 1"], capsys)
    assert code == 2 and err == f"roadx: error: ROADX_DATA_DIR {a_file} is not a directory\n"
