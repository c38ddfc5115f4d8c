"""Serve the embedded store on a loopback port, speaking ClickHouse's HTTP interface.

While the embedded stack runs, the chDB store can only be opened by the sink process, so
the sink serves it: ``curl 'http://127.0.0.1:PORT/?query=SELECT+1'`` and
``clickhouse_connect.get_client(host='127.0.0.1', port=PORT)`` both work. What is
understood: ``GET``/``POST`` with the query in the ``query`` parameter and/or the body,
``database``, ``default_format`` or a ``FORMAT`` clause (chDB produces the bytes),
``param_<name>`` bound parameters, settings as parameters (HTTP-transport ones ignored),
``/ping``. Answers carry ``X-ClickHouse-Format``, ``X-ClickHouse-Summary``,
``X-ClickHouse-Query-Id`` and ``X-ClickHouse-Timezone``; errors are HTTP 500 with
``X-ClickHouse-Exception-Code`` and the engine's ``Code: N. DB::Exception: ...`` body.

Read-only twice over: statements other than SELECT / SHOW / DESCRIBE / EXISTS / WITH /
EXPLAIN are refused before they reach the engine, and the engine connection runs with
``readonly = 1`` (no writes, no DDL, no setting changes, no file/url/remote functions).
One connection serves every request thread, one query at a time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from .errors import QueryError, StoreError

log = logging.getLogger("roadx.sinks.http")

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
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
}


# -- pure parts: request → query, statement check ------------------------------------------

@dataclass
class ServeRequest:
    """One analyst request, as the engine will run it."""

    sql: str
    fmt: str
    database: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_id: str = ""


def parse_request(query_string: str, body: bytes) -> ServeRequest:
    """The query (``query`` parameter, then the body), its output format, parameters and settings."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
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
    text = body.decode("utf-8", errors="replace") if body else ""
    sql = "\n".join(part for part in (args.get("query", ""), text) if part.strip())
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise QueryError(sql, f"Code: {SYNTAX_ERROR_CODE}. DB::Exception: Empty query. (SYNTAX_ERROR)")
    trailing = _TRAILING_FORMAT.search(sql)
    fmt = trailing.group(1) if trailing else (args.get("default_format") or "TabSeparated")
    if not _SETTING_NAME.match(fmt):
        raise QueryError(sql, f"Code: {UNKNOWN_FORMAT_CODE}. DB::Exception: Unknown format {fmt}. (UNKNOWN_FORMAT)")
    return ServeRequest(sql, fmt, args.get("database") or None, params, settings, args.get("query_id", ""))


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


# -- the engine: one read-only chDB connection ---------------------------------------------

@dataclass
class EngineAnswer:
    body: bytes
    fmt: str
    read_rows: int = 0
    read_bytes: int = 0
    elapsed_ns: int = 0


class EmbeddedEngine:
    """A ``readonly = 1`` chDB connection to the store, one query at a time."""

    def __init__(self, store_path: Path) -> None:
        import chdb

        self._lock = threading.Lock()
        self._database: str | None = None
        try:
            self._conn = chdb.connect(os.path.realpath(store_path))
            self._conn.query("SET readonly = 1", "TabSeparated")
            rows = self._conn.query("SELECT name, value FROM system.settings", "JSONEachRow").bytes()
            zone = self._conn.query("SELECT timezone()", "TabSeparated").bytes()
        except Exception as exc:  # chdb raises its own error types and RuntimeError
            raise StoreError(f"cannot open the embedded store at {store_path} for serving: {exc}") from exc
        self.current_settings = {r["name"]: r["value"] for r in map(json.loads, rows.splitlines())}
        self.timezone = zone.decode().strip() or "UTC"

    def run(self, request: ServeRequest) -> EngineAnswer:
        """Run a checked request; raises ``QueryError`` with the engine's message."""
        check_read_only(request.sql)
        sql = request.sql
        changed = {k: v for k, v in request.settings.items() if self.current_settings.get(k) != v}
        if changed:
            sql += "\nSETTINGS " + ", ".join(f"{k} = '{_escape(v)}'" for k, v in changed.items())
        with self._lock:
            try:
                if request.database and request.database != self._database:
                    self._conn.query(f"USE `{request.database.replace('`', '')}`", "TabSeparated")
                    self._database = request.database
                result = self._conn.query(sql, request.fmt, params=request.params)
            except Exception as exc:
                raise QueryError(request.sql, _engine_message(exc)) from exc
            body = result.bytes() or b""
            if not body and request.fmt == "Native":
                body = self._empty_native_block(sql, request.params)
        try:
            stats = (int(result.rows_read()), int(result.bytes_read()), int(result.elapsed() * 1e9))
        except Exception:
            stats = (0, 0, 0)
        return EngineAnswer(body, request.fmt, *stats)

    def _empty_native_block(self, sql: str, params: Mapping[str, str]) -> bytes:
        """A zero-row Native block naming the columns (chDB writes no bytes for an empty result)."""
        bare = _TRAILING_FORMAT.sub("", sql)
        try:
            meta = json.loads(self._conn.query(bare, "JSONCompact", params=dict(params)).bytes())["meta"]
        except Exception:
            return b""
        return native_header([(m["name"], m["type"]) for m in meta])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _engine_message(exc: BaseException) -> str:
    text = str(exc).strip()
    start = text.find("Code: ")
    return text[start:] if start >= 0 else f"Code: 1000. DB::Exception: {text}"


# -- HTTP -------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server_version = "roadx-store"
    protocol_version = "HTTP/1.1"
    engine: EmbeddedEngine  # set on the per-server subclass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.headers.get("Content-Encoding", "identity") not in ("", "identity"):
            self._error(500, 0, "Code: 0. DB::Exception: compressed request bodies are not supported. (NOT_IMPLEMENTED)")
            return
        self._handle(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/") and not url.query and not body:
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        if url.path != "/":
            self._send(404, f"There is no handle {url.path}\n".encode(), {"Content-Type": "text/plain; charset=UTF-8"})
            return
        query_id = ""
        try:
            request = parse_request(url.query, body)
            query_id = request.query_id or str(uuid.uuid4())
            answer = self.engine.run(request)
        except QueryError as exc:
            self._error(500, error_code(exc.server_message), exc.server_message, query_id)
            return
        summary = {"read_rows": str(answer.read_rows), "read_bytes": str(answer.read_bytes),
                   "written_rows": "0", "written_bytes": "0", "total_rows_to_read": str(answer.read_rows),
                   "result_rows": "0", "result_bytes": str(len(answer.body)), "elapsed_ns": str(answer.elapsed_ns)}
        self._send(200, answer.body, {
            "Content-Type": _content_type(answer.fmt), "X-ClickHouse-Format": answer.fmt,
            "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.engine.timezone,
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
        })

    def _error(self, status: int, code: int, message: str, query_id: str = "") -> None:
        headers = {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(code)}
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        self._send(status, (message.rstrip() + "\n").encode("utf-8"), headers)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("X-ClickHouse-Server-Display-Name", "roadx-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


def _content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith(("Pretty", "Vertical", "Markdown")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


class StoreServer:
    """The HTTP endpoint on 127.0.0.1:``port`` in a daemon thread; ``close()`` stops it."""

    def __init__(self, engine: EmbeddedEngine, port: int) -> None:
        handler = type("StoreHandler", (_Handler,), {"engine": engine})
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as exc:
            raise StoreError(f"cannot serve the store on 127.0.0.1:{port}: {exc}") from exc
        self.httpd.daemon_threads = True
        self.engine = engine
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="roadx-store-http", daemon=True)

    @classmethod
    def start(cls, store_path: Path, port: int) -> "StoreServer":
        engine = EmbeddedEngine(store_path)
        try:
            server = cls(engine, port)
        except BaseException:
            engine.close()
            raise
        server._thread.start()
        log.info("serving the store read-only on http://127.0.0.1:%d/", server.port)
        return server

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
        self.engine.close()
