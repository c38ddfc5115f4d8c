"""``roadx parties``: the parties of the exchange (``schemas.parties``): code, name, kind, registers.

The set is ``ROADX_PARTIES_FILE``'s, else the built-in one; a party marked ``*`` takes part
(``ROADX_PARTIES``). ``--json`` prints one array with every field, jurisdiction included.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from typing import Callable

from schemas.settings import Settings


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``parties`` on the roadx parser."""
    p = with_data_dir(sub.add_parser("parties", help="list the parties: code, name, kind, the registers each publishes"))
    p.add_argument("--json", action="store_true",
                   help="one JSON array, with each party's English name, jurisdiction and regions")
    p.add_argument("--taking-part", action="store_true", help="only the parties taking part (ROADX_PARTIES)")
    p.set_defaults(handler=cmd_parties)


def cmd_parties(settings: Settings, args: argparse.Namespace) -> int:
    parties = settings.parties()
    taking_part = set(settings.provinces)
    shown = [p for p in parties.values() if p.code in taking_part or not args.taking_part]
    if args.json:
        print(json.dumps([{**p.as_dict(), "taking_part": p.code in taking_part} for p in shown],
                         ensure_ascii=False, indent=2))
        return 0
    rows = [("  code", "name", "kind", "registers")]
    rows += [(("* " if p.code in taking_part else "  ") + p.code, p.name, p.kind,
              ", ".join(p.registers))
             for p in shown]
    widths = [max(_width(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(_pad(cell, w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    print(f"{len(shown)} parties ({parties.source}); * takes part (ROADX_PARTIES)")
    return 0


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
