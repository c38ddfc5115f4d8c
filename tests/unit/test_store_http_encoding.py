"""The served store's content codings and form fields, as ClickHouse treats them (no engine, no network)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sinks.errors import QueryError
from sinks.http_request import ENCODERS, choose_encoding, encode_body, error_code, parse_request


def test_server_order_wins_over_the_clients_order():
    assert choose_encoding("deflate, gzip") == "gzip"
    assert choose_encoding("gzip, deflate, zstd") == ("zstd" if "zstd" in ENCODERS else "gzip")


def test_coding_refused_with_q_zero_is_not_chosen():
    assert choose_encoding("gzip;q=0, deflate") == "deflate"
    assert choose_encoding("gzip;q=0.0") is None
    assert choose_encoding("GZIP ; q=0.5") == "gzip"


def test_wildcard_accepts_any_coding_not_refused():
    assert choose_encoding("*") == next(iter(ENCODERS))
    assert choose_encoding("*;q=0") is None


def test_no_known_coding_means_a_plain_answer():
    assert choose_encoding("") is None
    assert choose_encoding("identity, br") is None


@pytest.mark.parametrize("coding, decode", [("gzip", gzip.decompress), ("deflate", zlib.decompress)])
def test_encoded_body_decodes_back(coding, decode):
    body = b"1\t\xe6\xb4\xa5A\n" * 100
    assert decode(encode_body(body, coding, level=9)) == body
    assert decode(encode_body(body, coding, level=99)) == body  # clamped to zlib's 1..9


def test_form_fields_count_as_url_parameters():
    request = parse_request("database=roadx", b"", [("query", "SELECT {n:UInt8}"), ("param_n", "7"),
                                                    ("max_threads", "1")])
    assert (request.sql, request.params, request.settings) == ("SELECT {n:UInt8}", {"n": "7"}, {"max_threads": "1"})
    assert request.database == "roadx"


def test_answer_compression_follows_enable_http_compression():
    assert parse_request("enable_http_compression=1&query=SELECT+1", b"").compress_response
    assert not parse_request("query=SELECT+1", b"").compress_response
    assert not parse_request("enable_http_compression=0", b"SELECT 1").compress_response


@pytest.mark.parametrize("flag", ["compress=1", "decompress=1", "compress=true"])
def test_clickhouse_block_compression_is_refused_as_not_implemented(flag):
    with pytest.raises(QueryError) as caught:
        parse_request(f"{flag}&query=SELECT+1", b"")
    assert error_code(caught.value.server_message) == 48


def test_block_compression_turned_off_is_no_refusal():
    assert parse_request("compress=0&decompress=0", b"SELECT 1").sql == "SELECT 1"
