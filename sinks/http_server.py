"""Serve the embedded store on a loopback port, speaking ClickHouse's HTTP interface.

While the embedded stack runs, the chDB store can only be opened by the sink process, so
the sink serves it: ``curl --data-binary 'SELECT 1' http://127.0.0.1:PORT/``,
``clickhouse_connect.get_client(host='127.0.0.1', port=PORT)`` and the JavaScript client
``@clickhouse/client`` all work. What is understood: ``GET``/``HEAD``/``POST`` with the
query in the ``query`` parameter and/or the body (or in the ``query`` field of a
``multipart/form-data`` body), ``database`` (else ``roadx``), ``default_format`` or a
``FORMAT`` clause (chDB produces the bytes), ``param_<name>`` bound parameters, settings as
parameters (HTTP-transport ones ignored), ``/ping``. Answers carry ``X-ClickHouse-Format``,
``X-ClickHouse-Summary``, ``X-ClickHouse-Query-Id`` and ``X-ClickHouse-Timezone``; query
errors are HTTP 500 with ``X-ClickHouse-Exception-Code`` and the engine's
``Code: N. DB::Exception: ...`` body.

HTTP/1.1 is aiohttp's: keep-alive, pipelined requests answered in order, chunked bodies,
``Expect: 100-continue``, request bodies in ``Content-Encoding`` gzip, deflate, zstd or lz4,
answers compressed as ClickHouse does (only with ``enable_http_compression=1``, the first of
zstd, lz4, gzip, deflate that ``Accept-Encoding`` allows). A body that cannot be read is a
400 (413 beyond ``MAX_BODY_BYTES`` decoded, 415 in an unknown coding) and closes the
connection; a request whose framing aiohttp's parser rejects gets aiohttp's own 400.

Read-only twice over: statements other than SELECT / SHOW / DESCRIBE / EXISTS / WITH /
EXPLAIN are refused before they reach the engine, and every engine connection runs with
``readonly = 1`` (no writes, no DDL, no setting changes, no file/url/remote functions).

Concurrency, measured with chdb 4.4: a process hosts one engine for the store path, and any
number of ``chdb.connect`` connections to it may be open; each keeps its own session
(``SET readonly``, ``USE``), queries on different connections run in parallel with the GIL
released, queries on one connection run one after another. So the endpoint opens
``QUERY_CONNECTIONS`` read-only connections and runs each query in a thread pool of that
size, one connection per running query: a slow query holds one connection while the others
keep answering, and the event loop never waits on chDB. The pool is small on purpose: one
chDB query already uses every core, so more connections add memory, not throughput.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from .errors import QueryError, StoreError
from .http_request import (
    DECODERS, ENCODERS, NOT_IMPLEMENTED_CODE, ServeRequest, check_read_only, choose_encoding, content_type,
    encode_body, error_code, native_header, parse_request, strip_format,
)

__all__ = ["EmbeddedEngine", "EngineAnswer", "ServeRequest", "StoreServer", "check_read_only", "error_code",
           "native_header", "parse_request"]

log = logging.getLogger("roadx.sinks.http")

DEFAULT_DATABASE = "roadx"
QUERY_CONNECTIONS = 4
MAX_BODY_BYTES = 16 * 1024 * 1024
KEEPALIVE_SECONDS = 10
# aiohttp decodes these request bodies itself (zstd with the same module the encoder uses).
_HTTP_DECODED = {"gzip", "deflate"} | ({"zstd"} if "zstd" in ENCODERS else set())
_BAD_BODY_CODE = 27  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
_TOO_LARGE_CODE = 36  # BAD_ARGUMENTS
_BODY_STATUS = {_TOO_LARGE_CODE: 413, NOT_IMPLEMENTED_CODE: 415}


# -- the engine: a few read-only chDB connections ------------------------------------------

@dataclass
class EngineAnswer:
    body: bytes
    fmt: str
    read_rows: int = 0
    read_bytes: int = 0
    elapsed_ns: int = 0


@dataclass
class _Session:
    conn: Any
    database: str


class EmbeddedEngine:
    """``connections`` read-only chDB connections to the store, each serving one query at a time."""

    def __init__(self, store_path: Path, connections: int = QUERY_CONNECTIONS,
                 database: str = DEFAULT_DATABASE) -> None:
        import chdb

        if connections < 1:
            raise StoreError(f"the store endpoint needs at least one connection, not {connections}")
        self.connections = connections
        self._idle: queue.LifoQueue[_Session] = queue.LifoQueue()
        self._opened: list[Any] = []
        self._closed = False
        try:
            for _ in range(connections):
                conn = chdb.connect(os.path.realpath(store_path))
                self._opened.append(conn)
                conn.query("SET readonly = 1", "TabSeparated")
            first = self._opened[0]
            rows = first.query("SELECT name, value FROM system.settings", "JSONEachRow").bytes()
            zone = first.query("SELECT timezone()", "TabSeparated").bytes()
            known = first.query(f"EXISTS DATABASE `{database.replace('`', '')}`", "TabSeparated").bytes()
        except Exception as exc:  # chdb raises its own error types and RuntimeError
            for conn in self._opened:
                conn.close()
            raise StoreError(f"cannot open the embedded store at {store_path} for serving: {exc}") from exc
        self.current_settings = {r["name"]: r["value"] for r in map(json.loads, rows.splitlines())}
        self.timezone = zone.decode().strip() or "UTC"
        # The store's own database when it has one yet; chDB's ``default`` before the sink made it.
        self.default_database = database if known.strip() == b"1" else "default"
        for conn in self._opened:
            self._idle.put(_Session(conn, "default"))

    def run(self, request: ServeRequest) -> EngineAnswer:
        """Run a checked request on an idle connection; raises ``QueryError`` with the engine's message."""
        check_read_only(request.sql)
        sql = request.sql
        changed = {k: v for k, v in request.settings.items() if self.current_settings.get(k) != v}
        if changed:
            sql += "\nSETTINGS " + ", ".join(f"{k} = '{_escape(v)}'" for k, v in changed.items())
        session = self._checkout()
        try:
            wanted = request.database or self.default_database
            try:
                if wanted != session.database:
                    session.conn.query(f"USE `{wanted.replace('`', '')}`", "TabSeparated")
                    session.database = wanted
                result = session.conn.query(sql, request.fmt, params=request.params)
            except Exception as exc:
                raise QueryError(request.sql, _engine_message(exc)) from exc
            body = result.bytes() or b""
            if not body and request.fmt == "Native":
                body = self._empty_native_block(session.conn, sql, request.params)
        finally:
            self._idle.put(session)
        try:
            stats = (int(result.rows_read()), int(result.bytes_read()), int(result.elapsed() * 1e9))
        except Exception:
            stats = (0, 0, 0)
        return EngineAnswer(body, request.fmt, *stats)

    def _checkout(self) -> _Session:
        if not self._closed:
            try:
                return self._idle.get(timeout=60)
            except queue.Empty:
                pass
        raise QueryError("", "Code: 1000. DB::Exception: the roadx store endpoint is shutting down or every "
                             "connection stayed busy for a minute; retry. (UNKNOWN_EXCEPTION)")

    @staticmethod
    def _empty_native_block(conn: Any, sql: str, params: dict[str, str]) -> bytes:
        """A zero-row Native block naming the columns (chDB writes no bytes for an empty result)."""
        try:
            meta = json.loads(conn.query(strip_format(sql), "JSONCompact", params=dict(params)).bytes())["meta"]
        except Exception:
            return b""
        return native_header([(m["name"], m["type"]) for m in meta])

    def close(self, wait_seconds: float = 10) -> None:
        """Close every connection, waiting up to ``wait_seconds`` for running queries."""
        self._closed = True
        for _ in range(len(self._opened)):
            try:
                session = self._idle.get(timeout=wait_seconds)
            except queue.Empty:
                log.warning("store endpoint closing with a query still running; its connection is left open")
                return
            session.conn.close()
        self._opened.clear()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _engine_message(exc: BaseException) -> str:
    text = str(exc).strip()
    start = text.find("Code: ")
    return text[start:] if start >= 0 else f"Code: 1000. DB::Exception: {text}"


# -- HTTP -------------------------------------------------------------------------------------

class StoreServer:
    """The HTTP endpoint on 127.0.0.1:``port``, an aiohttp loop in a daemon thread; ``close()`` stops it."""

    def __init__(self, engine: EmbeddedEngine, port: int) -> None:
        try:
            self._socket = socket.create_server(("127.0.0.1", port), backlog=128)
        except OSError as exc:
            raise StoreError(f"cannot serve the store on 127.0.0.1:{port}: {exc}") from exc
        self.engine = engine
        self.port = self._socket.getsockname()[1]
        self._executor = ThreadPoolExecutor(engine.connections, thread_name_prefix="roadx-store-query")
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run_loop, name="roadx-store-http", daemon=True)
        self._closed = False

    @classmethod
    def start(cls, store_path: Path, port: int, *, database: str = DEFAULT_DATABASE,
              connections: int = QUERY_CONNECTIONS) -> "StoreServer":
        engine = EmbeddedEngine(store_path, connections, database)
        try:
            server = cls(engine, port)
        except BaseException:
            engine.close()
            raise
        try:
            server._thread.start()
            asyncio.run_coroutine_threadsafe(server._serve(), server._loop).result(30)
        except BaseException as exc:
            server.close()
            raise StoreError(f"cannot serve the store on 127.0.0.1:{port}: {exc}") from exc
        log.info("serving the store read-only on http://127.0.0.1:%d/", server.port)
        return server

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS, shutdown_timeout=5)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        log.debug("%s %s %s", request.remote, request.method, request.path_qs)
        if request.method not in ("GET", "HEAD", "POST"):
            return _plain(405, f"Method {request.method} is not allowed here\n", {"Allow": "GET, HEAD, POST"})
        if request.path == "/ping":
            return _plain(200, "Ok.\n")
        if request.path != "/":
            return _plain(404, f"There is no handle {request.path}\n")
        try:
            body, form = await _read_body(request)
        except QueryError as exc:
            if request.content.exception() is not None:
                # The parser gave up on this body and feeds it no more: nothing is left to drain.
                request.content.feed_eof()
            code = error_code(exc.server_message)
            return _error(_BODY_STATUS.get(code, 400), code, exc.server_message, close=True)
        if not request.query_string and not body and not form:
            return _plain(200, "Ok.\n")
        query_id = ""
        try:
            served = parse_request(request.query_string, body, form)
            query_id = served.query_id or str(uuid.uuid4())
            coding = choose_encoding(request.headers.get("Accept-Encoding", "")) if served.compress_response else None
            level = _int(served.transport.get("http_zlib_compression_level"), 3)
            answer, payload = await self._loop.run_in_executor(self._executor, self._answer, served, coding, level)
        except QueryError as exc:
            return _error(500, error_code(exc.server_message), exc.server_message, query_id=query_id)
        summary = {"read_rows": str(answer.read_rows), "read_bytes": str(answer.read_bytes),
                   "written_rows": "0", "written_bytes": "0", "total_rows_to_read": str(answer.read_rows),
                   "result_rows": "0", "result_bytes": str(len(answer.body)), "elapsed_ns": str(answer.elapsed_ns)}
        headers = {"Content-Type": content_type(answer.fmt), "X-ClickHouse-Format": answer.fmt,
                   "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.engine.timezone,
                   "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":"))}
        if served.compress_response:
            headers["Vary"] = "Accept-Encoding"
        if coding:
            headers["Content-Encoding"] = coding
        return _response(200, payload, headers)

    def _answer(self, served: ServeRequest, coding: str | None, level: int) -> tuple[EngineAnswer, bytes]:
        """Run in the query pool: the engine's answer and its bytes in the chosen coding."""
        answer = self.engine.run(served)
        return answer, (encode_body(answer.body, coding, level) if coding else answer.body)

    def close(self) -> None:
        """Stop listening, finish or drop open connections, then close the engine."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            if self._runner is not None:
                try:
                    asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(15)
                except Exception as exc:  # still stop the loop and the engine
                    log.warning("store endpoint did not shut down cleanly: %s", exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        elif not self._loop.is_closed():
            self._loop.close()
        self._socket.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.close()

    def __enter__(self) -> "StoreServer":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


async def _read_body(request: web.Request) -> tuple[bytes, list[tuple[str, str]]]:
    """The request body (decoded), or the text fields of a multipart form; ``QueryError`` if unusable."""
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity") and coding not in _HTTP_DECODED and coding not in DECODERS:
        raise QueryError("", f"Code: {NOT_IMPLEMENTED_CODE}. DB::Exception: the request body's Content-Encoding "
                             f"'{coding}' is not supported; use gzip, deflate, zstd or lz4. (NOT_IMPLEMENTED)")
    try:
        if request.content_type == "multipart/form-data":
            return b"", await _read_form(request)
        body = await _read_limited(request.content)
    except (RequestPayloadError, HttpProcessingError, ValueError) as exc:
        raise QueryError("", f"Code: {_BAD_BODY_CODE}. DB::Exception: cannot read the request body: "
                             f"{_reason(exc)}. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)") from exc
    if coding in DECODERS and body:
        try:
            body = DECODERS[coding](body)
        except Exception as exc:  # lz4 raises RuntimeError on a bad frame
            raise QueryError("", f"Code: {_BAD_BODY_CODE}. DB::Exception: cannot decode the {coding} request "
                                 f"body: {exc}. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)") from exc
        _check_size(len(body))
    return body, []


async def _read_limited(stream: Any) -> bytes:
    body = bytearray()
    while chunk := await stream.readany():
        body += chunk
        _check_size(len(body))
    return bytes(body)


async def _read_form(request: web.Request) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    total = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.filename is not None or part.name is None:
            raise QueryError("", f"Code: {NOT_IMPLEMENTED_CODE}. DB::Exception: external data (file parts of a "
                                 f"multipart body) is not supported by the roadx store. (NOT_IMPLEMENTED)")
        value = bytearray()
        while chunk := await part.read_chunk():
            value += chunk
            total += len(chunk)
            _check_size(total)
        fields.append((part.name, bytes(value).decode(part.get_charset("utf-8"), errors="replace")))
    return fields


def _check_size(size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise QueryError("", f"Code: {_TOO_LARGE_CODE}. DB::Exception: the request body is larger than the "
                             f"{MAX_BODY_BYTES // (1024 * 1024)} MiB the roadx store accepts. (BAD_ARGUMENTS)")


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return (getattr(cause, "message", None) or str(cause) or type(cause).__name__).strip().rstrip(".")


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _error(status: int, code: int, message: str, *, query_id: str = "", close: bool = False) -> web.Response:
    headers = {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(code)}
    if query_id:
        headers["X-ClickHouse-Query-Id"] = query_id
    response = _response(status, (message.rstrip() + "\n").encode("utf-8"), headers, keep_alive=not close)
    if close:
        response.force_close()  # the rest of a body that could not be read would be taken for a request
    return response


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return _response(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=UTF-8", **(headers or {})})


def _response(status: int, body: bytes, headers: dict[str, str], *, keep_alive: bool = True) -> web.Response:
    headers = {**headers, "Server": "roadx-store", "X-ClickHouse-Server-Display-Name": "roadx-store"}
    if keep_alive:
        headers["Keep-Alive"] = f"timeout={KEEPALIVE_SECONDS}"
    return web.Response(status=status, body=body, headers=headers)
