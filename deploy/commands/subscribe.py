"""``roadx subscribe``: the cases routed to one party, decoded, for its enforcement teams.

Reads ``xprov.<P>.inbound`` on the configured cluster, else the running embedded stack's
broker (``deploy.stack.with_running_broker``); ``streams.subscribe`` decodes each case.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import threading
from typing import Any, Callable

from schemas.settings import Settings
from streams.subscribe import format_line, subscribe

from ..stack import with_running_broker


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    p = with_data_dir(sub.add_parser("subscribe", help="show the cases routed to a party"))
    p.add_argument("--party", "--province", dest="province", required=True, metavar="P",
                   help="the party's code: a province's two-digit GB/T 2260 code, 66, CJ, ZJ … (see roadx parties; "
                        "--province: its first name)")
    p.add_argument("--from-beginning", action="store_true", help="start from the first routed case")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--idle-exit", type=float, default=None, help="stop after this many seconds without a case")
    p.add_argument("--receipts", action="store_true",
                   help="acknowledge each case shown with a receipt (回执) signed as the party")
    p.add_argument("--region", metavar="CODE",
                   help="only cases whose responsible region lies within CODE, a region prefix in the party's "
                        "jurisdiction (4403: a city, 440305: a county; 4201 for CJ) or the party's own code (all)")
    p.set_defaults(handler=run_subscribe)


def run_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_running_broker(settings)
    stop = threading.Event()
    for item in subscribe(settings, args.province, args.from_beginning, stop, args.idle_exit, args.receipts,
                          args.region):
        print(json.dumps(item, ensure_ascii=False, default=_json) if args.json else format_line(item), flush=True)
    return 0


def _json(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)
