"""Sealed electronic licences (JT/T 1290–1292): the issuing authority's seal, and the QR payload.

A licence record (``roadx.Licence``) may carry a seal (``roadx.LicenceSeal``): the key id of the
issuing party's SM2 key (``schemas.keys``), the SM2 signature (SM3 digest, DER, in base64 text so
that a licence record stays JSON-safe wherever it is kept) and the time it was sealed. The issuing party is the province of the licence's ``issuer_region_code`` (its first
two digits): a seal is checked with that party's registered public key, usable at ``sealed_at``.

**Canonical content** (version 1): the seven fields of the licence but the seal, in this order,
as compact JSON (UTF-8, no ASCII escaping, ``[name, value]`` pairs)::

    [["licence_no","…"],["licence_type","…"],["holder_key","…"],["issuer_region_code","…"],
     ["valid_from","YYYY-MM-DD"],["valid_until","YYYY-MM-DD"],["status","…"]]

Dates are ISO text whatever form they come in (Avro ``date``, days since 1970-01-01, ISO text),
a missing value is ``null``. A later version of ``roadx.Licence`` adding a field does not change
this content: sealing it too needs a version 2.

**Signed message**: ``roadx-licence-seal/1`` LF ``key_id`` LF ``sealed_at`` LF canonical content,
where ``sealed_at`` is ISO 8601 UTC with milliseconds (``2024-06-01T08:00:00.000Z``). The status
is sealed too: an authority suspending or renewing a licence seals the changed record again.

**Verdicts** (``check_seal``): ``valid``; ``invalid`` (a field was changed after sealing, or the
seal is no SM2 signature of it); ``unknown_key`` (the key is not registered, is another party's,
was revoked before ``sealed_at`` or was not valid then); ``unsealed`` (no seal: licences issued
before sealing began, a warning rather than an error); ``unchecked`` (the verifier does not hold
the licence's content or signature in clear: the analytical store keeps no signature of a
licence carrying a personal number, since with the public key it would give the masked number
away).

**QR payload** (what an officer's scanner reads from a licence), one line of UTF-8 text::

    RDXL1:<licence_no>:<key_id>:<sealed_at>:<signature>

``RDXL1`` names this format; ``licence_no`` as issued (letters, digits, CJK, brackets, ``-``);
``key_id`` the sealing key (``<party>-<8 hex digits>``); ``sealed_at`` the sealing time in
milliseconds since 1970-01-01 UTC, decimal; ``signature`` the DER SM2 signature in unpadded
base64url. No part can hold ``:``. ``parse_qr`` refuses anything else with ``ProvenanceError``
rule ``malformed_qr``. The scanned seal is checked against the register's content of that
licence: a licence changed since the code was printed answers ``invalid``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import sm2
from .errors import ProvenanceError
from .licences import well_formed

CONTENT_FIELDS = ("licence_no", "licence_type", "holder_key", "issuer_region_code", "valid_from",
                  "valid_until", "status")
SEAL_FIELD = "seal"
VALID, INVALID, UNKNOWN_KEY, UNSEALED, UNCHECKED = "valid", "invalid", "unknown_key", "unsealed", "unchecked"
VERDICTS = (VALID, INVALID, UNKNOWN_KEY, UNSEALED, UNCHECKED)
VERDICT_LABELS = {VALID: "印章有效 valid", INVALID: "印章无效 invalid (changed after sealing)",
                  UNKNOWN_KEY: "印章密钥未登记 unknown key", UNSEALED: "未加盖电子印章 unsealed",
                  UNCHECKED: "印章未核验 unchecked"}
QR_PREFIX = "RDXL1"
QR_MAX_CHARS = 400
_MESSAGE_HEAD = b"roadx-licence-seal/1\n"
_KEY_ID = re.compile(r"[0-9A-Za-z_-]{1,32}-[0-9a-f]{8}")  # schemas.keys: <party>-<8 hex digits>
_B64URL = re.compile(r"[A-Za-z0-9_-]{12,120}")
_MILLIS = re.compile(r"[0-9]{1,15}")
_EPOCH = dt.date(1970, 1, 1)
_UTC = dt.timezone.utc

PublicKeyFor = Callable[[str, str, dt.datetime], sm2.PublicKey]  # (party, key id, at); HubKeys.public_key


@dataclass(frozen=True)
class Seal:
    """A seal as checked: key id, signature (DER) and sealing time (UTC, milliseconds)."""

    key_id: str
    signature: bytes
    sealed_at: dt.datetime


@dataclass(frozen=True)
class SealCheck:
    """The verdict on one licence's seal (one of ``VERDICTS``), with why when it is not valid."""

    seal: str
    key_id: str | None = None
    sealed_at: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class QrSeal:
    """What a licence's QR code says: the licence number and its seal."""

    licence_no: str
    seal: Seal


# -- content ---------------------------------------------------------------------------------

def canonical_content(record: Mapping[str, Any]) -> bytes:
    """The licence's canonical content (see the module's docstring); ``ValueError`` for a
    record missing a field or holding a date that is none."""
    pairs = []
    for name in CONTENT_FIELDS:
        if name not in record:
            raise ValueError(f"the licence has no field {name!r}")
        value = record[name]
        if name in ("valid_from", "valid_until"):
            value = None if value is None else iso_date(value)
        elif value is not None and not isinstance(value, str):
            raise ValueError(f"{name} {value!r} is not text")
        pairs.append([name, value])
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def iso_date(value: Any) -> str:
    """A date as ``YYYY-MM-DD``: a ``date``, days since 1970-01-01, or ISO text."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value!r} is a time, not a date")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return (_EPOCH + dt.timedelta(days=value)).isoformat()
    if isinstance(value, str):
        return dt.date.fromisoformat(value).isoformat()
    raise ValueError(f"{value!r} is not a date")


def signed_message(content: bytes, key_id: str, sealed_at: dt.datetime) -> bytes:
    return _MESSAGE_HEAD + f"{key_id}\n{iso_time(sealed_at)}\n".encode("ascii") + content


def iso_time(value: dt.datetime) -> str:
    return value.astimezone(_UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def issuing_party(record: Mapping[str, Any]) -> str:
    """The party whose key seals the licence: the province of its issuing authority."""
    return str(record.get("issuer_region_code") or "")[:2]


# -- sealing ---------------------------------------------------------------------------------

def seal_licence(record: Mapping[str, Any], party_key: Any, at: dt.datetime) -> dict[str, Any]:
    """A copy of ``record`` sealed with ``party_key`` (``schemas.keys.PartyKey``) at ``at``;
    ``ProvenanceError`` when the key is another party's or not valid at ``at``."""
    party = issuing_party(record)
    if party_key.party != party:
        raise ProvenanceError("other_party_key", f"licence {record.get('licence_no')!r} is issued in {party!r}: "
                                                 f"party {party_key.party}'s key cannot seal it")
    sealed_at = _millis_time(at)
    if not party_key.valid_at(sealed_at):
        raise ProvenanceError("expired_key", f"key {party_key.key_id} is not valid at {iso_time(sealed_at)}")
    signature = sm2.sign(party_key.private, signed_message(canonical_content(record), party_key.key_id, sealed_at))
    return {**record, SEAL_FIELD: {"key_id": party_key.key_id, "signature": base64.b64encode(signature).decode("ascii"),
                                   "sealed_at": sealed_at}}


# -- checking --------------------------------------------------------------------------------

def read_seal(value: Any) -> Seal | None:
    """The seal of a record as Avro decodes it (bytes, datetime) or as JSON keeps it (base64
    text, ISO text or epoch ms); None for no seal; ``ValueError`` for a malformed one."""
    if value is None:
        return None
    if isinstance(value, Seal):
        return value
    if not isinstance(value, Mapping):
        raise ValueError("the seal is not a record")
    key_id, signature, sealed_at = value.get("key_id"), value.get("signature"), value.get("sealed_at")
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"the seal's key id {key_id!r} is not <party>-<8 hex digits>")
    if isinstance(signature, str):
        try:
            signature = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the seal's signature is not base64") from None
    if not isinstance(signature, (bytes, bytearray)) or not signature:
        raise ValueError("the seal holds no signature")
    return Seal(key_id, bytes(signature), _time(sealed_at))


def check_seal(record: Mapping[str, Any], public_key_for: PublicKeyFor, seal: Any = None) -> SealCheck:
    """The verdict on ``record``'s seal, or on ``seal`` (e.g. a scanned one) over ``record``'s
    content; ``public_key_for`` is the hub's ``HubKeys.public_key``."""
    raw = record.get(SEAL_FIELD) if seal is None else seal
    if raw is None:
        return SealCheck(UNSEALED, reason="the licence carries no seal (issued before sealing began)")
    try:
        found = read_seal(raw)
    except ValueError as exc:
        return SealCheck(INVALID, reason=f"malformed seal: {exc}")
    if found is None:
        return SealCheck(UNSEALED, reason="the licence carries no seal (issued before sealing began)")
    shown = SealCheck(INVALID, found.key_id, iso_time(found.sealed_at))
    try:
        content = canonical_content(record)
    except ValueError as exc:
        return _with(shown, INVALID, f"the licence's content cannot be sealed: {exc}")
    try:
        public = public_key_for(issuing_party(record), found.key_id, found.sealed_at)
    except ProvenanceError as exc:
        return _with(shown, UNKNOWN_KEY, str(exc))
    if not sm2.verify(public, found.signature, signed_message(content, found.key_id, found.sealed_at)):
        return _with(shown, INVALID, "the seal does not match the licence: a field was changed after sealing, "
                                     "or the signature is not the key's")
    return _with(shown, VALID, None)


def _with(check: SealCheck, verdict: str, reason: str | None) -> SealCheck:
    return SealCheck(verdict, check.key_id, check.sealed_at, reason)


# -- the store and other parties' answers ----------------------------------------------------

def masked_seal(clear: Mapping[str, Any], masked: Mapping[str, Any]) -> dict[str, Any]:
    """``masked`` (a copy of licence ``clear`` with personal numbers masked) with its seal as
    others may see it: without its signature when masking changed the content (the signature
    and the public key would let anyone test guesses of the masked number)."""
    out = dict(masked)
    seal = clear.get(SEAL_FIELD)
    if isinstance(seal, Mapping) and any(masked.get(n) != clear.get(n) for n in CONTENT_FIELDS):
        out[SEAL_FIELD] = {k: v for k, v in seal.items() if k != "signature"}
    return out


def seal_as_json(seal: Any) -> dict[str, Any] | None:
    """A seal as JSON holds it: signature in base64, ``sealed_at`` as ISO text (None stays None)."""
    if not isinstance(seal, Mapping):
        return None
    out = dict(seal)
    if isinstance(out.get("signature"), (bytes, bytearray)):
        out["signature"] = base64.b64encode(out["signature"]).decode("ascii")
    if out.get("sealed_at") is not None:
        out["sealed_at"] = iso_time(_time(out["sealed_at"]))
    return out


# -- the QR payload --------------------------------------------------------------------------

def qr_payload(record: Mapping[str, Any]) -> str:
    """The text of a sealed licence's QR code; ``ValueError`` for an unsealed one."""
    seal = read_seal(record.get(SEAL_FIELD))
    if seal is None:
        raise ValueError(f"licence {record.get('licence_no')!r} is not sealed: it has no QR payload")
    licence_no = str(record["licence_no"])
    if ":" in licence_no or not well_formed(licence_no):
        raise ValueError(f"licence number {licence_no!r} cannot go in a QR payload")
    signature = base64.urlsafe_b64encode(seal.signature).rstrip(b"=").decode("ascii")
    millis = (seal.sealed_at - dt.datetime(1970, 1, 1, tzinfo=_UTC)) // dt.timedelta(milliseconds=1)  # exact, no float
    return f"{QR_PREFIX}:{licence_no}:{seal.key_id}:{millis}:{signature}"


def parse_qr(text: Any) -> QrSeal:
    """The licence number and seal a QR payload carries; ``ProvenanceError`` rule
    ``malformed_qr`` naming what is wrong."""
    if not isinstance(text, str):
        raise _malformed(f"the payload is {type(text).__name__}, not text")
    text = text.strip()
    if len(text) > QR_MAX_CHARS:
        raise _malformed(f"{len(text)} characters, a licence's QR payload has at most {QR_MAX_CHARS}")
    parts = text.split(":")
    if parts[0] != QR_PREFIX:
        raise _malformed(f"it does not start with {QR_PREFIX}: (expected "
                         f"{QR_PREFIX}:<licence_no>:<key_id>:<sealed_at ms>:<signature>)")
    if len(parts) != 5:
        raise _malformed(f"{len(parts)} parts separated by ':', expected 5")
    _prefix, licence_no, key_id, millis, signature = parts
    if not well_formed(licence_no):
        raise _malformed(f"licence number {licence_no[:64]!r} is not shaped like one")
    if not _KEY_ID.fullmatch(key_id):
        raise _malformed(f"key id {key_id[:40]!r} is not <party>-<8 hex digits>")
    if not _MILLIS.fullmatch(millis):
        raise _malformed(f"sealed_at {millis[:20]!r} is not milliseconds since 1970 in decimal")
    if not _B64URL.fullmatch(signature):
        raise _malformed("the signature is not unpadded base64url of 9 to 90 bytes")
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        sealed_at = _time(int(millis))
    except (binascii.Error, ValueError, OverflowError) as exc:
        raise _malformed(f"{exc}") from None
    if raw[:1] != b"\x30":
        raise _malformed("the signature is not a DER signature")
    return QrSeal(licence_no, Seal(key_id, raw, sealed_at))


def _malformed(why: str) -> ProvenanceError:
    return ProvenanceError("malformed_qr", f"not a licence's QR payload: {why}")


def _time(value: Any) -> dt.datetime:
    """A sealing time from a datetime (naive = UTC), epoch ms, or ISO text; whole milliseconds, UTC."""
    if isinstance(value, dt.datetime):
        return _millis_time(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 253_402_300_800_000:  # before year 10000
            raise ValueError(f"sealed_at {value} ms is out of range")
        return dt.datetime.fromtimestamp(value // 1000, _UTC) + dt.timedelta(milliseconds=value % 1000)
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        return _millis_time(dt.datetime.fromisoformat(text))
    raise ValueError(f"sealed_at {value!r} is not a time")


def _millis_time(value: dt.datetime) -> dt.datetime:
    value = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
