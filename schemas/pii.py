"""Personal identifiers never reach the analytical store in clear (DESIGN §3).

ID numbers keep their first 6 and last 4 characters (``110105********002X``), phone
numbers their first 3 and last 4 (``138****5678``); next to each masked field goes a
keyed token (``<field>_token``: hex of HMAC-SM3 under the exchange's PII key, truncated
to 16 bytes), stable for the same value and key so analysts can still join on it.
Entity keys that carry an ID number (``practitioner:<id>``, a licence's ``holder_key``)
use ``tok_<token>`` in its place (a mobile number in a key likewise). Any other ID-number-
or mobile-number-shaped text in a record, a reason or a message is masked. Which fields are
personal is what the register declarations say (a field's ``personal``; ``schemas.registers``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from . import registers, signing

TOKEN_BYTES = 16


def _declared(kind: str) -> tuple[str, ...]:
    """The fields any register declares personal as ``kind`` (``schemas.registers``), or, for
    ``"key"``, that hold a whole entity key (which may carry an ID number), in declaration order."""
    return tuple(dict.fromkeys(
        field.name for register in registers.declarations() for field in register.fields
        if (field.personal == kind if kind != "key" else
            field.refers_to is not None and field.refers_to.by == registers.ENTITY_KEY)))


ID_NUMBER_FIELDS = _declared("id_number")
PHONE_FIELDS = _declared("phone")
KEY_FIELDS = _declared("key")

# GB 11643 shape: region, birth date YYYYMMDD, sequence, check character.
_ID_SHAPE = (
    r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
)
_ID_IN_TEXT = re.compile(rf"(?<![0-9]){_ID_SHAPE}(?![0-9Xx])")
_PHONE_SHAPE = r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])"
_PHONE_IN_TEXT = re.compile(_PHONE_SHAPE)
_ID_IN_BYTES = re.compile(rf"(?<![0-9]){_ID_SHAPE}(?![0-9Xx])".encode("ascii"))
_PHONE_IN_BYTES = re.compile(_PHONE_SHAPE.encode("ascii"))
# Both shapes hold at least 11 ASCII digits in a row: text without such a run holds neither.
_DIGIT_RUN = re.compile(r"[0-9]{11}")
_DIGIT_RUN_BYTES = re.compile(rb"[0-9]{11}")
_PERSONAL_FIELDS = (*ID_NUMBER_FIELDS, *PHONE_FIELDS)
_SPECIAL_FIELDS = frozenset((*ID_NUMBER_FIELDS, *PHONE_FIELDS, *KEY_FIELDS))
_TOKEN_CACHE_SIZE = 65_536


def may_hold_personal_number(text: str) -> bool:
    """False when ``text`` cannot hold an ID or mobile number (no run of 11 ASCII digits)."""
    return len(text) >= 11 and _DIGIT_RUN.search(text) is not None


def mask_id_number(value: str) -> str:
    """First 6 + ``********`` + last 4; shorter values are masked entirely."""
    if len(value) < 11:
        return "*" * len(value)
    return f"{value[:6]}********{value[-4:]}"


def mask_phone(value: str) -> str:
    """First 3 + ``****`` + last 4; shorter values are masked entirely."""
    if len(value) < 8:
        return "*" * len(value)
    return f"{value[:3]}****{value[-4:]}"


class PiiMasker:
    """Masks and tokenises personal identifiers under one key (``settings.pii_key()``)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the PII token key must hold at least 16 bytes")
        self._key = key
        self._tokens: dict[str, str] = {}

    def token(self, value: str) -> str:
        """Hex keyed token of an identifier (normalised: stripped, upper case)."""
        known = self._tokens.get(value)
        if known is not None:
            return known
        normalised = value.strip().upper().encode("utf-8")
        token = signing.mac(self._key, normalised)[:TOKEN_BYTES].hex()
        if len(self._tokens) >= _TOKEN_CACHE_SIZE:
            self._tokens.clear()
        self._tokens[value] = token
        return token

    def entity_key(self, key: str) -> str:
        """An entity key with every ID or mobile number replaced by ``tok_<token>``."""
        if not may_hold_personal_number(key):
            return key
        keyed = _ID_IN_TEXT.sub(lambda m: f"tok_{self.token(m.group(0))}", key)
        return _PHONE_IN_TEXT.sub(lambda m: f"tok_{self.token(m.group(0))}", keyed)

    def record(self, record: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A copy of an entity record with personal identifiers masked and tokenised."""
        if record is None:
            return None
        out: dict[str, Any] = {}
        for name, value in record.items():
            if not isinstance(value, str):
                out[name] = value
            elif name not in _SPECIAL_FIELDS:
                out[name] = self.text(value)
            elif name in ID_NUMBER_FIELDS:
                out[name] = mask_id_number(value)
                out[f"{name}_token"] = self.token(value)
            elif name in PHONE_FIELDS:
                out[name] = mask_phone(value)
                out[f"{name}_token"] = self.token(value)
            else:
                out[name] = self.entity_key(value)
        for name in _PERSONAL_FIELDS:
            if name in record and record[name] is None:
                out[f"{name}_token"] = None
        return out

    def text(self, value: str) -> str:
        """Free text (a reason, a header, a message) with ID and mobile numbers masked."""
        if not may_hold_personal_number(value):
            return value
        masked = _ID_IN_TEXT.sub(lambda m: mask_id_number(m.group(0)), value)
        return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), masked)


def mask_raw(raw: bytes) -> bytes:
    """Mask ID numbers and mobile numbers inside raw message bytes, keeping every length.

    Avro strings are stored as plain UTF-8 after a length prefix, so a masked body still
    decodes (its signature no longer verifies, which does not matter for a dead letter).
    """
    if _DIGIT_RUN_BYTES.search(raw) is None:
        return raw
    masked = _ID_IN_BYTES.sub(lambda m: mask_id_number(m.group(0).decode("ascii")).encode("ascii"), raw)
    return _PHONE_IN_BYTES.sub(lambda m: mask_phone(m.group(0).decode("ascii")).encode("ascii"), masked)
