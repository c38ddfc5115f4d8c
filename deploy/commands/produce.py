"""``roadx produce files|db``: the provincial adapters (daily files, database change capture).

Both find the broker the same way: ``ROADX_BOOTSTRAP_SERVERS``, else the running embedded
stack of the data directory (``deploy.stack.with_running_broker``), asked only after the
options are checked. Both serve Prometheus metrics on ``metrics_host:metrics_port`` when
``metrics_port`` > 0.

Every batch they send is a submission closed by a manifest signed with the province's SM2
key (a file; a poll batch of ``--batch`` rows), and the hub answers each with a receipt signed
with its own key, verified here with the hub's public key (``roadx keys hub-public``).
``produce files --watch DIR`` without ``--entity`` serves the party's inbox, one process for
all its registers: ``DIR/<register>/<YYYYMMDD>/<file>.xlsx|csv`` (``producers.files.watch``);
with ``--entity`` DIR holds that register's files only.

``produce files PATH...`` waits up to ``--receipt-seconds`` for each file's receipt, writes it
beside the file as ``<file>.receipt.json``, sends a file once more when none came, and says so
when still none comes; ``--watch`` never waits: each cycle it takes the receipts that came
(written beside the files in ``processed/``). ``produce db`` keeps receipts in its state file,
resends the same way, and shows how many submissions wait for one. ``--receipt-seconds 0``
sends the manifests without waiting for receipts.

Their long-running modes (``files --watch``, ``db`` without ``--once``) run through the
worker shell (``deploy.worker``): SIGTERM or Ctrl-C stops them after the file or poll in
hand, and their exit status is the shell's table. Exit status of ``produce files``: 0 every
file loaded without bad rows (or skipped as already processed) and receipted, 1 a file was
rejected, had bad rows, waits for the broker or got no valid receipt; of ``produce db
--once``: 0 every row read and acknowledged, 1 rows were rejected; of both, 2 an error
(``roadx: error: ...``), 70 a failure while watching or polling.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from producers.database import CycleReport, DbAdapter, DbAdapterConfig
from producers.errors import FileAdapterError, ProducerError
from producers.files import DropFolder, FileAdapter, FileAdapterOptions, FileResult, ReadLimits, load_mapping
from producers.receipts import ReceiptOutcome
from schemas.contract import ENTITY_TYPES
from schemas.settings import Settings

from ..stack import with_running_broker
from ..worker import EXIT_DONE, EXIT_INPUT_REFUSED, run_part, serve_metrics

_SHOWN_REJECTS = 10


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    produce = with_data_dir(sub.add_parser("produce", help="run a provincial adapter"))
    kinds = produce.add_subparsers(dest="adapter", required=True)
    _add_files(kinds)
    _add_db(kinds)
    for adapter in kinds.choices.values():  # after the adapter too: roadx produce files --data-dir DIR
        with_data_dir(adapter)


def _add_files(kinds: argparse._SubParsersAction) -> None:
    """Register ``files`` under ``roadx produce``."""
    p = kinds.add_parser(
        "files", help="load daily CSV/XLSX register files (full snapshots or upserts)",
        description="Load daily files of one party: CSV (UTF-8, UTF-8 BOM, GBK/GB18030) or XLSX with canonical "
                    "or Chinese column labels. A file is a full snapshot by default: creates, updates and deletes "
                    "against the previous one. Bad rows go to <file>.errors.csv; unreadable files to rejected/. "
                    "--watch DIR without --entity serves the party's inbox of every register it publishes, laid "
                    "out DIR/<register>/<YYYYMMDD>/<file> (前置机文件交换, 按日传输).")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files to load, in order")
    p.add_argument("--party", "--province", dest="province", required=True, metavar="P",
                   help="the party whose files these are: a province's two-digit GB/T 2260 code, 66 (the Corps), "
                        "CJ or ZJ (the navigation administrations); see roadx parties (--province: its first name)")
    p.add_argument("--entity", choices=ENTITY_TYPES,
                   help="the register the files hold (required with PATH; with --watch, DIR holds only its files; "
                        "without it --watch DIR is the party's inbox of every register)")
    p.add_argument("--watch", type=Path, metavar="DIR",
                   help="load files dropped into DIR as they are complete: with --entity, files directly in DIR; "
                        "without, the party's inbox DIR/<register>/<YYYYMMDD>/<file>.xlsx|csv (deploy/README.md)")
    p.add_argument("--once", action="store_true", help="--watch: load what is ready now, then exit")
    p.add_argument("--settle-seconds", type=float, default=2.0,
                   help="--watch: a file must be unchanged this long to be picked up (default 2)")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="--watch: seconds between scans (default 2)")
    p.add_argument("--incremental", action="store_true", help="rows are upserts; a missing row is not a delete")
    p.add_argument("--mapping", type=Path, metavar="FILE",
                   help='JSON {"column label": "field"} for this party\'s headers (null ignores a column); '
                        '"constants": {"field": "value"} gives every row a value for a field without a column')
    p.add_argument("--max-line-bytes", type=int, default=ReadLimits.max_line_bytes,
                   help=f"longest accepted line or sheet row (default {ReadLimits.max_line_bytes})")
    p.add_argument("--max-file-bytes", type=int, default=ReadLimits.max_file_bytes,
                   help=f"largest accepted file (default {ReadLimits.max_file_bytes})")
    p.add_argument("--spool-limit", type=int, default=FileAdapterOptions.max_pending,
                   help="wait for the broker while this many events are unacknowledged "
                        f"(default {FileAdapterOptions.max_pending})")
    p.add_argument("--delivery-timeout", type=float, default=FileAdapterOptions.delivery_timeout_s,
                   help="seconds to wait for the broker before giving up; events stay spooled (default 120)")
    p.add_argument("--allow-mass-delete", action="store_true",
                   help="load a snapshot even if it deletes more than half of the previous one")
    p.add_argument("--receipt-seconds", type=float, default=FileAdapterOptions.receipt_seconds,
                   help="wait this long for the hub's receipt of a file, then send the file once more and wait "
                        f"again; 0: do not wait (default {FileAdapterOptions.receipt_seconds:g})")
    p.add_argument("--json", action="store_true", help="print one JSON object per file (after its receipt)")
    p.set_defaults(handler=run_files)


def run_files(settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.paths) == bool(args.watch):
        raise FileAdapterError("give either PATH... or --watch DIR")
    if args.paths and not args.entity:
        raise FileAdapterError("--entity is required when loading files by PATH")
    if args.mapping and not args.entity:
        raise FileAdapterError("--mapping needs --entity (a mapping belongs to one entity)")
    refusal = settings.parties().refusal(args.province, args.entity) \
        if args.entity and args.province in settings.provinces else None
    if refusal is not None:  # before any file is read or the broker touched
        raise FileAdapterError(f"register_not_allowed: {refusal}")
    for name in ("max_line_bytes", "max_file_bytes", "spool_limit"):
        if getattr(args, name) < 1:
            raise FileAdapterError(f"--{name.replace('_', '-')} must be at least 1")
    if args.delivery_timeout <= 0 or args.settle_seconds < 0 or args.poll_seconds <= 0 or args.receipt_seconds < 0:
        raise FileAdapterError("--delivery-timeout and --poll-seconds must be positive, --settle-seconds and "
                               "--receipt-seconds not negative")
    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        raise FileAdapterError(f"no such file: {', '.join(missing)}")
    options = FileAdapterOptions(
        incremental=args.incremental,
        mapping=load_mapping(args.mapping, args.entity) if args.mapping else {},
        limits=ReadLimits(max_file_bytes=args.max_file_bytes, max_line_bytes=args.max_line_bytes),
        max_pending=args.spool_limit, delivery_timeout_s=args.delivery_timeout,
        max_delete_share=None if args.allow_mass_delete else FileAdapterOptions.max_delete_share,
        uscc_allow=settings.uscc_allow(), receipt_seconds=args.receipt_seconds,
    )
    settings = with_running_broker(settings)
    serve_metrics(settings)
    progress = ProgressLine()
    results: list[FileResult] = []

    def report(result: FileResult) -> None:
        progress.clear()
        if args.json and args.watch:
            print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)
        elif not args.json:  # by PATH, the JSON of a file is printed once its receipt came (or did not)
            print(describe(result), flush=True)
        results.append(result)

    if args.watch:
        return _watch(settings, args, options, progress, report, results)
    with FileAdapter(settings, args.province, args.entity, options, progress) as adapter:
        for resumed in adapter.resume():
            report(resumed)
        for path in args.paths:
            report(adapter.process(path))
        if options.receipt_seconds > 0 and any(r.submission for r in results):
            if not args.json:
                print(f"waiting for the hub's receipts (up to {options.receipt_seconds:g}s, then once more)",
                      file=sys.stderr, flush=True)
            adapter.await_receipts(results)
    for result in results:
        if args.json:
            print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)
        elif result.submission and options.receipt_seconds > 0:
            print(describe_receipt(result), flush=True)
    return _files_status(results, options.receipt_seconds > 0)


def _files_status(results: list[FileResult], receipts: bool = False) -> int:
    loaded = all(r.status in ("loaded", "duplicate") and not r.bad_rows for r in results)
    receipted = not receipts or all(r.receipt_status is not None for r in results if r.submission)
    return EXIT_DONE if loaded and receipted else EXIT_INPUT_REFUSED


def _watch(settings: Settings, args: argparse.Namespace, options: FileAdapterOptions,
           progress: "ProgressLine", report: Callable[[FileResult], None], results: list[FileResult]) -> int:
    """The drop folder, through the worker shell: SIGTERM or Ctrl-C stops it after the file in hand."""
    folder = DropFolder(settings, args.province, args.watch, args.entity, options, progress)

    def watch(stop: threading.Event) -> int:
        if not args.once:
            print(f"watching {args.watch} for party {args.province} (Ctrl-C to stop)", file=sys.stderr)
        folder.run(args.settle_seconds, args.poll_seconds, report, stop, once=args.once,
                   on_receipt=lambda outcome: print(describe_outcome(outcome), flush=True))
        return _files_status(results)

    try:
        return run_part("files adapter", settings, watch)
    finally:
        folder.close()


def describe(result: FileResult) -> str:
    """One line per file for people."""
    name = result.path.name
    if result.status == "duplicate":
        return f"{name}: skipped, {result.reason}"
    if result.status == "rejected":
        return f"{name}: rejected, {result.reason} (moved to {result.moved_to})"
    if result.status == "waiting":
        return f"{name}: waiting, {result.reason}"
    text = (f"{name}: {'resumed and ' if result.resumed else ''}loaded {result.rows} rows ({result.encoding}), "
            f"{result.creates} created, {result.updates} updated, {result.deletes} deleted, {result.events} events")
    if result.bad_rows:
        text += f"; {result.bad_rows} bad rows reported in {result.error_report or 'the error report'}"
    if result.normalised:
        text += f"; {result.normalised} identifiers written in canonical form, noted in {result.error_report}"
    return text


def describe_receipt(result: FileResult) -> str:
    """The receipt line of a loaded file."""
    name = result.path.name
    again = f" after sending it {result.resent + 1} times" if result.resent else ""
    if result.receipt_status is None:
        return f"{name}: no receipt{again}: {result.receipt_problem or 'none came'}"
    where = f", written to {result.receipt}" if result.receipt else ""
    return f"{name}: receipt {result.receipt_status}{again}{where}"


def describe_outcome(outcome: ReceiptOutcome) -> str:
    """One line for a receipt the drop folder took, refused, or is still without."""
    name = Path(outcome.place).name if outcome.place else outcome.submission
    if outcome.outcome == "received":
        return f"{name}: receipt {outcome.status}, written beside it"
    if outcome.outcome == "refused":
        return f"{name}: receipt refused, {outcome.reason}"
    if outcome.outcome == "resent":
        return f"{name}: no receipt yet, sent once more"
    return f"{name}: no receipt: {outcome.reason}"


class ProgressLine:
    """Progress of a large file on stderr, at most a few updates a second."""

    def __init__(self, stream=None, interval_s: float = 0.5) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval_s
        self._last = 0.0
        self._shown = False

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < self._interval and done != total:
            return
        self._last = now
        text = f"{phase} {done}" + (f"/{total}" if total is not None else " rows")
        print(f"\r{text:<40}", end="", file=self._stream, flush=True)
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            print(file=self._stream, flush=True)
            self._shown = False


def _add_db(kinds: argparse._SubParsersAction) -> None:
    """Register ``db`` under ``roadx produce``."""
    p = kinds.add_parser(
        "db", help="capture changes of a provincial database table (cursor polling or outbox)",
        description="Poll a table by a monotonic cursor column (or read an outbox table) and publish "
                    "signed change events to prov.<P>.changes. Deletes: --deleted-column (cursor mode) "
                    "or the op column of an --outbox table; hard SQL deletes are not seen by cursor polling.")
    p.add_argument("--party", "--province", dest="province", required=True, metavar="P",
                   help="the party whose database this is (see roadx parties; --province: its first name)")
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
    p.add_argument("--receipt-seconds", type=float, default=DbAdapterConfig.receipt_seconds,
                   help="send a submission (a poll batch) once more when the hub's receipt has not come after this "
                        f"many seconds; 0: take no receipts (default {DbAdapterConfig.receipt_seconds:g})")
    p.add_argument("--once", action="store_true",
                   help="read everything new, wait until acknowledged, exit (receipts still to come are taken "
                        "by the next run)")
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
    if args.interval <= 0 or args.timeout <= 0 or args.receipt_seconds < 0:
        raise ProducerError("--interval and --timeout must be positive, --receipt-seconds not negative")
    config = DbAdapterConfig(
        province=args.province, url=args.url, table=args.table, entity=args.entity, key=args.key,
        cursor=args.cursor, outbox=args.outbox, op_column=args.op_column, payload_column=args.payload_column,
        deleted_column=args.deleted_column, column_map=parse_map(args.map), system=args.system,
        batch_size=args.batch, spool_limit=args.spool_limit, receipt_seconds=args.receipt_seconds)
    refusal = settings.parties().refusal(config.province, config.entity) \
        if config.province in settings.provinces else None
    if refusal is not None:  # before the broker or the source is touched
        raise ProducerError(f"register_not_allowed: {refusal}")
    settings = with_running_broker(settings)
    settings.province_key(config.province)  # unknown party: a clear error before connecting
    serve_metrics(settings)
    adapter = DbAdapter(settings, config)
    try:
        if args.once:
            total = adapter.run_once(args.timeout, progress=_DbProgressLine())
            _report(adapter, total, final=True)
            return EXIT_INPUT_REFUSED if total.rejected else EXIT_DONE
        return run_part("db adapter", settings, lambda stop: _poll_until_stopped(adapter, args.interval, stop))
    finally:
        adapter.close()


def _poll_until_stopped(adapter: DbAdapter, interval: float, stop: threading.Event) -> int:
    """Poll every ``interval`` seconds until ``stop`` (the worker shell sets it on SIGTERM or Ctrl-C)."""
    last_unorderable = None
    while not stop.is_set():
        report = adapter.cycle(wait=min(interval, 5.0))
        unorderable = report.unorderable.count if report.unorderable else 0
        if report.read or report.rejected or report.broker_error or unorderable != last_unorderable \
                or report.receipts or report.refused_receipts or report.resent or report.missing:
            _report(adapter, report, final=False)
        last_unorderable = unorderable
        stop.wait(interval)
    return EXIT_DONE


class _DbProgressLine:
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
    if report.submissions or report.receipts or report.waiting_receipts:
        print(f"  submissions: {report.submissions} closed, {report.receipts} receipts received, "
              f"{report.waiting_receipts} waiting for a receipt, {report.resent} sent again, "
              f"{report.missing} still without one", file=out)
    for refused in report.refused_receipts:
        print(f"  receipt refused: {refused}", file=sys.stderr)
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
