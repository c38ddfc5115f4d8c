"""``roadx status``: a live summary of the running exchange from its processes' metrics.

The processes are the running embedded stack's (``<data-dir>/stack.json``) plus every
``--metrics [NAME=]HOST:PORT`` given (a province's adapter, or a cluster's workers); the
stack's store endpoint is shown with them, as its URL and whether it answers a query.
The case workflows' timeliness per target province this month (UTC) is read from the store
wherever it is (``store.open_store_client``) with the monthly report's query
(``sinks.report.case_timeliness``); a store that cannot be read is one line saying why.
Exit status 0 when every process (and the stack's store) answered, 1 when one is down
(shown as DOWN).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from typing import Callable

from schemas.errors import SettingsError
from schemas.settings import Settings

from ..errors import COMMAND_ERRORS, StackError
from ..readiness import endpoint_probe
from ..scrape import scrape
from ..stack import StackInfo
from ..status import CaseTimelinessStatus, Scrape, StoreStatus, format_status, rank_timeliness, summarize
from .store import open_store_client

SCRAPE_TIMEOUT = 3.0


def add_parser(sub, with_data_dir) -> None:
    """Register ``status`` on the roadx parser."""
    status = with_data_dir(sub.add_parser(
        "status", help="live summary of the running exchange: throughput, lag, errors per province",
        description="Scrape every roadx process's metrics twice and summarise: processes up or down, "
                    "events/s, totals, consumer lag per group, rejects and DLQ per province, sink latency; "
                    "and, from the store, each province's response timeliness to the cases routed to it "
                    "this month, worst first."))
    status.add_argument("--metrics", action="extend", nargs="+", default=[], metavar="[NAME=]HOST:PORT",
                        help="also scrape this metrics endpoint (e.g. a province's adapter); repeatable")
    status.add_argument("--json", action="store_true", help="print the summary as JSON (one object per line)")
    status.add_argument("--watch", type=float, metavar="SECONDS",
                        help="refresh every SECONDS until interrupted (rates over the last SECONDS)")
    status.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="seconds between the two scrapes of one summary (default 2)")
    status.add_argument("--count", type=int, metavar="N", help="--watch: stop after N summaries")
    status.set_defaults(handler=cmd_status)


def parse_target(text: str) -> tuple[str, str]:
    """``[NAME=]HOST:PORT`` as (name, address); the name defaults to the address."""
    name, _, address = text.rpartition("=")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"--metrics {text!r}: expected [NAME=]HOST:PORT with a port from 1 to 65535")
    return (name or address), address


def targets(settings: Settings, extra: list[str]) -> dict[str, str]:
    """Process name -> metrics address: the running stack's, then those given."""
    found: dict[str, str] = {}
    parsed = [parse_target(t) for t in extra]  # bad input fails before anything is read
    info = StackInfo.read(settings.stack_file)
    if info is not None:
        found.update(info.metrics)
    for name, address in parsed:
        found[name if name not in found or found[name] == address else f"{name}@{address}"] = address
    if not found:
        raise StackError(f"no running stack for {settings.data_dir} and no --metrics given: start the stack "
                         f"(roadx up --data-dir {settings.data_dir}) or name endpoints with --metrics HOST:PORT")
    return found


def store_status(settings: Settings) -> StoreStatus | None:
    """The running stack's store endpoint and whether it answers a query now; None when none is served."""
    info = StackInfo.read(settings.stack_file)
    if info is None or not info.store_http:
        return None
    try:
        endpoint_probe(info.store_http)()
    except StackError as exc:
        return StoreStatus(info.store_url, settings.clickhouse_database, False, str(exc))
    return StoreStatus(info.store_url, settings.clickhouse_database, True)


def case_timeliness(settings: Settings, store: StoreStatus | None, now: dt.datetime) -> CaseTimelinessStatus:
    """The case workflows routed in ``now``'s month (UTC) per target province, worst first, from
    the store; when it cannot be read, why, in one line."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from schemas.deadlines import Deadlines
    from sinks.report import case_timeliness as read_timeliness

    month = now.astimezone(dt.timezone.utc).date().replace(day=1)
    label = month.strftime("%Y-%m")
    if store is not None and not store.up:
        return CaseTimelinessStatus(label, error=f"the store at {store.url} does not answer")
    try:
        client = open_store_client(settings, wait_seconds=SCRAPE_TIMEOUT)
        try:
            found = read_timeliness(client, settings.clickhouse_database, month, Deadlines.from_settings(settings),
                                    now)
        finally:
            client.close()
    except (*COMMAND_ERRORS, ClickHouseError, OSError) as exc:
        return CaseTimelinessStatus(label, error=" ".join(str(exc).split()))
    return CaseTimelinessStatus(label, rank_timeliness(found))


def scrape_all(processes: dict[str, str], timeout: float = SCRAPE_TIMEOUT,
               clock: Callable[[], float] = time.monotonic) -> list[Scrape]:
    """One scrape of every process; a process that does not answer is recorded as down."""
    out = []
    for name, address in processes.items():
        try:
            samples = scrape(address, timeout=timeout)
            out.append(Scrape(name, address, clock(), samples))
        except StackError as exc:
            out.append(Scrape(name, address, clock(), None, str(exc)))
    return out


def cmd_status(settings: Settings, args: argparse.Namespace, sleep: Callable[[float], None] = time.sleep,
               now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> int:
    if args.interval <= 0 or (args.watch is not None and args.watch <= 0):
        raise SettingsError("--interval and --watch must be positive numbers of seconds")
    if args.count is not None and args.count < 1:
        raise SettingsError("--count must be at least 1")
    processes = targets(settings, args.metrics)
    tty = sys.stdout.isatty() and not args.json
    before = scrape_all(processes)
    shown = 0
    while True:
        sleep(args.watch if args.watch is not None else args.interval)
        after = scrape_all(processes)
        status = summarize(before, after)
        status.store = store_status(settings)
        status.case_timeliness = case_timeliness(settings, status.store, now())
        if args.json:
            print(json.dumps(status.as_dict(), ensure_ascii=False), flush=True)
        else:
            print(("\033[H\033[2J" if tty and args.watch is not None else "") + format_status(status), flush=True)
        shown += 1
        if args.watch is None or (args.count is not None and shown >= args.count):
            return 0 if all(s.up for s in after) and (status.store is None or status.store.up) else 1
        before = after
