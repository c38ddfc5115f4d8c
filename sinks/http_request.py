"""What one request to the served store asks for: pure parts, no network, no engine.

The query and its format, bound parameters and settings (``parse_request``), the read-only
statement check (``check_read_only``), the response content coding ClickHouse would pick
(``choose_encoding``, ``encode_body``), the zero-row Native block, the content type of a
format. ``sinks.http_server`` puts these on the wire.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import parse_qsl

from .errors import QueryError

READ_STATEMENTS = ("SELECT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "WITH", "EXPLAIN")
# Statements that change the store or the session: refused as READONLY, not as syntax errors.
WRITE_STATEMENTS = frozenset({
    "INSERT", "CREATE", "DROP", "ALTER", "RENAME", "TRUNCATE", "OPTIMIZE", "SET", "USE", "SYSTEM", "KILL",
    "GRANT", "REVOKE", "ATTACH", "DETACH", "DELETE", "UPDATE", "EXCHANGE", "UNDROP", "BACKUP", "RESTORE",
    "CHECK", "WATCH", "MOVE", "BEGIN", "COMMIT", "ROLLBACK", "REPLACE", "UNDO",
})
READONLY_CODE = 164
SYNTAX_ERROR_CODE = 62
UNKNOWN_FORMAT_CODE = 73
NOT_IMPLEMENTED_CODE = 48
# Request parameters that are not engine settings (HTTP transport, sessions, binding).
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "session_id", "session_timeout",
    "session_check", "query_id", "quota_key", "wait_end_of_query", "client_protocol_version",
    "compress", "decompress", "buffer_size", "role", "enable_http_compression",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "http_zlib_compression_level",
    "http_native_compression_disable_checksumming_on_decompress",
})
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*(?:SETTINGS\b.*)?;?\s*$", re.IGNORECASE | re.DOTALL)
_CODE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = frozenset({"1", "true"})
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
}


@dataclass
class ServeRequest:
    """One analyst request, as the engine will run it."""

    sql: str
    fmt: str
    database: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_id: str = ""
    transport: dict[str, str] = field(default_factory=dict)

    @property
    def compress_response(self) -> bool:
        """ClickHouse compresses an answer only when asked with ``enable_http_compression=1``."""
        return self.transport.get("enable_http_compression", "0").lower() in _TRUE


def parse_request(query_string: str, body: bytes, form: Iterable[tuple[str, str]] = ()) -> ServeRequest:
    """The query (``query`` parameter, then the body), its output format, parameters and settings.

    ``form`` holds the text fields of a ``multipart/form-data`` body (clickhouse-connect and
    the JavaScript client send long bound parameters that way); they count as URL parameters.
    """
    pairs = parse_qsl(query_string, keep_blank_values=True) + list(form)
    args: dict[str, str] = {}
    params: dict[str, str] = {}
    settings: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("param_"):
            params[name[len("param_"):]] = value
        elif name in TRANSPORT_PARAMS:
            args[name] = value
        else:
            if not _SETTING_NAME.match(name):
                raise QueryError(name, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
            settings[name] = value
    for name in ("compress", "decompress"):
        if args.get(name, "0").lower() in _TRUE:
            raise QueryError(name, f"Code: {NOT_IMPLEMENTED_CODE}. DB::Exception: {name}=1 (ClickHouse's own block "
                                   f"compression) is not served by the roadx store; use HTTP compression instead: "
                                   f"Content-Encoding on the request, Accept-Encoding with enable_http_compression=1 "
                                   f"for the answer. (NOT_IMPLEMENTED)")
    text = body.decode("utf-8", errors="replace") if body else ""
    sql = "\n".join(part for part in (args.get("query", ""), text) if part.strip())
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise QueryError(sql, f"Code: {SYNTAX_ERROR_CODE}. DB::Exception: Empty query. (SYNTAX_ERROR)")
    trailing = _TRAILING_FORMAT.search(sql)
    fmt = trailing.group(1) if trailing else (args.get("default_format") or "TabSeparated")
    if not _SETTING_NAME.match(fmt):
        raise QueryError(sql, f"Code: {UNKNOWN_FORMAT_CODE}. DB::Exception: Unknown format {fmt}. (UNKNOWN_FORMAT)")
    return ServeRequest(sql, fmt, args.get("database") or None, params, settings, args.get("query_id", ""), args)


def check_read_only(sql: str) -> None:
    """Refuse anything but one read statement (SELECT, SHOW, DESCRIBE, EXISTS, WITH, EXPLAIN)."""
    words = _statement_words(sql)
    if len(words) > 1:
        raise QueryError(sql, f"Code: {SYNTAX_ERROR_CODE}. DB::Exception: Multi-statements are not allowed. (SYNTAX_ERROR)")
    first = words[0].upper() if words else ""
    if first not in READ_STATEMENTS and first not in WRITE_STATEMENTS:
        raise QueryError(sql, f"Code: {SYNTAX_ERROR_CODE}. DB::Exception: Syntax error: failed at position 1 "
                              f"({words[0] if words else ''!r}): expected one of {', '.join(READ_STATEMENTS)}. "
                              f"(SYNTAX_ERROR)")
    if first not in READ_STATEMENTS:
        raise QueryError(sql, f"Code: {READONLY_CODE}. DB::Exception: the roadx store is served read-only: "
                              f"{first or 'this'} statements are refused; use SELECT, SHOW, DESCRIBE, EXISTS, "
                              f"WITH or EXPLAIN. (READONLY)")


def strip_format(sql: str) -> str:
    """The query without its trailing ``FORMAT`` clause."""
    return _TRAILING_FORMAT.sub("", sql)


def _statement_words(sql: str) -> list[str]:
    """The first word of each statement, skipping comments, string literals and quoted names."""
    firsts: list[str] = []
    expect_first = True
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in "'\"`":
            i = _skip_quoted(sql, i)
            expect_first = False
        elif ch == ";":
            expect_first = True
            i += 1
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            if expect_first:
                firsts.append(sql[i:j])
                expect_first = False
            i = j
        else:
            if not ch.isspace() and ch != "(" and expect_first:
                firsts.append(ch)
                expect_first = False
            i += 1
    return firsts


def _skip_quoted(sql: str, start: int) -> int:
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return i


def native_header(columns: list[tuple[str, str]]) -> bytes:
    """A Native block with these (name, type) columns and no rows."""
    out = bytearray(_varuint(len(columns)) + _varuint(0))
    for name, ch_type in columns:
        for text in (name, ch_type):
            raw = text.encode("utf-8")
            out += _varuint(len(raw)) + raw
    return bytes(out)


def _varuint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def error_code(message: str) -> int:
    match = _CODE.search(message)
    return int(match.group(1)) if match else 1000


def content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith(("Pretty", "Vertical", "Markdown")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


# -- HTTP content codings --------------------------------------------------------------------

def _zstd_module():  # type: ignore[no-untyped-def]
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        try:
            from backports import zstd  # type: ignore[no-redef]
        except ImportError:
            return None
    return zstd


def _encoders() -> dict[str, Callable[[bytes, int], bytes]]:
    """Response codings this process can produce, in ClickHouse's own order of preference."""
    out: dict[str, Callable[[bytes, int], bytes]] = {}
    zstd = _zstd_module()
    if zstd is not None:
        out["zstd"] = lambda data, _level: zstd.compress(data)
    try:
        import lz4.frame as lz4_frame
    except ImportError:
        pass
    else:
        out["lz4"] = lambda data, _level: lz4_frame.compress(data)
    out["gzip"] = lambda data, level: gzip.compress(data, compresslevel=level, mtime=0)
    out["deflate"] = lambda data, level: zlib.compress(data, level)
    return out


def _decoders() -> dict[str, Callable[[bytes], bytes]]:
    """Request codings decoded here rather than by the HTTP layer (which knows gzip, deflate, zstd)."""
    try:
        import lz4.frame as lz4_frame
    except ImportError:
        return {}
    return {"lz4": lz4_frame.decompress}


ENCODERS = _encoders()
DECODERS = _decoders()


def choose_encoding(accept_encoding: str) -> str | None:
    """The coding for an answer: ClickHouse's preference order among those the client accepts.

    A coding named with ``q=0`` is refused; ``*`` accepts any coding not named.
    """
    accepted: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, rest = item.strip().partition(";")
        quality = 1.0
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name.strip():
            accepted[name.strip().lower()] = quality
    for coding in ENCODERS:
        quality = accepted.get(coding, accepted.get("*", 0.0))
        if quality > 0:
            return coding
    return None


def encode_body(body: bytes, coding: str, level: int = 3) -> bytes:
    """``body`` in the chosen coding; ``level`` is ``http_zlib_compression_level`` (gzip, deflate)."""
    return ENCODERS[coding](body, min(max(level, 1), 9))
