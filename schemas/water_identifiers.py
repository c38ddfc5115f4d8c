"""Identifier checks of the water-transport registers: IMO ship numbers, MMSI, and the
permit and project numbers whose formats STANDARDS.md cannot confirm.

Each check raises ``InvalidIdentifier`` naming its rule, as ``schemas.identifiers`` does, and
only the canonical form passes (``identifiers.canonical``; an IMO number is its 7 digits,
without the ``IMO`` prefix: ``canonical_imo``; a permit or project number keeps its dashes and
brackets: ``plain``). Which rules only warn is said here once,
``WARNING_RULES``, the way the road registers' warnings are rules of their own
(``uscc_unknown_org_type``) that the rule table gives a warning's severity:

- ``invalid_imo`` (error): not 7 digits, or a wrong check digit (python-stdnum's ``imo``).
- ``invalid_mmsi`` (error): not 9 digits.
- ``mmsi_foreign_mid`` (warning): a ship station whose MID (first 3 digits) is not one of
  China's (412, 413, 414) — a foreign ship in a Chinese register is odd, not impossible.
- ``water_permit_format``, ``port_permit_format``, ``project_code_format`` (warnings): the
  shapes these numbers commonly take, which no standard available here confirms; a number
  of another shape passes with a warning (STANDARDS.md: *unverified* means warn, don't reject).

``CHECKS`` maps every rule name to its check, for a register declaration to name.
"""

from __future__ import annotations

import re
import unicodedata
from types import MappingProxyType
from typing import Any, Callable, Mapping

from stdnum import imo
from stdnum.exceptions import ValidationError

from .errors import InvalidIdentifier
from .identifiers import PROVINCE_OF_PLATE_CHAR, PROVINCES, canonical

__all__ = [
    "CHECKS", "CHINA_MIDS", "WARNING_RULES", "canonical_imo", "check_imo", "check_mmsi", "check_mmsi_china",
    "check_port_permit_format", "check_project_code_format", "check_water_permit_format", "plain",
]

# Maritime identification digits (ITU-R M.585, MID table) allocated to China's ship stations.
CHINA_MIDS = ("412", "413", "414")
_DIGITS = re.compile(r"[0-9]+")
# 港口经营许可证: "(粤广)港经证(0012)号" — the province and city abbreviations, a serial (unconfirmed).
_PORT_PERMIT = re.compile(r"\((?P<p>\w)\w{0,3}\)港经证\([0-9]{1,8}\)号")
# 国内水路运输经营许可证: an issuing authority's abbreviation (a province's character or 交 for the
# ministry) then letters and digits, e.g. "交XS2017001" or "苏XK0123" (unconfirmed).
_WATER_PERMIT = re.compile(r"(?P<p>\w)[A-Z]{0,4}[0-9]{4,12}")
# 全国投资项目在线审批监管平台 project code: year-region-industry-type-serial, e.g.
# "2019-440300-55-01-012345" (unconfirmed).
_PROJECT_CODE = re.compile(r"(?P<year>[0-9]{4})-(?P<region>[0-9]{6})-[0-9]{2}-[0-9]{2}-[0-9]{6}")


def canonical_imo(raw: str) -> str:
    """The canonical form of an IMO number: ``identifiers.canonical`` without the ``IMO`` prefix."""
    value = canonical(raw)
    return value[3:] if value.startswith("IMO") else value


def plain(value: str) -> str:
    """The written form of a permit or project number: full-width characters as ASCII (NFKC),
    no spaces; its dashes and brackets are part of it."""
    return "".join(unicodedata.normalize("NFKC", value).split())


def _text(rule: str, value: Any, form: Callable[[str], str] = canonical) -> str:
    """``value`` when it is text in its ``form``; else raises under ``rule``."""
    if not isinstance(value, str):
        raise InvalidIdentifier(rule, str(value), "is not text")
    written = form(value)
    if written != value:
        raise InvalidIdentifier(rule, value, f"is not in its written form (ASCII letters and digits, no spaces or "
                                             f"full-width characters): written so it is {written!r}")
    return value


def check_imo(value: str) -> None:
    """IMO ship identification number: 7 digits, the last a check digit (python-stdnum's ``imo``)."""
    _text("invalid_imo", value, canonical_imo)
    if not (value.isascii() and _DIGITS.fullmatch(value)) or len(value) != 7:
        raise InvalidIdentifier("invalid_imo", value, "is not 7 digits (six and a check digit)")
    try:
        imo.validate(value)
    except ValidationError as exc:
        raise InvalidIdentifier("invalid_imo", value, f"fails the IMO check digit (expected "
                                                      f"{imo.calc_check_digit(value[:6])})") from exc


def check_mmsi(value: str) -> None:
    """Maritime Mobile Service Identity: 9 digits."""
    _text("invalid_mmsi", value)
    if not (value.isascii() and _DIGITS.fullmatch(value)) or len(value) != 9:
        raise InvalidIdentifier("invalid_mmsi", value, f"is not 9 digits ({len(value)} characters)")


def check_mmsi_china(value: str) -> None:
    """A valid MMSI's MID (its first 3 digits) is one of China's (``CHINA_MIDS``): a warning."""
    if isinstance(value, str) and value[:3] not in CHINA_MIDS:
        raise InvalidIdentifier("mmsi_foreign_mid", value, f"has MID {value[:3]!r}, not a Chinese ship station's "
                                                           f"({', '.join(CHINA_MIDS)})")


def _known_authority(char: str) -> bool:
    return char == "交" or char in PROVINCE_OF_PLATE_CHAR


def check_water_permit_format(value: str) -> None:
    """A 国内水路运输经营许可证 number of the common shape (unconfirmed: a warning)."""
    _text("water_permit_format", value, plain)
    match = _WATER_PERMIT.fullmatch(value)
    if match is None or not _known_authority(match["p"]):
        raise InvalidIdentifier("water_permit_format", value,
                                "does not look like a water-transport permit number (an authority's abbreviation, "
                                "letters and 4-12 digits, e.g. 交XS2017001); the format is unconfirmed, so this "
                                "is a warning")


def check_port_permit_format(value: str) -> None:
    """A 港口经营许可证 number of the common shape ``(粤广)港经证(0012)号`` (unconfirmed: a warning)."""
    _text("port_permit_format", value, plain)
    match = _PORT_PERMIT.fullmatch(value)
    if match is None or match["p"] not in PROVINCE_OF_PLATE_CHAR:
        raise InvalidIdentifier("port_permit_format", value,
                                "does not look like a port-operation permit number (e.g. (粤广)港经证(0012)号); "
                                "the format is unconfirmed, so this is a warning")


def check_project_code_format(value: str) -> None:
    """A national investment-project code ``YYYY-RRRRRR-II-TT-NNNNNN`` (unconfirmed: a warning)."""
    _text("project_code_format", value, plain)
    match = _PROJECT_CODE.fullmatch(value)
    if match is None or match["region"][:2] not in PROVINCES or not 1990 <= int(match["year"]) <= 2100:
        raise InvalidIdentifier("project_code_format", value,
                                "does not look like a national investment-project code (year-region-industry-"
                                "type-serial, e.g. 2019-440300-55-01-012345); the format is unconfirmed, so this "
                                "is a warning")


CHECKS: Mapping[str, Callable[[str], None]] = MappingProxyType({
    "invalid_imo": check_imo,
    "invalid_mmsi": check_mmsi,
    "mmsi_foreign_mid": check_mmsi_china,
    "water_permit_format": check_water_permit_format,
    "port_permit_format": check_port_permit_format,
    "project_code_format": check_project_code_format,
})
WARNING_RULES = frozenset({"mmsi_foreign_mid", "water_permit_format", "port_permit_format", "project_code_format"})
