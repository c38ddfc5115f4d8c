"""Bulk downloads of a national register (数据下载), streamed from the store.

A download is the current records of one register (any declared one, road or water): the rows
of its ``current_*`` view (``sinks.views``, personal numbers masked there) without the views' bookkeeping columns
(``last_op``, ``seq``), ordered by ``entity_key``; optionally only one party's (``province``),
only those whose latest version was committed at or after a time (``ts``), only the first
``limit``.

- ``parse_download_request`` checks the parameters as a query string gives them and builds a
  ``DownloadRequest``; a bad one raises ``DownloadError`` naming the parameter and the rule.
  Values reach the store only as bound parameters; the view comes from ``REGISTER_VIEWS``.
- ``stream_download`` answers a request with a ``Download``: content type, file name and the
  file as byte chunks, read from the store while the caller iterates them:

  - csv: ClickHouse's ``CSV`` with its default settings, which a read-only store may not
    change (strings quoted, NULL ``\\N``, times ``YYYY-MM-DD hh:mm:ss.sss`` UTC) after a header
    line of the column names, as ``CSVWithNames`` writes it. The header is written here
    because through clickhouse-connect the embedded store streams only formats without one
    (``CSVWithNames`` would be produced whole before the first chunk).
  - parquet: ClickHouse's ``Parquet``. A ClickHouse server streams it; the embedded store's
    client produces the (compressed) file whole before the first chunk.
  - xlsx: an openpyxl write-only workbook fed block by block, spooled to a temporary file
    and then read out in chunks. Times are UTC without a zone (Excel has none), arrays JSON
    text, text starting with ``=`` stays text, and a new sheet starts every
    ``SHEET_ROWS - 1`` records.

- ``register_counts``: per register and party, the current records and the last change,
  for a data catalogue.

The chunks hold their query open while they are read: read them to the end or ``close()``
the iterator (meanwhile an embedded store's client answers nothing else on that thread).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tempfile
from dataclasses import dataclass
from typing import IO, Any, Callable, Generator, Iterable, Iterator, Mapping

from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.exceptions import ClickHouseError
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from .ddl import VIEWS, check_identifier
from .errors import DownloadError, QueryError, StoreError
from .query import server_message

# every declared register, road and water, in catalog order (``schemas.registers``, ``sinks.views``)
REGISTER_VIEWS = {entity_type: view for view, (entity_type, _columns) in VIEWS.items()}
REGISTERS = tuple(REGISTER_VIEWS)
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
}
FORMATS = tuple(CONTENT_TYPES)
PARAMETERS = ("register", "party", "changed_since", "format", "limit")
BOOKKEEPING = ("last_op", "seq")  # columns of the views that are the store's, not the record's
MAX_LIMIT = 10**18 - 1
SHEET_ROWS = 1_048_576  # rows of an Excel sheet, the header included
CHUNK_BYTES = 1 << 16
_PARTY = re.compile(r"[0-9A-Za-z_-]{1,32}")
_DIGITS = re.compile(r"[0-9]{1,18}")
_UTC = dt.timezone.utc
Chunks = Generator[bytes, None, None]


@dataclass(frozen=True)
class DownloadRequest:
    """What to download. Build it with ``parse_download_request``; the checks that need no
    party list run here too, so a request made by hand is as safe."""

    register: str
    format: str = "csv"
    party: str | None = None
    changed_since: dt.datetime | None = None  # with a zone
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.register not in REGISTERS:
            raise DownloadError("register", f"unknown register {_shown(self.register)}; one of {', '.join(REGISTERS)}")
        if self.format not in FORMATS:
            raise DownloadError("format", f"unknown format {_shown(self.format)}; one of {', '.join(FORMATS)}")
        if self.party is not None and not _PARTY.fullmatch(self.party):
            raise DownloadError("party", f"{_shown(self.party)} is not a party code (letters, digits, '_', '-')")
        if self.changed_since is not None and self.changed_since.utcoffset() is None:
            raise DownloadError("changed_since", "a time without a zone; give it in UTC or with its offset")
        if self.limit is not None and not (type(self.limit) is int and 1 <= self.limit <= MAX_LIMIT):
            raise _limit_error(str(self.limit))


@dataclass(frozen=True)
class Download:
    """A download ready to send: ``chunks`` yields the file's bytes as the store produces them
    (``chunks.close()`` stops it early)."""

    content_type: str
    filename: str
    chunks: Chunks


def parse_download_request(params: Mapping[str, str], parties: Iterable[str]) -> DownloadRequest:
    """The request ``params`` ask for; raises ``DownloadError`` naming the first bad parameter.

    ``register`` (required: one of ``REGISTERS``), ``party`` (one of ``parties``),
    ``changed_since`` (an ISO 8601 date or date-time; UTC when it has no zone), ``format``
    (one of ``FORMATS``, csv when absent) and ``limit`` (a whole number, at least 1). Any
    other parameter is refused, and so is an empty value.
    """
    for name, value in params.items():
        if name not in PARAMETERS:
            raise DownloadError(_shown(name), f"unknown parameter; the parameters are {', '.join(PARAMETERS)}")
        if value == "":
            raise DownloadError(name, "empty; give a value or leave the parameter out")
    if "register" not in params:
        raise DownloadError("register", f"required; one of {', '.join(REGISTERS)}")
    party = params.get("party")
    if party is not None:
        known = tuple(parties)
        if party not in known:
            raise DownloadError("party", f"unknown party {_shown(party)}; one of {', '.join(known)}")
    limit = params.get("limit")
    if limit is not None and not _DIGITS.fullmatch(limit):
        raise _limit_error(limit)
    return DownloadRequest(register=params["register"], format=params.get("format", "csv"), party=party,
                           changed_since=_moment(params.get("changed_since")),
                           limit=None if limit is None else int(limit))


def stream_download(client: Any, database: str, request: DownloadRequest, today: dt.date | None = None) -> Download:
    """The register's current records as ``request`` asks, ready to stream.

    The columns are read from the store now, so a store without the database or the view
    fails here (``StoreError`` for a malformed database name, ``QueryError`` otherwise); the
    records are read while ``chunks`` is iterated (a failure then is a ``QueryError``).
    ``today`` (UTC by default) dates the file name: ``roadx-<register>[-<party>]-YYYYMMDD.<format>``.
    """
    view = f"{_database(database)}.{REGISTER_VIEWS[request.register]}"
    probe = f"SELECT * EXCEPT ({', '.join(BOOKKEEPING)}) FROM {view} LIMIT 0"
    with _as_query_error(probe):
        columns = tuple(client.query(probe).column_names)
    select = _select(view, columns, request)
    day = today or dt.datetime.now(_UTC).date()
    name = "-".join(["roadx", request.register, *([request.party] if request.party else []), day.strftime("%Y%m%d")])
    return Download(CONTENT_TYPES[request.format], f"{name}.{request.format}", _WRITERS[request.format](client, select))


def register_counts(client: Any, database: str) -> dict[str, dict[str, tuple[int, dt.datetime | None]]]:
    """Register -> party -> (current records, last change), every register present.

    The records are the rows of the register's view. The last change is the newest source
    commit time of any change of the register's entities from that party, deletions
    included, so a party whose records were all deleted shows 0 and when that happened.
    """
    db = _database(database)
    records: dict[tuple[str, str], int] = {}
    for register, view in REGISTER_VIEWS.items():
        sql = f"SELECT province, count() FROM {db}.{view} GROUP BY province"
        with _as_query_error(sql):
            records.update({(register, party): count for party, count in client.query(sql).result_rows})
    sql = (f"SELECT entity_type, province, max(ts) FROM {db}.change_log "
           "WHERE entity_type IN {registers:Array(String)} GROUP BY entity_type, province")
    with _as_query_error(sql):
        changed = {(etype, party): _utc(when) for etype, party, when
                   in client.query(sql, parameters={"registers": list(REGISTERS)}).result_rows}
    counts: dict[str, dict[str, tuple[int, dt.datetime | None]]] = {register: {} for register in REGISTERS}
    for register, party in sorted(records.keys() | changed.keys()):
        counts[register][party] = (records.get((register, party), 0), changed.get((register, party)))
    return counts


# -- the query ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Select:
    sql: str
    parameters: dict[str, Any]
    columns: tuple[str, ...]
    register: str


def _select(view: str, columns: tuple[str, ...], request: DownloadRequest) -> _Select:
    conditions, parameters = [], {}
    if request.party is not None:
        conditions.append("province = {party:String}")
        parameters["party"] = request.party
    if request.changed_since is not None:
        conditions.append("ts >= {changed_since:DateTime64(6, 'UTC')}")
        naive = request.changed_since.astimezone(_UTC).replace(tzinfo=None)
        parameters["changed_since"] = naive.isoformat(sep=" ", timespec="microseconds")
    sql = f"SELECT {', '.join(map(quote_identifier, columns))} FROM {view}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY entity_key"
    if request.limit is not None:
        sql += " LIMIT {limit:UInt64}"
        parameters["limit"] = request.limit
    return _Select(sql, parameters, columns, request.register)


# -- the three formats -------------------------------------------------------------------


def _csv(client: Any, select: _Select) -> Chunks:
    with _as_query_error(select.sql):
        stream = client.raw_stream(select.sql, parameters=select.parameters, fmt="CSV")
        try:
            yield (",".join('"' + name.replace('"', '""') + '"' for name in select.columns) + "\n").encode()
            yield from _read(stream)
        finally:
            stream.close()


def _parquet(client: Any, select: _Select) -> Chunks:
    with _as_query_error(select.sql):
        stream = client.raw_stream(select.sql, parameters=select.parameters, fmt="Parquet")
        try:
            yield from _read(stream)
        finally:
            stream.close()


def _xlsx(client: Any, select: _Select) -> Chunks:
    with tempfile.TemporaryFile(prefix="roadx-download-", suffix=".xlsx") as spool:
        workbook = Workbook(write_only=True)
        sheet, room = _sheet(workbook, select), SHEET_ROWS - 1
        with _as_query_error(select.sql), \
                client.query_row_block_stream(select.sql, parameters=select.parameters) as blocks:
            for block in blocks:
                for row in block:
                    if room == 0:
                        sheet, room = _sheet(workbook, select), SHEET_ROWS - 1
                    sheet.append([_cell(sheet, value) for value in row])
                    room -= 1
        workbook.save(spool)
        spool.seek(0)
        yield from _read(spool)


_WRITERS: dict[str, Callable[[Any, _Select], Chunks]] = {"csv": _csv, "xlsx": _xlsx, "parquet": _parquet}


def _sheet(workbook: Workbook, select: _Select) -> WriteOnlyWorksheet:
    """A new sheet (``vehicle``, then ``vehicle (2)`` ...) with the header row written."""
    count = len(workbook.worksheets)
    sheet = workbook.create_sheet(select.register if count == 0 else f"{select.register} ({count + 1})")
    sheet.append(list(select.columns))
    return sheet


def _cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    """A store value as Excel can hold it."""
    if isinstance(value, dt.datetime):
        return value.astimezone(_UTC).replace(tzinfo=None) if value.tzinfo else value
    if value is None or isinstance(value, (int, float, dt.date)):
        return value
    text = json.dumps(list(value), ensure_ascii=False, default=str) if isinstance(value, (list, tuple)) else str(value)
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    if not text.startswith("="):
        return text
    cell = WriteOnlyCell(sheet, text)
    cell.data_type = "s"  # text, not a formula
    return cell


def _read(stream: IO[bytes]) -> Chunks:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


# -- small helpers -----------------------------------------------------------------------


def _moment(value: str | None) -> dt.datetime | None:
    """An ISO 8601 date or date-time as an aware UTC time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
        return moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)
    except (ValueError, OverflowError):
        raise DownloadError("changed_since", f"{_shown(value)} is not an ISO 8601 date or date-time "
                                             "(2024-06-01, 2024-06-01T08:00:00+08:00)") from None


def _utc(value: dt.datetime) -> dt.datetime:
    """A store time (naive = UTC) as an aware UTC time."""
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)


def _limit_error(value: str) -> DownloadError:
    return DownloadError("limit", f"{_shown(value)} is not a whole number from 1 to {MAX_LIMIT}")


def _shown(value: str) -> str:
    """A value quoted for a message, cut at 40 characters."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _database(database: str) -> str:
    try:
        return check_identifier(database)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc


@contextlib.contextmanager
def _as_query_error(sql: str) -> Iterator[None]:
    try:
        yield
    except ClickHouseError as exc:
        raise QueryError(sql, server_message(exc)) from exc
