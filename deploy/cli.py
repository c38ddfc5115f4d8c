"""The ``roadx`` command: its parser and ``main``; each subcommand's module is in ``deploy.commands``.

Every command that reads or starts a stack, a store or a spool takes ``--data-dir DIR``:
``with_data_dir`` adds it, in each command module's ``add_parser`` (which receives it),
on the command itself, so it goes after the subcommand (``roadx produce files --data-dir
DIR``) and, for a group, also before it. Which directory is used is decided once, by
``schemas.settings.resolve``: the flag, else ``ROADX_DATA_DIR``, else ``./.roadx``; ``main`` then
refuses one that is not a directory. An error of any package (``deploy.errors.COMMAND_ERRORS``)
is printed as ``roadx: error: …`` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from schemas.errors import SettingsError
from schemas.settings import resolve

from .errors import COMMAND_ERRORS
from .worker import EXIT_ERROR, EXIT_INTERRUPTED, interrupt_on_sigterm


def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command ``--data-dir``; absent, it sets nothing, so a group's and its subcommand's never clash."""
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                   help="where the stack keeps its store, spool, logs and stack.json "
                        "(default: $ROADX_DATA_DIR, else ./.roadx)")
    return p


def build_parser() -> argparse.ArgumentParser:
    # Each command module's ``add_parser`` registers its subcommands and sets
    # ``handler(settings, args) -> exit status`` as their default; the order is ``roadx --help``'s.
    from .commands import (acl, bench, cases, chaos, check, demo, evidence, keys, parties, produce, stack, status,
                           store, subscribe, topics, worker)

    parser = argparse.ArgumentParser(prog="roadx", description="National road-transport data-exchange backbone.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_parser(sub, with_data_dir)
    stack.add_parser(sub, with_data_dir)  # up, supervise, down
    store.add_parser(sub, with_data_dir)  # query, report, verify
    worker.add_parser(sub, with_data_dir)  # roadx worker streams|sink: the worker shell
    produce.add_parser(sub, with_data_dir)
    check.add_parser(sub, with_data_dir)  # check FILE: a daily file against the hub's rules, offline
    topics.add_parser(sub, with_data_dir)
    acl.add_parser(sub, with_data_dir)
    parties.add_parser(sub, with_data_dir)  # parties: code, name, kind, registers of each party
    subscribe.add_parser(sub, with_data_dir)
    cases.add_parser(sub, with_data_dir)  # cases list|show|receipt|progress|answer|decline
    keys.add_parser(sub, with_data_dir)  # keys issue|revoke|list: the information service's credentials
    bench.add_parser(sub, with_data_dir)
    status.add_parser(sub, with_data_dir)
    chaos.add_parser(sub, with_data_dir)
    evidence.add_parser(sub, with_data_dir)  # evidence verify: the log of manifests and receipts
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    interrupt_on_sigterm()
    try:
        flag = getattr(args, "data_dir", None)
        settings = resolve(data_dir=flag)
        check_data_dir(settings.data_dir, "--data-dir" if flag is not None
                       else "ROADX_DATA_DIR" if os.environ.get("ROADX_DATA_DIR") else "the default data directory")
        return args.handler(settings, args)
    except KeyboardInterrupt:
        print("roadx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except COMMAND_ERRORS as exc:
        print(f"roadx: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def check_data_dir(path: Path, source: str) -> None:
    """Refuse a data directory that is a file, or lies under one, naming where it came from."""
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == path else f" ({existing} is a file)"
                raise SettingsError(f"{source} {path} is not a directory{where}")
            return


def run() -> None:
    """The ``roadx`` command: ``main``'s status as the process's. An interrupted command, its clean-up
    done, ends at once with 130 (its output flushed): ended the usual way, Python at times ended such a
    process by SIGINT instead (status -2), though ``main`` had caught the interrupt and returned — seen
    under load in ``test_a_terminated_bench_stops_its_broker_and_removes_its_work_directory``."""
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
