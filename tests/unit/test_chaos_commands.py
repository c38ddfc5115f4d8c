"""``roadx chaos`` on a parser built with its hook, and its refusals of bad options."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from deploy.commands.chaos import add_parser, cmd_chaos
from deploy.errors import DeployError
from schemas.settings import Settings


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="roadx")
    sub = root.add_subparsers(dest="command", required=True)

    def with_data_dir(p):
        p.add_argument("--data-dir", type=Path)
        return p

    add_parser(sub, with_data_dir)
    return root


def test_the_hook_registers_chaos_with_its_defaults_and_handler():
    args = parser().parse_args(["chaos", "--rounds", "5"])
    assert args.handler is cmd_chaos
    assert (args.rounds, args.events, args.provinces, args.seed, args.json, args.data_dir) == (
        5, 30_000, 6, 2024, None, None)


@pytest.mark.parametrize("argv, message", [
    (["chaos", "--events", "0"], "--events must be at least 1"),
    (["chaos", "--provinces", "40"], "--provinces must be between 1 and 31"),
    (["chaos", "--stream-workers", "0"], "--stream-workers must be at least 1"),
    (["chaos", "--rounds", "0"], "--rounds must be at least 1"),
])
def test_bad_options_are_refused_before_anything_starts(argv, message, tmp_path):
    args = parser().parse_args([*argv, "--data-dir", str(tmp_path / "run")])
    with pytest.raises(DeployError, match=message):
        cmd_chaos(Settings(data_dir=tmp_path), args)
    assert not (tmp_path / "run").exists()


def test_rounds_too_short_for_the_kills_are_refused_with_the_reason(tmp_path):
    args = parser().parse_args(["chaos", "--round-seconds", "4", "--data-dir", str(tmp_path / "run")])
    with pytest.raises(DeployError, match="too short"):
        cmd_chaos(Settings(data_dir=tmp_path), args)
    assert not (tmp_path / "run").exists()
