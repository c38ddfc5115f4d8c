"""What a caller may ask about, checked before any lookup: each identifier against the
standard the stream stage checks it with, refused (400) under the same rule name.

    operator      a USCC (GB 32100)                       rule invalid_uscc
    vehicle       a plate (GA 36), optionally its colour   rules invalid_plate, invalid_plate_color
    practitioner  an ID number (GB 11643), or its token    rule invalid_id_number
                  as the store shows it (32 hex digits)
    licence       a licence number                        rule ill_formed_licence_no
    scanned QR    a licence's QR payload (schemas.seals)  rule malformed_qr
    ship          its ship identification number (船舶识别号, format not checked)
    ship_imo      a ship by IMO number (7 digits, check digit; "IMO" prefix allowed)   rule invalid_imo
    ship_mmsi     a ship by MMSI (9 digits)               rule invalid_mmsi
    shipping_enterprise, port_enterprise   a USCC (GB 32100)   rule invalid_uscc
    waterway_project   a national investment-project code (its format is not confirmed: not checked)

The water kinds each ask one register: an operator (经营业户) and a shipping enterprise (航运企业)
may share a USCC, and each is answered from its own register.

Any declared register (``schemas.registers``: one declared in the configured directory too) is
also asked by its natural key (``register_question``): the values of its key fields joined by
":", each put in its canonical form when the field has one; kind ``register``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from schemas import identifiers, registers, seals, water_identifiers
from schemas.errors import InvalidIdentifier, ProvenanceError
from schemas.licences import ill_formed_reason, well_formed

from ..errors import BadQuestion

ROAD_KINDS = ("operator", "vehicle", "practitioner", "licence", "verification")
WATER_KINDS = ("ship", "ship_imo", "ship_mmsi", "shipping_enterprise", "port_enterprise", "waterway_project")
KINDS = ROAD_KINDS + WATER_KINDS
# kind -> (the register it asks, the field of its records the identifier is)
WATER_LOOKUPS = {"ship": ("ship", "ship_id"), "ship_imo": ("ship", "imo"), "ship_mmsi": ("ship", "mmsi"),
                 "shipping_enterprise": ("shipping_enterprise", "uscc"), "port_enterprise": ("port_enterprise", "uscc"),
                 "waterway_project": ("waterway_project", "project_code")}
MAX_LOOKUPS = 1_000
MAX_IDENTIFIER = 64  # longer text is no identifier of any register
_TOKEN = re.compile(r"[0-9a-f]{32}")  # schemas.pii: 16 bytes of keyed hash, hex


@dataclass(frozen=True)
class Question:
    """One identifier to look up: ``kind`` (one of ``KINDS``), the canonical ``value``, and
    a vehicle's plate colour when given."""

    kind: str
    value: str
    color: int | None = None
    token: bool = False  # a practitioner asked by the token of the ID number
    register: str | None = None  # the register a question of kind ``register`` asks


REGISTER = "register"  # the kind of a question about any declared register by its natural key


def register_question(register: str, raw: Any) -> Question:
    """A question about ``register`` by its natural key; ``BadQuestion`` 404 for an undeclared register,
    400 for a missing, overlong or malformed key."""
    try:
        declared = registers.declaration(register)
    except KeyError:
        known = ", ".join(r.entity_type for r in registers.declarations())
        raise BadQuestion(404, "unknown_register", f"no register {register!r}; the registers are {known}") from None
    if not isinstance(raw, str) or not raw.strip():
        raise BadQuestion(400, "missing_identifier", f"{register}: a key is required")
    if len(raw) > MAX_IDENTIFIER:
        raise BadQuestion(400, "identifier_too_long", f"{register}: {len(raw)} characters, at most {MAX_IDENTIFIER}")
    parts = raw.strip().split(":")
    if len(parts) != len(declared.key_fields) or not all(part.strip() for part in parts):
        raise BadQuestion(400, "malformed_key", f"{register}: its key is {' : '.join(declared.key_fields)}, "
                                                f"the values joined by ':'")
    value = ":".join(identifiers.canonical(part) if declared.field(name).canonical else water_identifiers.plain(part)
                     for name, part in zip(declared.key_fields, parts))
    return Question(REGISTER, value, register=register)


def question(kind: str, raw: str, color: str | int | None = None, uscc_allow: Iterable[str] = ()) -> Question:
    """Check one identifier; ``BadQuestion`` (400) names the rule it breaks."""
    if kind not in KINDS:
        raise BadQuestion(400, "unknown_kind", f"kind {kind!r}: one of {', '.join(KINDS)}")
    if not isinstance(raw, str) or not raw.strip():
        raise BadQuestion(400, "missing_identifier", f"{kind}: an identifier is required")
    if len(raw) > MAX_IDENTIFIER:
        raise BadQuestion(400, "identifier_too_long", f"{kind}: {len(raw)} characters, at most {MAX_IDENTIFIER}")
    if kind == "practitioner" and is_token(raw.strip()):
        return Question(kind, raw.strip(), token=True)
    if kind in WATER_KINDS:
        return _water_question(kind, raw, uscc_allow)
    value = identifiers.canonical(raw) if kind not in ("licence", "verification") else raw.strip()
    try:
        if kind == "operator":
            identifiers.check_uscc(value, uscc_allow)
        elif kind == "vehicle":
            identifiers.check_plate(value)
        elif kind == "practitioner":
            identifiers.check_id_number(value)
        elif not well_formed(value):
            raise BadQuestion(400, "ill_formed_licence_no", ill_formed_reason(value))
    except InvalidIdentifier as exc:
        raise BadQuestion(400, exc.rule, str(exc)) from exc
    return Question(kind, value, _color(color) if kind == "vehicle" else None)


def _water_question(kind: str, raw: str, uscc_allow: Iterable[str]) -> Question:
    """A question of one of ``WATER_KINDS``, its identifier in the form the register keeps it."""
    try:
        if kind == "ship_imo":
            value = water_identifiers.canonical_imo(raw)
            water_identifiers.check_imo(value)
        elif kind == "ship_mmsi":
            value = identifiers.canonical(raw)
            water_identifiers.check_mmsi(value)
        elif kind in ("shipping_enterprise", "port_enterprise"):
            value = identifiers.canonical(raw)
            identifiers.check_uscc(value, uscc_allow)
        else:  # a ship id or a project code: kept as written, but for spaces and full-width characters
            value = water_identifiers.plain(raw)
    except InvalidIdentifier as exc:
        raise BadQuestion(400, exc.rule, str(exc)) from exc
    return Question(kind, value)


def scanned_question(payload: Any) -> seals.QrSeal:
    """The licence number and seal of a scanned QR payload; ``BadQuestion`` 400 ``malformed_qr``."""
    try:
        return seals.parse_qr(payload)
    except ProvenanceError as exc:
        raise BadQuestion(400, exc.rule, str(exc)) from None


def lookup_questions(body: Any, uscc_allow: Iterable[str] = ()) -> list[Question | BadQuestion]:
    """The questions of a ``POST /v1/lookups`` body, in order; a bad item is its own
    ``BadQuestion`` (the rest are still answered); a bad body raises."""
    if not isinstance(body, Mapping) or not isinstance(body.get("lookups"), list):
        raise BadQuestion(400, "malformed_body", 'the body is {"lookups": [{"kind": …, "id": …}, …]}')
    items = body["lookups"]
    if len(items) > MAX_LOOKUPS:
        raise BadQuestion(413, "too_many_identifiers", f"{len(items)} lookups, at most {MAX_LOOKUPS} a request")
    asked: list[Question | BadQuestion] = []
    for n, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise BadQuestion(400, "malformed_item", 'each lookup is {"kind": …, "id": …}')
            asked.append(question(str(item.get("kind")), item.get("id"), item.get("color"), uscc_allow))
        except BadQuestion as exc:
            asked.append(BadQuestion(exc.status, exc.rule, f"lookups[{n}]: {exc.message}"))
    return asked


def is_token(text: str) -> bool:
    """True when ``text`` is an identifier's token as the store shows it."""
    return _TOKEN.fullmatch(text) is not None


def _color(raw: str | int | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadQuestion(400, "invalid_plate_color", f"color {str(raw)[:MAX_IDENTIFIER]!r} is not a number") from None
    try:
        identifiers.check_plate_color(value)
    except InvalidIdentifier as exc:
        raise BadQuestion(400, exc.rule, str(exc)) from exc
    return value
