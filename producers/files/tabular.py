"""Read a daily file (CSV or XLSX) as a header and raw rows of text cells.

CSV is read line by line from bytes: the encoding is detected from the first 64 KiB
(UTF-8 with or without BOM, else GB18030, which contains GBK), a line longer than
``max_line_bytes`` is skipped and reported, never held in memory whole. XLSX is read
with openpyxl in read-only mode; formulas are kept as their text (``=...``) so that
formula injection is seen; a workbook with data on a second sheet (``extra_sheets``) or merged
cells in its header row (``merged_header``) is refused rather than guessed at. A file that
cannot be read at all raises ``FileRejected``.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from ..errors import FileRejected, BadRow

SAMPLE_BYTES = 64 * 1024
CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
DELIMITERS = (",", "\t", ";", "|")
_UTF8_BOM = codecs.BOM_UTF8
_ZIP_MAGIC = b"PK\x03\x04"
_INERT_SIGNED = re.compile(r"^[+-][0-9 ().,+-]*$")  # numbers, phone numbers, "-" or "--" for none
_FORMULA_START = ("=", "@", "\t", "\r")


@dataclass(frozen=True)
class ReadLimits:
    max_file_bytes: int = 1 << 30
    max_line_bytes: int = 64 * 1024


@dataclass(frozen=True)
class RawRow:
    """One data row: its line (CSV) or sheet row (XLSX) number, cells, or the reason it is unreadable."""

    number: int
    cells: tuple[str, ...]
    error: BadRow | None = None


@dataclass
class Table:
    path: Path
    format: str
    encoding: str
    header: tuple[str, ...]
    rows: Iterator[RawRow]
    _handle: IO | None = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def formula_like(value: str) -> bool:
    """True when a spreadsheet would run the value: ``=``, ``@``, tab/CR, or ``+``/``-`` before anything but digits."""
    if not value:
        return False
    if value.startswith(_FORMULA_START):
        return True
    return value[0] in "+-" and not _INERT_SIGNED.match(value)


def open_table(path: Path, limits: ReadLimits = ReadLimits()) -> Table:
    """Open a CSV or XLSX file; raises ``FileRejected`` naming why it cannot be read."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileRejected("unreadable_file", f"{path.name}: {exc.strerror or exc}") from exc
    if size == 0:
        raise FileRejected("empty_file", f"{path.name} is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise FileRejected("file_too_large", f"{path.name} has {size} bytes, the limit is {limits.max_file_bytes}")
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        return _open_xlsx(path, limits)
    if suffix in CSV_SUFFIXES:
        return _open_csv(path, limits)
    if suffix == ".xls":
        raise FileRejected("unsupported_format", f"{path.name} is an old Excel .xls file: save it as .xlsx or CSV")
    raise FileRejected("unsupported_format", f"{path.name}: only .csv and .xlsx files are read")


def detect_encoding(sample: bytes, name: str = "file") -> str:
    """``utf-8-sig``, ``utf-8`` or ``gb18030``; raises ``FileRejected`` for binary or other text."""
    if sample.startswith(_UTF8_BOM):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRejected("unsupported_encoding", f"{name} is UTF-16: save it as UTF-8 or GBK")
    if sample.startswith(_ZIP_MAGIC):
        raise FileRejected("binary_content", f"{name} is a ZIP archive (an Excel workbook?), not CSV text")
    if b"\x00" in sample:
        raise FileRejected("binary_content", f"{name} holds NUL bytes: it is a binary file, not CSV text")
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    raise FileRejected("unknown_encoding", f"{name} is neither UTF-8 nor GBK/GB18030 text")


def _open_csv(path: Path, limits: ReadLimits) -> Table:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise FileRejected("unreadable_file", f"{path.name}: {exc.strerror or exc}") from exc
    try:
        encoding = detect_encoding(handle.read(SAMPLE_BYTES), path.name)
        handle.seek(0)
        if encoding == "utf-8-sig":
            handle.read(len(_UTF8_BOM))
        text_encoding = "utf-8" if encoding == "utf-8-sig" else encoding
        lines = _LineSource(handle, text_encoding, limits.max_line_bytes)
        header_line = _first_content_line(lines, lines.bad, path.name)
        delimiter = max(DELIMITERS, key=header_line.count)
        try:
            header = tuple(_clean_label(c) for c in next(csv.reader([header_line], delimiter=delimiter)))
        except csv.Error as exc:
            raise FileRejected("malformed_csv", f"{path.name}: the header line cannot be read as CSV ({exc})") from exc
        rows = _csv_rows(csv.reader(lines, delimiter=delimiter), lines)
    except FileRejected:
        handle.close()
        raise
    return Table(path, "csv", encoding, _trim_header(header), rows, handle)


class _LineSource:
    """Text lines of a byte stream; ``number`` is the physical line last read.

    An oversized or undecodable line is given as an empty line and recorded in ``bad``.
    """

    def __init__(self, handle: IO[bytes], encoding: str, max_line: int) -> None:
        self._handle = handle
        self._encoding = encoding
        self._max_line = max_line
        self.number = 0
        self.bad: dict[int, BadRow] = {}

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._handle.readline(self._max_line + 1)
        if not line:
            raise StopIteration
        self.number += 1
        number = self.number
        if len(line) > self._max_line and not line.endswith(b"\n"):
            length = len(line)
            while True:
                more = self._handle.readline(1 << 20)
                length += len(more)
                if not more or more.endswith(b"\n"):
                    break
            self.bad[number] = BadRow(None, "line_too_long",
                                        f"line {number} has {length} bytes, the limit is {self._max_line}")
            return "\n"
        try:
            return line.decode(self._encoding)
        except UnicodeDecodeError as exc:
            self.bad[number] = BadRow(None, "undecodable_line",
                                        f"line {number} is not valid {self._encoding}: {exc.reason}")
            return "\n"


def _first_content_line(lines: _LineSource, bad: dict[int, BadRow], name: str) -> str:
    for line in lines:
        if line.strip():
            return line
    if bad:
        raise FileRejected("no_header", f"{name}: the header line is unreadable ({next(iter(bad.values())).detail})")
    raise FileRejected("no_header", f"{name} has no header line (only blank lines)")


def _csv_rows(reader, lines: _LineSource) -> Iterator[RawRow]:
    try:
        for cells in reader:
            number = lines.number
            if not cells:
                error = lines.bad.get(number)
                if error is not None:
                    yield RawRow(number, (), error)
                continue
            if not any(c.strip() for c in cells):
                continue
            yield RawRow(number, tuple(cells))
    except csv.Error as exc:
        number = lines.number
        yield RawRow(number, (), BadRow(None, "malformed_csv", f"line {number}: {exc}; the rest of the file is not read"))


def _open_xlsx(path: Path, limits: ReadLimits) -> Table:
    from openpyxl import load_workbook

    with open(path, "rb") as probe:
        if probe.read(4) != _ZIP_MAGIC:
            raise FileRejected("not_xlsx", f"{path.name} is named .xlsx but is not an Excel workbook")
    try:
        workbook = load_workbook(path, read_only=True, data_only=False)
        sheet = workbook.worksheets[0]
        values = sheet.iter_rows(values_only=True)
        header_cells = None
        number = 0
        for number, row in enumerate(values, start=1):
            if row and any(v not in (None, "") for v in row):
                header_cells = row
                break
    except Exception as exc:  # openpyxl raises many types on a damaged workbook
        raise FileRejected("not_xlsx", f"{path.name} is not a readable Excel workbook: {type(exc).__name__}: {exc}") from exc
    if header_cells is None:
        workbook.close()
        raise FileRejected("no_header", f"{path.name}: the first sheet has no header row")
    try:
        _check_layout(path, workbook, number)
    except FileRejected:
        workbook.close()
        raise
    header = _trim_header(tuple(_clean_label(cell_text(v)) for v in header_cells))
    return Table(path, "xlsx", "xlsx", header, _xlsx_rows(values, number, limits.max_line_bytes, workbook))


def _check_layout(path: Path, workbook, header_number: int) -> None:
    """Refuse data on a sheet after the first, and merged cells in the header row."""
    try:
        extra = [sheet.title for sheet in workbook.worksheets[1:]
                 if any(v not in (None, "") for row in sheet.iter_rows(values_only=True) for v in row)]
        merged = sorted(ref for ref, first, last in _merged_ranges(workbook.worksheets[0])
                        if first <= header_number <= last)
    except Exception as exc:  # openpyxl raises many types on a damaged workbook
        raise FileRejected("not_xlsx", f"{path.name} is not a readable Excel workbook: {type(exc).__name__}: {exc}") from exc
    if extra:
        raise FileRejected("extra_sheets", f"{path.name} has data on more than one sheet (also {', '.join(extra)}): "
                           f"a daily file holds one register on its first sheet; put the others in files of their own")
    if merged:
        raise FileRejected("merged_header", f"{path.name}: header cells {', '.join(merged)} are merged: unmerge them "
                           f"so that every column has a label of its own")


_MERGE_REF = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"')


def _merged_ranges(sheet) -> set[tuple[str, int, int]]:
    """(range, first row, last row) of every merged range of a read-only sheet, scanning its XML."""
    found: set[tuple[str, int, int]] = set()
    source = sheet._get_source()
    try:
        tail = b""
        while chunk := source.read(1 << 20):
            data = tail + chunk
            for m in _MERGE_REF.finditer(data):
                first = int(m[2])
                last = int(m[4]) if m[4] else first
                ref = f"{m[1].decode()}{first}" + (f":{m[3].decode()}{last}" if m[3] else "")
                found.add((ref, first, last))
            tail = data[-256:]
    finally:
        source.close()
    return found


def _xlsx_rows(values, header_number: int, max_line: int, workbook) -> Iterator[RawRow]:
    try:
        for number, row in enumerate(values, start=header_number + 1):
            cells = tuple(cell_text(v) for v in row or ())
            if not any(c.strip() for c in cells):
                continue
            size = sum(len(c.encode("utf-8")) + 1 for c in cells)
            if size > max_line:
                yield RawRow(number, (), BadRow(None, "line_too_long",
                                                  f"row {number} has {size} bytes, the limit is {max_line}"))
                continue
            yield RawRow(number, cells)
    finally:
        workbook.close()


def cell_text(value: object) -> str:
    """A spreadsheet cell as text: integral numbers without ``.0``, dates as ISO text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _clean_label(label: str) -> str:
    return label.replace("\ufeff", "").strip()


def _trim_header(header: tuple[str, ...]) -> tuple[str, ...]:
    """Drop empty labels at the end (spreadsheet exports often pad rows)."""
    end = len(header)
    while end and not header[end - 1]:
        end -= 1
    return header[:end]
