"""Watch a drop folder: load each daily file once it has stopped changing.

A file is picked up when its size and mtime did not change between two scans at least
``settle_s`` apart. Names that say a file is still being written (``*.part``, ``*.tmp``,
``~$…``, hidden files) are never picked up. Loaded files move to ``processed/`` beside them
with their error report; unreadable ones to ``rejected/`` with a ``.reason`` file.

Two layouts:

- **One register** (``--entity``): every file directly in the folder holds that register.
- **A party's inbox** (no ``--entity``): the front-end-processor convention of the daily
  exchange (前置机文件交换, 按日传输), one folder per party laid out by register and day, so one
  process carries all the party's registers::

      <inbox>/<register>/<YYYYMMDD>/<file>.xlsx|.csv
      e.g. inbox/ship/20240601/长江航务管理局-营运船舶.xlsx
           inbox/营运船舶/20240601/ships.csv

  ``<register>`` is the register's entity type (``ship``, ``shipping_enterprise``,
  ``port_enterprise``, ``waterway_project``, ``operator`` …) or its Chinese name (营运船舶);
  ``<YYYYMMDD>`` is the day the file is of. A file directly in ``<register>/`` is taken as
  well, and one directly in the inbox names its register by its file name
  (``vehicle_20240601.csv``). Files load oldest day first (then by time written), each
  register in its own snapshot; ``processed/`` and ``rejected/`` are made in the file's own
  folder (``inbox/ship/20240601/processed/``). A file is moved to ``rejected/`` with its rule
  when its register folder names no register (``unknown_entity``), its day folder is not
  ``YYYYMMDD`` (``bad_date_folder``), or the party may not publish that register
  (``register_not_allowed``); the other registers go on.

Receipts never hold up the folder: each cycle takes the receipts that came for the files
loaded before (written beside them in ``processed/``), and sends once more those overdue.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from pathlib import Path
from typing import Callable

from schemas import registers
from schemas.settings import Settings

from .daily_file import REASON_SUFFIX, REJECTED_DIR, REPORT_SUFFIX, move_aside, report_path
from ..errors import FileAdapterError, FileRejected, PublishError, ReceiptError
from ..receipts import ReceiptOutcome
from .adapter import FileAdapter, FileAdapterOptions, FileResult, Progress
from .headers import entity_from_name, register_of
from .receipt_files import RECEIPT_SUFFIX, receipt_path

PROCESSED_DIR = "processed"
ASIDE_DIRS = (PROCESSED_DIR, REJECTED_DIR)
_DAY = re.compile(r"[0-9]{8}")
WRITING_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".filepart", ".swp")
Stats = dict[Path, tuple[int, int]]


def still_being_written(name: str) -> bool:
    lower = name.lower()
    return lower.startswith((".", "~$")) or lower.endswith(WRITING_SUFFIXES)


def scan(directory: Path) -> Stats:
    """(size, mtime ns) of every candidate file directly in ``directory``."""
    stats: Stats = {}
    for path in directory.iterdir():
        name = path.name
        if still_being_written(name) or name.endswith((REPORT_SUFFIX, REASON_SUFFIX, RECEIPT_SUFFIX)):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        if path.is_file():
            stats[path] = (st.st_size, st.st_mtime_ns)
    return stats


def scan_inbox(inbox: Path) -> Stats:
    """(size, mtime ns) of every candidate file of a party's inbox: directly in it, in
    ``<register>/`` and in ``<register>/<day>/`` (never in ``processed/`` or ``rejected/``)."""
    stats = scan(inbox)
    for register in _folders(inbox):
        stats.update(scan(register))
        for day in _folders(register):
            stats.update(scan(day))
    return stats


def _folders(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if p.is_dir() and p.name not in ASIDE_DIRS
                and not still_being_written(p.name)]
    except OSError:
        return []


def inbox_place(inbox: Path, path: Path) -> tuple[str | None, str, FileRejected | None]:
    """(register, day, why not) of a file of a party's inbox; day is "" when its folder names none."""
    relative = path.relative_to(inbox).parts
    if len(relative) == 1:
        return entity_from_name(path.name), "", None
    entity = register_of(relative[0])
    if entity is None:
        return None, "", FileRejected("unknown_entity", f"{path.name}: the folder {relative[0]!r} names no register "
                                      f"(an entity type such as ship or its Chinese name such as 营运船舶)")
    if len(relative) == 2:
        return entity, "", None
    day = relative[1]
    if not _is_day(day):
        return entity, "", FileRejected("bad_date_folder", f"{path.name}: the folder {day!r} is not a day "
                                        f"written YYYYMMDD (e.g. {relative[0]}/20240601/)")
    return entity, day, None


def _is_day(name: str) -> bool:
    if not _DAY.fullmatch(name):
        return False
    try:
        datetime.date(int(name[:4]), int(name[4:6]), int(name[6:]))
    except ValueError:
        return False
    return True


def ready_files(current: Stats, previous: Stats, now_ns: int, settle_s: float) -> list[Path]:
    """Files unchanged since the previous scan and untouched for ``settle_s``, oldest first."""
    settle_ns = int(settle_s * 1e9)
    ready = [p for p, stat in current.items()
             if previous.get(p) == stat and now_ns - stat[1] >= settle_ns]
    return sorted(ready, key=lambda p: (current[p][1], p.name))


class DropFolder:
    """Loads the files of one party's drop folder (``entity``: one register's; None: its inbox of
    every register), one adapter per entity."""

    def __init__(self, settings: Settings, province: str, directory: Path, entity: str | None,
                 options: FileAdapterOptions, progress: Progress | None = None) -> None:
        self.settings, self.province, self.directory = settings, province, Path(directory)
        self.entity, self.options, self.progress = entity, options, progress
        self._adapters: dict[str, FileAdapter] = {}
        self._previous: Stats = {}
        if not self.directory.is_dir():
            raise FileAdapterError(f"--watch {self.directory} is not a directory")
        refusal = None if entity is None or province not in settings.provinces \
            else settings.parties().refusal(province, entity)
        if refusal is not None:
            raise FileAdapterError(f"register_not_allowed: {refusal}")

    def poll(self, settle_s: float) -> list[FileResult]:
        """One scan: load every file that is ready. A broker outage stops the scan (retried next poll)."""
        current = self._scan()
        results = []
        ready = ready_files(current, self._previous, time.time_ns(), settle_s)
        if self.entity is None:  # the inbox: oldest day first
            ready.sort(key=lambda p: (inbox_place(self.directory, p)[1], current[p][1], p.name))
        for path in ready:
            result = self._load(path)
            results.append(result)
            if result.status == "waiting":
                break
            current.pop(path, None)
        self._previous = current
        return results

    def run(self, settle_s: float, poll_s: float, report: Callable[[FileResult], None],
            stop: threading.Event | None = None, once: bool = False,
            on_receipt: Callable[[ReceiptOutcome], None] | None = None) -> list[FileResult]:
        """Poll until ``stop`` is set; with ``once``, two scans ``settle_s`` apart and return.
        Each cycle also checks receipts, handing each outcome to ``on_receipt``."""
        stop = stop or threading.Event()
        everything: list[FileResult] = []
        self._previous = self._scan()
        while True:
            stop.wait(settle_s if once else poll_s)
            if stop.is_set():
                break
            for result in self.poll(settle_s):
                report(result)
                everything.append(result)
            for outcome in self.check_receipts():
                if on_receipt is not None:
                    on_receipt(outcome)
            if once:
                break
        return everything

    def check_receipts(self) -> list[ReceiptOutcome]:
        """The receipts that came for files loaded before, and the submissions resent or given up;
        a broker outage leaves them for the next cycle."""
        outcomes: list[ReceiptOutcome] = []
        for adapter in self._adapters.values():
            try:
                outcomes += adapter.check_receipts()
            except (PublishError, ReceiptError):  # the broker is away: next cycle
                continue
        return outcomes

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()
        self._adapters.clear()

    def _scan(self) -> Stats:
        return scan(self.directory) if self.entity is not None else scan_inbox(self.directory)

    def _load(self, path: Path) -> FileResult:
        entity, misplaced = self.entity, None
        if entity is None:
            entity, _day, misplaced = inbox_place(self.directory, path)
        if misplaced is not None:
            return FileResult(path, "rejected", reason=str(misplaced), moved_to=move_aside(path, misplaced))
        if entity is None:
            rejection = FileRejected("unknown_entity", f"{path.name}: the file name does not start with an entity "
                                     f"({', '.join(r.entity_type for r in registers.declarations())} or "
                                     f"{', '.join(r.name_zh for r in registers.declarations())}); or run with "
                                     f"--entity, or put it in the inbox's <register>/<YYYYMMDD>/ folder")
            return FileResult(path, "rejected", reason=str(rejection), moved_to=move_aside(path, rejection))
        refusal = self.settings.parties().refusal(self.province, entity)
        if refusal is not None:  # a file of a register the party may not publish: refused whole, the folder goes on
            rejection = FileRejected("register_not_allowed", f"{path.name}: {refusal}")
            return FileResult(path, "rejected", reason=str(rejection), moved_to=move_aside(path, rejection))
        adapter = self._adapters.get(entity)
        if adapter is None:
            adapter = self._adapters[entity] = FileAdapter(self.settings, self.province, entity, self.options,
                                                           self.progress)
        try:
            result = adapter.process(path)
        except PublishError as exc:
            return FileResult(path, "waiting", reason=f"broker: {exc}; the events wait in the spool and are "
                                                      f"sent on the next poll")
        if result.status in ("loaded", "duplicate"):
            result.moved_to = _move_processed(path)
            if result.submission is not None:
                adapter.relocate(result.submission, result.moved_to)
        return result


def _move_processed(path: Path) -> Path:
    folder = path.parent / PROCESSED_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{time.time_ns()}{path.suffix}"
    report = report_path(path)
    path.replace(target)
    if report.exists():
        report.replace(report_path(target))
    receipt = receipt_path(path)
    if receipt.exists():
        receipt.replace(receipt_path(target))
    return target
