"""Verify a licence issued in any province (互信互认), from ``current_licences``.

``verify_licence`` is the store's runner of the decision in ``schemas.licences``: it looks
the number up with bound parameters only; a number that is not shaped like a licence
number is answered ``unknown`` without reaching the store. Qualification certificates
carry the holder's ID number, which the store keeps only masked, so such a number is also
looked up by its keyed entity key (``licence:qualification:tok_<token>``).

Given the hub's ``public_key_for`` (``HubKeys.public_key``), the answer carries the issuing
authority's seal (``schemas.seals``): checked over the stored content when the store keeps the
signature, which it does for every licence but those carrying a personal number; for those the
seal is ``unchecked`` unless a scanned QR payload (``qr``) brings the signature and the clear
number lets the content be rebuilt (its masked form must equal what the store holds).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import fields
from typing import Any, Iterable, Mapping, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas import seals
from schemas.licences import LicenceRecord, Verdict, candidate_keys, choose, ill_formed_reason, verdict, well_formed
from schemas.pii import PiiMasker

from .ddl import check_identifier
from .errors import QueryError, StoreError

_COLUMNS = tuple(f.name for f in fields(LicenceRecord))  # current_licences columns, in the record's order
_SEAL_COLUMNS = ("seal_key_id", "seal_signature", "sealed_at")  # sinks.migrations (migration 11)


def verify_licence(client: Any, database: str, licence_no: str, pii: PiiMasker | None = None,
                   today: dt.date | None = None, public_key_for: seals.PublicKeyFor | None = None,
                   qr: seals.QrSeal | None = None) -> Verdict:
    """Look the number (or the scanned ``qr``'s) up in ``current_licences`` and decide; raises
    ``QueryError`` if the store fails."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    number = qr.licence_no if qr is not None else licence_no.strip()
    if not well_formed(number):
        return Verdict(licence_no, "unknown", checked_on=today.isoformat(), reason=ill_formed_reason(number))
    try:
        db = check_identifier(database)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    sql = (f"SELECT {', '.join((*_COLUMNS, *_SEAL_COLUMNS))} FROM {db}.current_licences "
           "WHERE licence_no = {no:String} OR entity_key IN {keys:Array(String)} ORDER BY ts DESC LIMIT 10")
    try:
        rows = client.query(sql, parameters={"no": number, "keys": candidate_keys(number, pii)}).result_rows
    except ClickHouseError as exc:
        raise QueryError(sql, str(exc)) from exc
    records = _records(rows)
    chosen = choose(records, number)
    decided = verdict(number, chosen, today)
    if chosen is None or public_key_for is None:
        return decided
    stored = rows[records.index(chosen)]
    check = _seal(chosen, stored[len(_COLUMNS):], number, pii, public_key_for, qr)
    return dataclasses.replace(decided, seal=check.seal, seal_key_id=check.key_id, sealed_at=check.sealed_at,
                               seal_reason=check.reason)


def _seal(record: LicenceRecord, seal_row: Sequence[Any], number: str, pii: PiiMasker | None,
          public_key_for: seals.PublicKeyFor, qr: seals.QrSeal | None) -> seals.SealCheck:
    key_id, signature, sealed_at = seal_row
    content = {f.name: getattr(record, f.name) for f in fields(LicenceRecord)}
    stored_seal = None if key_id is None else {"key_id": key_id, "signature": signature, "sealed_at": sealed_at}
    if qr is None and (stored_seal is None or signature is not None):
        return seals.check_seal({**content, "seal": stored_seal}, public_key_for)
    clear = None if qr is None else content if signature is not None else _clear_content(content, number, pii)
    if clear is None:
        why = ("the store keeps no signature of a licence carrying a personal number"
               + ("" if qr is None else ", and its content cannot be rebuilt from the number scanned")
               + ": scan its QR code (--qr) with the exchange's master key at hand, or ask the service (--token)")
        return seals.SealCheck(seals.UNCHECKED, key_id, None if sealed_at is None else seals.iso_time(sealed_at), why)
    return seals.check_seal(clear, public_key_for, qr.seal)


def _clear_content(stored: Mapping[str, Any], number: str, pii: PiiMasker | None) -> dict[str, Any] | None:
    """The licence's clear content from its masked one and the clear ``number``, when the number is
    the only personal number in it (a qualification certificate numbered by its holder's ID)."""
    if pii is None:
        return None
    token = f"tok_{pii.token(number)}"
    clear = {**stored, "licence_no": number, "holder_key": str(stored["holder_key"]).replace(token, number)}
    masked = pii.record({name: clear[name] for name in ("licence_no", "holder_key")}) or {}
    if masked.get("licence_no") != stored["licence_no"] or masked.get("holder_key") != stored["holder_key"]:
        return None
    return clear


def _records(rows: Iterable[Sequence[Any]]) -> list[LicenceRecord]:
    return [LicenceRecord(*row[:len(_COLUMNS)]) for row in rows]
