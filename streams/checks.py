"""The parts rules are made of: what a rule reads (``Facts``), a rule (``Rule``), what it
finds (``Finding``), and the checks the rule tables of ``streams.rules`` and
``streams.declared_rules`` are built from. A check takes a record and the facts and returns
what is wrong, or None; an absent value is the completeness rules' business, so the other
checks pass it.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from schemas import identifiers
from schemas.codes import QUALITY_DIMENSIONS
from schemas.errors import InvalidIdentifier

COMPLETENESS, CONFORMITY, RELATIONAL = QUALITY_DIMENSIONS
ERROR, WARNING = "error", "warning"

EARLIEST, LATEST = dt.date(1949, 10, 1), dt.date(2100, 12, 31)
MAX_TEXT = 1024  # characters in any one text field
IDENTIFIER_CACHE_SIZE = 1 << 17

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Facts:
    """What relational rules may consult: ``registered(entity_key)`` → its registry entry (the
    province, and the region when known) or None, and the entity's last accepted state
    (``{"stage": …}`` for a case) or None. Identifier rules read the configured USCC
    allow-list (early pilot codes valid in law that fail the checksum) and ``today`` (None: no
    clock, birth dates are not compared with it)."""

    registered: Callable[[str], str | None]
    last: Mapping[str, Any] | None
    province: str
    uscc_allow: frozenset[str] = frozenset()
    today: dt.date | None = None


Check = Callable[[Record, Facts], str | None]  # returns what is wrong, or None


@dataclass(frozen=True)
class Rule:
    code: str
    entity: str
    dimension: str
    severity: str
    field: str | None
    message: str
    check: Check
    refers_to: str | None = None  # the entity type ``field`` names, for a rule about an unregistered reference

    def reference(self, record: Record) -> str | None:
        """The key of the entity ``field`` refers to, for a rule with ``refers_to``."""
        value = record.get(self.field) if self.refers_to and self.field else None
        return reference_key(value, self.refers_to) if value else None


@dataclass(frozen=True)
class Finding:
    rule: Rule
    detail: str
    ref_key: str | None = None  # the unregistered entity a reference rule found missing

    @property
    def text(self) -> str:
        where = f"field {self.rule.field}: " if self.rule.field else ""
        return f"{where}{self.rule.code}: {self.detail}"


# ---- checks -----------------------------------------------------------------------------

def required(field: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        return "is missing" if value is None or (isinstance(value, str) and not value.strip()) else None
    return check


def present(field: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        return "is not given" if not record.get(field) else None
    return check


@functools.lru_cache(maxsize=IDENTIFIER_CACHE_SIZE)
def identifier_error(check: Callable[..., None], value: Any, *args: Any) -> str | None:
    """What ``check(value, *args)`` finds wrong; cached, so ``check`` must be pure and its
    arguments hashable (what varies by configuration is applied outside the cache)."""
    try:
        check(value, *args)
    except InvalidIdentifier as exc:
        return str(exc)
    return None


def identifier(field: str, check: Callable[[Any], None]) -> Check:
    """An identifier standard; an absent value is the completeness rules' business."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        return None if value is None or value == "" else identifier_error(check, value)
    return run


def uscc(field: str) -> Check:
    """GB 32100, or a code on the configured allow-list of pilot codes."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        if value is None or value == "" or value in facts.uscc_allow:
            return None
        return identifier_error(identifiers.check_uscc, value)
    return run


def uscc_org_type(field: str) -> Check:
    """The organisation type of a valid code is one GB 32100 lists for its authority."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        if not value or identifier_error(identifiers.check_uscc, value) is not None:
            return None
        return identifier_error(identifiers.check_uscc_org_type, value)
    return run


def id_number(field: str) -> Check:
    """GB 11643, with birth dates after the day of the stage's clock refused."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        return None if value is None or value == "" else identifier_error(identifiers.check_id_number, value,
                                                                           facts.today)
    return run


def code_table(field: str, table: frozenset[str] | tuple[str, ...]) -> Check:
    """The value (each value, of a list) is a code of ``table``."""
    def check(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        for code in value if isinstance(value, (list, tuple)) else (value,):
            if code is not None and code not in table:
                return f"{code!r} is not one of {', '.join(sorted(table))}"
        return None
    return check


def as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def plausible_date(field: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        day = as_date(record.get(field))
        if day is None or EARLIEST <= day <= LATEST:
            return None
        return f"{day.isoformat()} is outside {EARLIEST.isoformat()}..{LATEST.isoformat()}"
    return check


def text_lengths(record: Record, facts: Facts) -> str | None:
    for name, value in record.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return f"field {name} holds {len(value)} characters, more than {MAX_TEXT}"
    return None


def reference_key(value: str, entity: str) -> str:
    """The entity key a reference field holds: a whole key, or the natural key of ``entity``."""
    return value if ":" in value else f"{entity}:{value}"


def plate_province(field: str) -> Check:
    """A plate (GA 36) of the province publishing the record."""
    def check(record: Record, facts: Facts) -> str | None:
        plate = record.get(field) or ""
        province = identifiers.province_of_plate(plate)
        if province is None or province == facts.province:
            return None
        return f"plate {plate} belongs to province {province}, the record to {facts.province}"
    return check


def forward_only(field: str, order: tuple[str, ...]) -> Check:
    """The value never comes before the entity's last accepted value in ``order`` (a case's stage)."""
    def check(record: Record, facts: Facts) -> str | None:
        value, last = record.get(field), (facts.last or {}).get(field)
        if value not in order or last not in order:
            return None
        if order.index(value) < order.index(last):
            return f"{field} {value!r} comes before the entity's last {field} {last!r}"
        return None
    return check
