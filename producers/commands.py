"""``roadx produce``: the provincial adapters (daily files, database change capture)."""

from __future__ import annotations

import argparse
from typing import Callable


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    produce = with_data_dir(sub.add_parser("produce", help="run a provincial adapter"))
    kinds = produce.add_subparsers(dest="adapter", required=True)
    from . import db_cli, files_cli

    files_cli.add_parser(kinds)
    db_cli.add_parser(kinds)
    for adapter in kinds.choices.values():  # after the adapter too: roadx produce files --data-dir DIR
        with_data_dir(adapter)
