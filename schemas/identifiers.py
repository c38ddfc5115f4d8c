"""Identifier standards (STANDARDS.md): USCC (GB 32100), resident ID (GB 11643),
licence plates (GA 36), GB/T 2260 region codes, and the province table.

Checksums come from python-stdnum; each check raises ``InvalidIdentifier`` naming the
rule. ``province_of_*`` helpers give the two-digit province code an identifier points to.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError

from .errors import InvalidIdentifier

# GB/T 2260 province code -> (name, plate character)
PROVINCES: dict[str, tuple[str, str]] = {
    "11": ("北京", "京"), "12": ("天津", "津"), "13": ("河北", "冀"), "14": ("山西", "晋"),
    "15": ("内蒙古", "蒙"), "21": ("辽宁", "辽"), "22": ("吉林", "吉"), "23": ("黑龙江", "黑"),
    "31": ("上海", "沪"), "32": ("江苏", "苏"), "33": ("浙江", "浙"), "34": ("安徽", "皖"),
    "35": ("福建", "闽"), "36": ("江西", "赣"), "37": ("山东", "鲁"), "41": ("河南", "豫"),
    "42": ("湖北", "鄂"), "43": ("湖南", "湘"), "44": ("广东", "粤"), "45": ("广西", "桂"),
    "46": ("海南", "琼"), "50": ("重庆", "渝"), "51": ("四川", "川"), "52": ("贵州", "贵"),
    "53": ("云南", "云"), "54": ("西藏", "藏"), "61": ("陕西", "陕"), "62": ("甘肃", "甘"),
    "63": ("青海", "青"), "64": ("宁夏", "宁"), "65": ("新疆", "新"),
}
PROVINCE_OF_PLATE_CHAR = {plate: code for code, (_name, plate) in PROVINCES.items()}

PLATE_COLORS = {1: "蓝", 2: "黄", 3: "黑", 4: "白", 5: "绿", 9: "其他", 91: "农黄", 92: "农绿", 93: "黄绿", 94: "渐变绿"}

_LETTER = "A-HJ-NP-Z"  # Latin capitals without I and O
_ORDINARY = re.compile(rf"^(?P<p>\w)[{_LETTER}][{_LETTER}0-9]{{4}}[{_LETTER}0-9挂学]$")
_NEW_ENERGY = re.compile(
    rf"^(?P<p>\w)[{_LETTER}](?:[DF][{_LETTER}0-9][0-9]{{4}}|[0-9]{{5}}[DF])$"
)
_REGION = re.compile(r"^[0-9]{6}$")


def check_uscc(value: str, allow: Iterable[str] = ()) -> None:
    """GB 32100 unified social credit code; ``allow`` lists pilot codes accepted as-is."""
    if value in allow:
        return
    try:
        uscc.validate(value)
    except ValidationError as exc:
        raise InvalidIdentifier("invalid_uscc", value, f"is not a GB 32100 credit code ({exc})") from exc
    if value != value.strip().upper():
        raise InvalidIdentifier("invalid_uscc", value, "is not in canonical form (upper case, no spaces)")
    if value[2:4] not in PROVINCES:
        raise InvalidIdentifier("invalid_uscc", value, f"has unknown province {value[2:4]!r} in its region code")


def check_id_number(value: str) -> None:
    """GB 11643 resident ID number: MOD 11-2 check, real birth date, known region.

    The same checks as ``stdnum.cn.ric.validate``, with the region database entry of
    each region code looked up once.
    """
    if value[:2] not in PROVINCES:
        raise InvalidIdentifier("invalid_id_number", value, f"has unknown province prefix {value[:2]!r}")
    if value != value.strip().upper():
        raise InvalidIdentifier("invalid_id_number", value, "is not in canonical form")
    try:
        if len(value) != 18:
            raise InvalidLength()
        if not value[:-1].isascii() or not value[:-1].isdigit():
            raise InvalidFormat()
        if value[-1] != ric.calc_check_digit(value):
            raise InvalidChecksum()
        ric.get_birth_date(value)
    except ValidationError as exc:
        raise InvalidIdentifier("invalid_id_number", value, f"is not a GB 11643 ID number ({exc})") from exc
    place_error = _birth_place_error(value[:6], int(value[6:10]))
    if place_error is not None:
        raise InvalidIdentifier("invalid_id_number", value, f"is not a GB 11643 ID number ({place_error})")


def _birth_place_error(region: str, year: int) -> str | None:
    """Why ``region`` was not a county in use in ``year`` (the rule of ``ric.get_birth_place``), or None."""
    county = _county_entry(region)
    if not county:
        return f"{region} is not a county-level region code"
    for period in county.split(","):
        if not period.startswith("["):
            return None
        span, _name = period[1:].split("]", 1)
        start, end = span.split("-")
        if (start and year < int(start)) or (end and year > int(end)):
            continue
        return None
    return f"region {region} was not in use in {year}"


@lru_cache(maxsize=8192)
def _county_entry(region: str) -> str | None:
    """The county entry python-stdnum's region database holds for a 6-digit code."""
    info = {k: v for _part, props in numdb.get("cn/loc").info(region) for k, v in props.items()}
    return info.get("county")


def check_plate(value: str) -> str:
    """GA 36 plate (ordinary or new-energy); returns the province code it belongs to."""
    match = _ORDINARY.match(value) or _NEW_ENERGY.match(value)
    if not match:
        raise InvalidIdentifier("invalid_plate", value, "is not a GA 36 plate number")
    province = PROVINCE_OF_PLATE_CHAR.get(match["p"])
    if province is None:
        raise InvalidIdentifier("invalid_plate", value, f"starts with unknown province character {match['p']!r}")
    return province


def check_plate_color(value: int) -> None:
    if value not in PLATE_COLORS:
        raise InvalidIdentifier("invalid_plate_color", str(value), "is not a JT/T 697.7 plate colour code")


def check_region_code(value: str) -> None:
    """Six-digit GB/T 2260 code whose first two digits are a known province."""
    if not _REGION.match(value or ""):
        raise InvalidIdentifier("invalid_region_code", value, "is not a 6-digit GB/T 2260 code")
    if value[:2] not in PROVINCES:
        raise InvalidIdentifier("invalid_region_code", value, f"has unknown province {value[:2]!r}")


def province_of_uscc(value: str) -> str:
    return value[2:4]


def province_of_id_number(value: str) -> str:
    return value[:2]


def province_of_plate(value: str) -> str | None:
    return PROVINCE_OF_PLATE_CHAR.get(value[:1]) if value else None
