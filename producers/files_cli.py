"""``roadx produce files``: load daily CSV/XLSX files (or watch a drop folder) into the exchange.

Serves Prometheus metrics on ``metrics_host:metrics_port`` when ``metrics_port`` > 0.
Exit status: 0 every file loaded without bad rows (or skipped as already processed),
1 a file was rejected, had bad rows or waits for the broker; 2 an error (``roadx: error: ...``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from deploy.stack import with_running_broker

from schemas.contract import ENTITY_TYPES
from schemas.settings import Settings

from . import metrics
from .errors import FileAdapterError
from .file_adapter import FileAdapter, FileAdapterOptions, FileResult
from .file_watch import DropFolder
from .headers import load_mapping
from .tabular import ReadLimits


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Register ``files`` under ``roadx produce``."""
    p = kinds.add_parser(
        "files", help="load daily CSV/XLSX register files (full snapshots or upserts)",
        description="Load daily files of one province: CSV (UTF-8, UTF-8 BOM, GBK/GB18030) or XLSX with canonical "
                    "or Chinese column labels. A file is a full snapshot by default: creates, updates and deletes "
                    "against the previous one. Bad rows go to <file>.errors.csv; unreadable files to rejected/.")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files to load, in order")
    p.add_argument("--province", required=True, help="two-digit GB/T 2260 province code")
    p.add_argument("--entity", choices=ENTITY_TYPES,
                   help="what the files hold (required with PATH; with --watch, else taken from each file name)")
    p.add_argument("--watch", type=Path, metavar="DIR", help="load files dropped into DIR as they are complete")
    p.add_argument("--once", action="store_true", help="--watch: load what is ready now, then exit")
    p.add_argument("--settle-seconds", type=float, default=2.0,
                   help="--watch: a file must be unchanged this long to be picked up (default 2)")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="--watch: seconds between scans (default 2)")
    p.add_argument("--incremental", action="store_true", help="rows are upserts; a missing row is not a delete")
    p.add_argument("--mapping", type=Path, metavar="FILE",
                   help='JSON {"column label": "field"} for this province\'s headers (null ignores a column); '
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
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.set_defaults(handler=run_files)


def run_files(settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.paths) == bool(args.watch):
        raise FileAdapterError("give either PATH... or --watch DIR")
    if args.paths and not args.entity:
        raise FileAdapterError("--entity is required when loading files by PATH")
    if args.mapping and not args.entity:
        raise FileAdapterError("--mapping needs --entity (a mapping belongs to one entity)")
    for name in ("max_line_bytes", "max_file_bytes", "spool_limit"):
        if getattr(args, name) < 1:
            raise FileAdapterError(f"--{name.replace('_', '-')} must be at least 1")
    if args.delivery_timeout <= 0 or args.settle_seconds < 0 or args.poll_seconds <= 0:
        raise FileAdapterError("--delivery-timeout and --poll-seconds must be positive, --settle-seconds not negative")
    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        raise FileAdapterError(f"no such file: {', '.join(missing)}")
    options = FileAdapterOptions(
        incremental=args.incremental,
        mapping=load_mapping(args.mapping, args.entity) if args.mapping else {},
        limits=ReadLimits(max_file_bytes=args.max_file_bytes, max_line_bytes=args.max_line_bytes),
        max_pending=args.spool_limit, delivery_timeout_s=args.delivery_timeout,
        max_delete_share=None if args.allow_mass_delete else FileAdapterOptions.max_delete_share,
        uscc_allow=settings.uscc_allow(),
    )
    settings = with_running_broker(settings)
    metrics.serve(settings)
    progress = ProgressLine()
    results: list[FileResult] = []

    def report(result: FileResult) -> None:
        progress.clear()
        print(json.dumps(result.as_dict(), ensure_ascii=False) if args.json else describe(result), flush=True)
        results.append(result)

    if args.watch:
        _watch(settings, args, options, progress, report)
    else:
        with FileAdapter(settings, args.province, args.entity, options, progress) as adapter:
            for resumed in adapter.resume():
                report(resumed)
            for path in args.paths:
                report(adapter.process(path))
    return 0 if all(r.status in ("loaded", "duplicate") and not r.bad_rows for r in results) else 1


def _watch(settings: Settings, args: argparse.Namespace, options: FileAdapterOptions,
           progress: "ProgressLine", report) -> None:
    folder = DropFolder(settings, args.province, args.watch, args.entity, options, progress)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if not args.once:
            print(f"watching {args.watch} for province {args.province} (Ctrl-C to stop)", file=sys.stderr)
        folder.run(args.settle_seconds, args.poll_seconds, report, stop, once=args.once)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
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
