"""Verify a licence issued in any province (互信互认), from ``current_licences``.

``verify_licence`` is the store's runner of the decision in ``schemas.licences``: it looks
the number up with bound parameters only; a number that is not shaped like a licence
number is answered ``unknown`` without reaching the store. Qualification certificates
carry the holder's ID number, which the store keeps only masked, so such a number is also
looked up by its keyed entity key (``licence:qualification:tok_<token>``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import Any, Iterable, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.licences import LicenceRecord, Verdict, candidate_keys, choose, ill_formed_reason, verdict, well_formed
from schemas.pii import PiiMasker

from .ddl import check_identifier
from .errors import QueryError, StoreError

_COLUMNS = tuple(f.name for f in fields(LicenceRecord))  # current_licences columns, in the record's order


def verify_licence(client: Any, database: str, licence_no: str, pii: PiiMasker | None = None,
                   today: dt.date | None = None) -> Verdict:
    """Look the number up in ``current_licences`` and decide; raises ``QueryError`` if the store fails."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    number = licence_no.strip()
    if not well_formed(number):
        return Verdict(licence_no, "unknown", checked_on=today.isoformat(), reason=ill_formed_reason(number))
    try:
        db = check_identifier(database)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    sql = (f"SELECT {', '.join(_COLUMNS)} FROM {db}.current_licences "
           "WHERE licence_no = {no:String} OR entity_key IN {keys:Array(String)} ORDER BY ts DESC LIMIT 10")
    try:
        rows = client.query(sql, parameters={"no": number, "keys": candidate_keys(number, pii)}).result_rows
    except ClickHouseError as exc:
        raise QueryError(sql, str(exc)) from exc
    return verdict(number, choose(_records(rows), number), today)


def _records(rows: Iterable[Sequence[Any]]) -> list[LicenceRecord]:
    return [LicenceRecord(*row) for row in rows]
