"""Answer an analyst's SQL from the store, formatted as text.

``pretty`` is an aligned table with a header (CJK characters count two columns);
``tsv`` is tab-separated with a header line (tabs, newlines and backslashes escaped as
ClickHouse's TabSeparated does); ``json`` is an array of row objects. Queries run
read-only: a statement that would change the store is refused by ClickHouse.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import re
import unicodedata
import uuid
from typing import Any, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from .errors import QueryError

FORMATS = ("pretty", "tsv", "json")
READ_ONLY = {"readonly": 2}
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+\w+\s*$", re.IGNORECASE)


def run_query(client: Any, sql: str, fmt: str = "pretty") -> str:
    """Run ``sql`` read-only and format its result; raises ``QueryError`` on bad SQL."""
    if fmt not in FORMATS:
        raise QueryError(sql, f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    statement = sql.strip().rstrip(";").strip()
    if not statement:
        raise QueryError(sql, "empty query")
    if _FORMAT_CLAUSE.search(statement):
        raise QueryError(sql, "a FORMAT clause is not accepted: choose the output with --format pretty|tsv|json")
    try:
        result = client.query(statement, settings=READ_ONLY)
    except ClickHouseError as exc:
        raise QueryError(sql, server_message(exc)) from exc
    return format_result(list(result.column_names), result.result_rows, fmt)


def server_message(exc: BaseException) -> str:
    """ClickHouse's own message (from ``Code: N.`` on), without driver preambles."""
    text = str(exc).strip()
    start = text.find("Code: ")
    text = text[start:] if start >= 0 else text
    for noise in (" FORMAT Native", " SETTINGS readonly = '2'"):
        text = text.replace(noise, "")
    return text.strip()


def format_result(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "pretty":
        return _pretty(columns, rows)
    if fmt == "tsv":
        return _tsv(columns, rows)
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False,
                          default=_json_value, indent=1)
    raise ValueError(f"unknown format {fmt!r}")


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond else "seconds")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def _pretty(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_text(v).replace("\n", "\\n").replace("\t", "\\t") for v in row] for row in rows]
    widths = [display_width(c) for c in columns]
    for row in cells:
        widths = [max(w, display_width(c)) for w, c in zip(widths, row)]
    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float, decimal.Decimal)) and not isinstance(r[i], bool)
                           for r in rows if r[i] is not None)
        for i in range(len(columns))
    ]
    lines = [" │ ".join(_pad(c, w, False) for c, w in zip(columns, widths)).rstrip()]
    lines.append("─┼─".join("─" * w for w in widths))
    for row in cells:
        lines.append(" │ ".join(_pad(c, w, n) for c, w, n in zip(row, widths, numeric)).rstrip())
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(lines)


def _tsv_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _tsv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["\t".join(_tsv_escape(c) for c in columns)]
    lines += ["\t".join(_tsv_escape(_text(v)) for v in row) for row in rows]
    return "\n".join(lines)
