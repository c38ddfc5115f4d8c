"""The store endpoint speaks HTTP/1.1: chunked and pipelined requests, compression, concurrency, bad input.

A real chDB store served by ``StoreServer`` in this process on a free loopback port; requests
are written on raw sockets or with ``http.client`` so the framing is exactly what is tested.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import urllib.parse
import uuid
import zlib

import pytest
from served_store import PROBE_ROWS, SharedReader, read_response, served_store

from sinks import http_server
from sinks.http_request import ENCODERS

pytestmark = pytest.mark.integration

NAMES = "".join(f"{name}\n" for _n, name, _d, _a in PROBE_ROWS).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_store(tmp_path_factory.mktemp("served")) as running:
        yield running


def connect(server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)


def ask(conn, method, path, body=None, headers=None, **kwargs):
    conn.request(method, path, body=body, headers=headers or {}, **kwargs)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def query_path(sql, **params) -> str:
    return "/?" + urllib.parse.urlencode({"query": sql, **params})


def test_chunked_query_body_is_answered_and_the_same_connection_answers_the_next_request(server):
    conn = connect(server)
    try:
        status, headers, body = ask(conn, "POST", "/?database=roadx", body=iter([b"SELECT name ", b"FROM probe ",
                                                                                 b"ORDER BY n"]),
                                    headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        assert (status, body) == (200, NAMES)
        assert headers["x-clickhouse-format"] == "TabSeparated"
        sock = conn.sock
        status, _headers, body = ask(conn, "GET", query_path("SELECT count() FROM roadx.probe"))
        assert (status, body) == (200, b"3\n")
        assert conn.sock is sock, "the server closed the keep-alive connection after a chunked request"
    finally:
        conn.close()


def test_chunked_body_sent_in_separate_writes_is_read_to_its_last_chunk(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = SharedReader(sock)
        sock.sendall(b"POST /?database=roadx HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"SELECT max(n) ", b"FROM ", b"probe"):
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sock.sendall(b"0\r\n\r\n")
        assert read_response(reader)[::2] == (200, b"3\n")
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(reader)[::2] == (200, b"Ok.\n")


def test_pipelined_requests_on_one_connection_are_answered_in_order(server):
    first = b"SELECT name FROM roadx.probe WHERE n = 2"
    second = b"SELECT n FROM probe ORDER BY n DESC"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = SharedReader(sock)
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(first), first)
            + b"POST /?database=roadx HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"%x\r\n%s\r\n0\r\n\r\n" % (len(second), second)
            + b"GET /?query=SELECT+%27third%27 HTTP/1.1\r\nHost: t\r\n\r\n")
        answers = [read_response(reader) for _ in range(3)]
    assert [(status, body) for status, _h, body in answers] == [
        (200, "粤B67890\n".encode()), (200, b"3\n2\n1\n"), (200, b"third\n")]
    assert len({headers["x-clickhouse-query-id"] for _s, headers, _b in answers}) == 3


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    body = b"SELECT 'continued'"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = SharedReader(sock)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert reader.readline().startswith(b"HTTP/1.1 100")
        assert reader.readline() == b"\r\n"
        sock.sendall(body)
        assert read_response(reader)[::2] == (200, b"continued\n")


def test_head_answers_headers_without_a_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = SharedReader(sock)
        sock.sendall(b"HEAD /?query=SELECT+1 HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /?query=SELECT+2 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = read_response(reader, "HEAD")
        assert (status, body, headers["x-clickhouse-format"]) == (200, b"", "TabSeparated")
        assert headers["content-length"] == "2"  # what a GET would have answered
        assert read_response(reader)[::2] == (200, b"2\n")


def test_gzip_request_body_is_decoded(server):
    conn = connect(server)
    try:
        status, _headers, body = ask(conn, "POST", "/?database=roadx", body=gzip.compress(b"SELECT name FROM probe "
                                                                                         b"ORDER BY n"),
                                     headers={"Content-Encoding": "gzip"})
        assert (status, body) == (200, NAMES)
        status, _headers, body = ask(conn, "POST", "/", body=zlib.compress(b"SELECT 'deflated'"),
                                     headers={"Content-Encoding": "deflate"})
        assert (status, body) == (200, b"deflated\n")
    finally:
        conn.close()


def test_answer_is_gzip_compressed_when_compression_is_enabled_and_accepted(server):
    conn = connect(server)
    try:
        path = query_path("SELECT name FROM probe ORDER BY n", database="roadx", enable_http_compression="1")
        status, headers, body = ask(conn, "GET", path, headers={"Accept-Encoding": "gzip"})
        assert (status, headers["content-encoding"]) == (200, "gzip")
        assert gzip.decompress(body) == NAMES
        # As ClickHouse: without enable_http_compression the answer is plain, whatever is accepted.
        status, headers, body = ask(conn, "GET", query_path("SELECT name FROM probe ORDER BY n", database="roadx"),
                                    headers={"Accept-Encoding": "gzip"})
        assert (status, headers.get("content-encoding"), body) == (200, None, NAMES)
        # A coding refused with q=0 is not used.
        status, headers, body = ask(conn, "GET", path, headers={"Accept-Encoding": "gzip;q=0, identity"})
        assert (headers.get("content-encoding"), body) == (None, NAMES)
    finally:
        conn.close()


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_answer_decodes_in_every_offered_coding(server, coding):
    decode = {"gzip": gzip.decompress, "deflate": zlib.decompress}.get(coding)
    if coding == "zstd":
        from sinks.http_request import _zstd_module
        decode = _zstd_module().decompress
    elif coding == "lz4":
        import lz4.frame
        decode = lz4.frame.decompress
    conn = connect(server)
    try:
        path = query_path("SELECT name FROM probe ORDER BY n", database="roadx", enable_http_compression="1")
        status, headers, body = ask(conn, "GET", path, headers={"Accept-Encoding": coding})
    finally:
        conn.close()
    assert (status, headers["content-encoding"]) == (200, coding)
    assert decode(body) == NAMES


def test_a_slow_query_does_not_hold_up_the_others(server):
    """While one query sleeps on the engine, another connection sees it running in system.processes."""
    marker = f"slow_{uuid.uuid4().hex[:8]}"
    slow: dict[str, object] = {}

    def run_slow():
        conn = connect(server)
        try:
            slow["answer"] = ask(conn, "GET", query_path(f"SELECT sleep(3) AS {marker}"))
        finally:
            conn.close()

    thread = threading.Thread(target=run_slow)
    thread.start()
    seen = False
    conn = connect(server)
    try:
        watch = query_path("SELECT count() FROM system.processes WHERE position(query, {m:String}) > 0 "
                           "AND position(query, 'system.processes') = 0", param_m=marker)
        while thread.is_alive() and not seen:
            status, _headers, body = ask(conn, "GET", watch)
            assert status == 200, body
            seen = body == b"1\n"
            if not seen:
                time.sleep(0.05)  # poll interval
    finally:
        conn.close()
        thread.join(30)
    assert seen, "the second query was answered only after the slow one had finished"
    assert slow["answer"][0] == 200


def test_malformed_chunk_framing_is_a_400_and_the_next_connection_is_served(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nSELECT 1\r\n0\r\n\r\n")
        status, _headers, body = read_response(SharedReader(sock))
    assert status == 400 and b"chunk" in body
    conn = connect(server)
    try:
        assert ask(conn, "GET", query_path("SELECT 1"))[::2] == (200, b"1\n")
    finally:
        conn.close()


def test_body_that_is_not_the_gzip_it_claims_is_a_400_with_a_clickhouse_code(server):
    conn = connect(server)
    try:
        status, headers, body = ask(conn, "POST", "/", body=b"SELECT 1", headers={"Content-Encoding": "gzip"})
    finally:
        conn.close()
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "27")
    assert body.startswith(b"Code: 27. DB::Exception: cannot read the request body")


def test_unknown_content_encoding_is_refused(server):
    conn = connect(server)
    try:
        status, headers, body = ask(conn, "POST", "/", body=b"SELECT 1", headers={"Content-Encoding": "xz"})
    finally:
        conn.close()
    assert (status, headers["x-clickhouse-exception-code"]) == (415, "48")
    assert b"'xz' is not supported" in body


def test_write_query_in_the_body_is_refused_and_the_connection_goes_on(server):
    conn = connect(server)
    try:
        status, headers, body = ask(conn, "POST", "/", body=b"DROP TABLE roadx.probe")
        assert (status, headers["x-clickhouse-exception-code"]) == (500, "164")
        assert body.startswith(b"Code: 164. DB::Exception: the roadx store is served read-only")
        sock = conn.sock
        assert ask(conn, "POST", "/", body=b"SELECT count() FROM roadx.probe")[::2] == (200, b"3\n")
        assert conn.sock is sock
    finally:
        conn.close()


def test_body_beyond_the_limit_is_a_413_and_the_next_connection_is_served(server):
    conn = connect(server)
    try:
        status, headers, body = ask(conn, "POST", "/", body=b"SELECT 1 -- " + b"x" * http_server.MAX_BODY_BYTES)
    finally:
        conn.close()
    assert (status, headers["x-clickhouse-exception-code"]) == (413, "36")
    assert b"larger than the 16 MiB" in body
    conn = connect(server)
    try:
        assert ask(conn, "GET", "/ping")[::2] == (200, b"Ok.\n")
    finally:
        conn.close()


def test_multipart_form_carries_the_query_and_its_parameters(server):
    boundary = "roadx-form"
    fields = {"query": "SELECT name FROM roadx.probe WHERE n = {n:UInt32}", "param_n": "3"}
    form = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                   for k, v in fields.items()) + f"--{boundary}--\r\n"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"t\"; filename=\"t.tsv\"\r\n\r\n1\r\n"
              f"--{boundary}--\r\n")
    conn = connect(server)
    try:
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        assert ask(conn, "POST", "/", body=form.encode(), headers=headers)[::2] == (200, b"plain\n")
        status, answer_headers, body = ask(conn, "POST", "/?query=SELECT+1", body=upload.encode(), headers=headers)
        assert (status, answer_headers["x-clickhouse-exception-code"]) == (415, "48")
        assert b"external data" in body
    finally:
        conn.close()


def test_paths_and_methods_other_than_the_query_endpoint_are_refused(server):
    conn = connect(server)
    try:
        status, _headers, body = ask(conn, "GET", "/play")
        assert (status, body) == (404, b"There is no handle /play\n")
        status, headers, _body = ask(conn, "PUT", "/", body=b"SELECT 1")
        assert (status, headers["allow"]) == (405, "GET, HEAD, POST")
        assert ask(conn, "GET", "/")[::2] == (200, b"Ok.\n")
    finally:
        conn.close()


def test_request_without_a_database_runs_in_roadx(server):
    conn = connect(server)
    try:
        assert ask(conn, "GET", query_path("SELECT currentDatabase()"))[::2] == (200, b"roadx\n")
        assert ask(conn, "GET", query_path("SELECT currentDatabase()", database="system"))[::2] == (200, b"system\n")
        assert ask(conn, "GET", query_path("SELECT count() FROM probe"))[::2] == (200, b"3\n")
    finally:
        conn.close()


def test_summary_header_is_json_with_the_rows_read(server):
    conn = connect(server)
    try:
        status, headers, _body = ask(conn, "GET", query_path("SELECT * FROM roadx.probe"))
    finally:
        conn.close()
    assert status == 200
    assert int(json.loads(headers["x-clickhouse-summary"])["read_rows"]) == len(PROBE_ROWS)
