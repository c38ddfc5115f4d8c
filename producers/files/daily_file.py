"""One daily file → keyed entity records and row failures; its error report; moving a file aside.

``parse_daily_file`` keeps the first row of each entity key and reports later ones as
``duplicate_key``. A row that fails a rule is reported with its number, field, rule,
message and raw cells; when its key fields still parse, the key is remembered so that a
bad row does not count as a deletion. An identifier the parser rewrote into canonical form
is a note (rule ``normalised``, naming the value as given and as stored): it goes into the
same report but does not make the row bad.
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import FileRejected, BadRow
from . import fields
from .headers import column_scales, constants_of, map_header
from .rows import Normalised, RowParser
from .tabular import ReadLimits, formula_like, open_table

REPORT_SUFFIX = ".errors.csv"
REASON_SUFFIX = ".reason"
REJECTED_DIR = "rejected"
REPORT_COLUMNS = ("row", "field", "rule", "message", "raw")
PROGRESS_EVERY = 10_000
NORMALISED = "normalised"


@dataclass(frozen=True)
class RowFailure:
    row: int
    field: str | None
    rule: str
    message: str
    raw: tuple[str, ...]


@dataclass
class ParsedFile:
    format: str
    encoding: str
    rows: int = 0
    current: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    bad_keys: set[str] = field(default_factory=set)
    failures: list[RowFailure] = field(default_factory=list)
    notes: list[RowFailure] = field(default_factory=list)  # values normalised in rows that loaded


def parse_daily_file(path: Path, entity: str, mapping: Mapping[str, str | None] = {},
                     limits: ReadLimits = ReadLimits(), uscc_allow: frozenset[str] = frozenset(),
                     progress: Callable[[int], None] | None = None,
                     today: datetime.date | None = None) -> ParsedFile:
    """Read and parse every row; raises ``FileRejected`` if the file cannot be read at all.

    ``today``: birth dates after it are row errors (None: not compared).
    """
    table = open_table(path, limits)
    try:
        columns = map_header(entity, table.header, fields.required_fields(entity), mapping)
        parser = RowParser(entity, columns, uscc_allow, constants_of(mapping), today,
                           column_scales(entity, table.header, columns))
        parsed = ParsedFile(table.format, table.encoding)
        current, failures = parsed.current, parsed.failures
        normalised: list[Normalised] = []
        for raw in table.rows:
            parsed.rows += 1
            if progress is not None and parsed.rows % PROGRESS_EVERY == 0:
                progress(parsed.rows)
            if raw.error is not None:
                failures.append(RowFailure(raw.number, raw.error.field, raw.error.rule, raw.error.detail, raw.cells))
                continue
            normalised.clear()
            try:
                record = parser.parse(raw.cells, normalised)
            except BadRow as exc:
                failures.append(RowFailure(raw.number, exc.field, exc.rule, exc.detail, raw.cells))
                key = parser.key_of(raw.cells)
                if key is not None:
                    parsed.bad_keys.add(key)
                continue
            key = fields.entity_key(entity, record)
            first = current.get(key)
            if first is not None:
                failures.append(RowFailure(raw.number, None, "duplicate_key",
                                           f"{key} was already given by row {first[0]}; this row is ignored", raw.cells))
                continue
            current[key] = (raw.number, record)
            parsed.notes += [RowFailure(raw.number, n.field, NORMALISED, f"{n.raw!r} is stored in canonical form "
                                        f"as {n.value!r}", raw.cells) for n in normalised]
        if progress is not None:
            progress(parsed.rows)
        return parsed
    finally:
        table.close()


def report_path(input_path: Path) -> Path:
    return input_path.with_name(input_path.name + REPORT_SUFFIX)


def write_error_report(input_path: Path, failures: list[RowFailure], target: Path | None = None) -> Path:
    """Write ``<input>.errors.csv`` (UTF-8 with BOM, opens in Excel) beside the input, or at ``target``.

    ``failures`` may hold notes (rule ``normalised``) too; rows are written in row order.
    """
    path = Path(target) if target is not None else report_path(input_path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(REPORT_COLUMNS)
        for failure in sorted(failures, key=lambda f: f.row):
            raw = ",".join(_defused(c) for c in failure.raw)
            writer.writerow((failure.row, failure.field or "", failure.rule, _defused(failure.message), raw))
    tmp.replace(path)
    return path


def _defused(text: str) -> str:
    """A value that a spreadsheet would run as a formula, made inert with a leading quote."""
    return "'" + text if formula_like(text) else text


def move_aside(path: Path, rejection: FileRejected) -> Path:
    """Move an unreadable file into ``rejected/`` beside it, with ``<name>.reason``; returns its new path."""
    folder = path.parent / REJECTED_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists() or target.with_name(target.name + REASON_SUFFIX).exists():
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    path.replace(target)
    target.with_name(target.name + REASON_SUFFIX).write_text(
        f"file: {path.name}\nrule: {rejection.rule}\nreason: {rejection}\n"
        f"rejected at: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n", "utf-8")
    return target
