"""Watch a drop folder: load each daily file once it has stopped changing.

A file is picked up when its size and mtime did not change between two scans at least
``settle_s`` apart. Names that say a file is still being written (``*.part``, ``*.tmp``,
``~$…``, hidden files) are never picked up. Loaded files move to ``processed/`` with
their error report; unreadable ones to ``rejected/`` with a ``.reason`` file. The
entity comes from ``--entity`` or from the file name (``vehicle_20240601.csv``).

Receipts never hold up the folder: each cycle takes the receipts that came for the files
loaded before (written beside them in ``processed/``), and sends once more those overdue.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from schemas.settings import Settings

from .daily_file import REASON_SUFFIX, REPORT_SUFFIX, move_aside, report_path
from ..errors import FileAdapterError, FileRejected, PublishError, ReceiptError
from ..receipts import ReceiptOutcome
from .adapter import FileAdapter, FileAdapterOptions, FileResult, Progress
from .headers import entity_from_name
from .receipt_files import RECEIPT_SUFFIX, receipt_path

PROCESSED_DIR = "processed"
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


def ready_files(current: Stats, previous: Stats, now_ns: int, settle_s: float) -> list[Path]:
    """Files unchanged since the previous scan and untouched for ``settle_s``, oldest first."""
    settle_ns = int(settle_s * 1e9)
    ready = [p for p, stat in current.items()
             if previous.get(p) == stat and now_ns - stat[1] >= settle_ns]
    return sorted(ready, key=lambda p: (current[p][1], p.name))


class DropFolder:
    """Loads the files of one province's drop folder, one adapter per entity."""

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
        current = scan(self.directory)
        results = []
        for path in ready_files(current, self._previous, time.time_ns(), settle_s):
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
        self._previous = scan(self.directory)
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

    def _load(self, path: Path) -> FileResult:
        entity = self.entity or entity_from_name(path.name)
        if entity is None:
            rejection = FileRejected("unknown_entity", f"{path.name}: the file name does not start with an entity "
                                     f"(operator, vehicle, practitioner, licence, case or 经营业户, 营运车辆, "
                                     f"从业人员, 电子证照, 执法案件); or run with --entity")
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
