"""``roadx produce db``: database change capture for one provincial table or outbox.

Serves Prometheus metrics on ``metrics_host:metrics_port`` when ``metrics_port`` > 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from deploy.stack import with_running_broker

from schemas.settings import Settings

from . import metrics
from .db_adapter import CycleReport, DbAdapter, DbAdapterConfig
from .errors import ProducerError

_SHOWN_REJECTS = 10


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``db`` under ``roadx produce``."""
    p = kinds.add_parser(
        "db", help="capture changes of a provincial database table (cursor polling or outbox)",
        description="Poll a table by a monotonic cursor column (or read an outbox table) and publish "
                    "signed change events to prov.<P>.changes. Deletes: --deleted-column (cursor mode) "
                    "or the op column of an --outbox table; hard SQL deletes are not seen by cursor polling.")
    p.add_argument("--province", required=True, help="two-digit GB/T 2260 province code")
    p.add_argument("--url", required=True, help="sqlite:///path/to.db or postgresql://user@host:port/db")
    p.add_argument("--table", required=True, help="table (or schema.table) to read")
    p.add_argument("--entity", required=True, help="operator | vehicle | practitioner | licence | case")
    p.add_argument("--key", required=True, help="column identifying a row (the outbox's entity key column)")
    p.add_argument("--cursor", required=True, help="monotonic column: updated-at, row version, outbox id")
    p.add_argument("--outbox", action="store_true", help="the table is an outbox with an op column c/u/d")
    p.add_argument("--op-column", default="op", help="outbox op column (default op)")
    p.add_argument("--payload-column", default="payload",
                   help="outbox JSON payload column (default payload; without it the row's columns are the record)")
    p.add_argument("--deleted-column", help="cursor mode: a soft-delete flag column; a set flag emits a delete")
    p.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                   help="read COLUMN as the entity field FIELD (repeatable)")
    p.add_argument("--system", default="db", help="source.system of the events (default db)")
    p.add_argument("--batch", type=int, default=1000, help="rows per poll (default 1000)")
    p.add_argument("--spool-limit", type=int, default=50_000,
                   help="stop reading while this many events wait for the broker (default 50000)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    p.add_argument("--once", action="store_true", help="read everything new, wait until acknowledged, exit")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="--once: give up waiting for the broker after this many seconds (default 120)")
    p.set_defaults(handler=run_db_adapter)


def parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        column, sep, field = item.partition("=")
        if not sep or not column.strip() or not field.strip():
            raise ProducerError(f"--map {item!r}: expected COLUMN=FIELD")
        mapping[column.strip()] = field.strip()
    return mapping


def run_db_adapter(settings: Settings, args: argparse.Namespace) -> int:
    if args.interval <= 0 or args.timeout <= 0:
        raise ProducerError("--interval and --timeout must be positive")
    config = DbAdapterConfig(
        province=args.province, url=args.url, table=args.table, entity=args.entity, key=args.key,
        cursor=args.cursor, outbox=args.outbox, op_column=args.op_column, payload_column=args.payload_column,
        deleted_column=args.deleted_column, column_map=parse_map(args.map), system=args.system,
        batch_size=args.batch, spool_limit=args.spool_limit)
    settings = with_running_broker(settings)
    settings.province_key(config.province)  # unknown province: a clear error before connecting
    metrics.serve(settings)
    adapter = DbAdapter(settings, config)
    try:
        if args.once:
            total = adapter.run_once(args.timeout, progress=_ProgressLine())
            _report(adapter, total, final=True)
            return 1 if total.rejected else 0
        _run_until_stopped(adapter, args.interval)
        return 0
    finally:
        adapter.close()


def _run_until_stopped(adapter: DbAdapter, interval: float) -> None:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    last_unorderable = None
    try:
        while not stop.is_set():
            report = adapter.cycle(wait=min(interval, 5.0))
            unorderable = report.unorderable.count if report.unorderable else 0
            if report.read or report.rejected or report.broker_error or unorderable != last_unorderable:
                _report(adapter, report, final=False)
            last_unorderable = unorderable
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


class _ProgressLine:
    def __init__(self) -> None:
        self._shown = -1

    def __call__(self, total: CycleReport) -> None:
        if total.read != self._shown:
            print(f"\rread {total.read} rows, spooled {total.spooled}, acknowledged {total.acked}",
                  end="", file=sys.stderr, flush=True)
            self._shown = total.read


def _report(adapter: DbAdapter, report: CycleReport, final: bool) -> None:
    out: Any = sys.stdout if final else sys.stderr
    if final:
        print(file=sys.stderr)
    print(f"{adapter.config.table}: read {report.read} rows, {report.spooled} events spooled, "
          f"{report.acked} acknowledged, {report.pending} waiting, {len(report.rejected)} rows rejected",
          file=out)
    for problem in report.rejected[:_SHOWN_REJECTS]:
        print(f"  rejected: {problem}", file=sys.stderr)
    if report.rejected:
        more = len(report.rejected) - _SHOWN_REJECTS
        print(f"  {'and ' + str(more) + ' more; ' if more > 0 else ''}all in {adapter.errors_path}", file=sys.stderr)
    if report.normalised:
        print(f"  {report.normalised} identifiers written in canonical form, noted in {adapter.errors_path}",
              file=sys.stderr)
    if report.unorderable and report.unorderable.count:
        print(f"  warning: {report.unorderable.count} rows have a NULL {adapter.config.cursor} or "
              f"{adapter.config.key} and are never read (keys: {', '.join(report.unorderable.sample_keys)})",
              file=sys.stderr)
    if report.broker_error:
        print(f"  broker: {report.broker_error}; events wait in {adapter.state_path}", file=sys.stderr)
