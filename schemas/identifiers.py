"""Identifier standards (STANDARDS.md): USCC (GB 32100), resident ID (GB 11643),
licence plates (GA 36), GB/T 2260 region codes, and the province table.

Each check raises ``InvalidIdentifier`` naming the rule; the checksums are python-stdnum's.
Only the canonical form passes (``canonical``: ASCII capitals and digits, no spaces, dashes
or full-width characters): python-stdnum's ``validate`` would quietly compact a value with
spaces or full-width digits, and a value kept in its raw form would be stored and routed by
the wrong characters. Adapters write identifiers in canonical form (``canonical``); the hub
refuses any other. ``province_of_*`` helpers give the two-digit province code a *validated*
identifier points to.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from functools import lru_cache
from typing import Iterable

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

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
# The Xinjiang Production and Construction Corps' own registration region (兵团, ``66xxxx``): the
# prefix its registration authorities give the unified social credit codes they issue (characters
# 3-8, e.g. ``9166…``), and the code it takes part under (``schemas.parties.CORPS_CODE``). No
# GB/T 2260 province-level code is 66; STANDARDS.md leaves the Corps' code unverified, so it is
# said here once. ``REGISTRATION_REGIONS``: the first two digits a registration region may have.
CORPS_REGION = "66"
REGISTRATION_REGIONS = frozenset(PROVINCES) | {CORPS_REGION}

PLATE_COLORS = {1: "蓝", 2: "黄", 3: "黑", 4: "白", 5: "绿", 9: "其他", 91: "农黄", 92: "农绿", 93: "黄绿", 94: "渐变绿"}

# GB 32100-2015 table 1 (with its amendments adding A and N): registration authority
# (position 1) → (authority, {organisation type (position 2): what it registers}).
REGISTRATION_AUTHORITIES: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"}),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": ("司法行政", {"1": "律师执业机构", "2": "公证处", "3": "基层法律服务所", "4": "司法鉴定机构",
                   "5": "仲裁委员会", "9": "其他"}),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": ("旅游", {"1": "外国旅游部门常驻代表机构", "2": "港澳台地区旅游部门常驻内地（大陆）代表机构", "9": "其他"}),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": ("农业", {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"}),
    "Y": ("其他", {"1": "其他"}),
}
USCC_ALPHABET = frozenset("0123456789ABCDEFGHJKLMNPQRTUWXY")  # GB 32100: no I, O, S, V, Z
# Record fields holding an identifier that has one canonical form.
CANONICAL_FIELDS = frozenset({"uscc", "operator_uscc", "employer_uscc", "involved_operator_uscc", "id_number",
                              "legal_rep_id_number", "involved_id_number", "plate", "involved_plate", "vin"})

_LETTER = "A-HJ-NP-Z"  # Latin capitals without I and O
_ORDINARY = re.compile(rf"(?P<p>\w)[{_LETTER}][{_LETTER}0-9]{{4}}[{_LETTER}0-9挂学]")
_NEW_ENERGY = re.compile(rf"(?P<p>\w)[{_LETTER}](?:[DF][{_LETTER}0-9][0-9]{{4}}|[0-9]{{5}}[DF])")
_REGION = re.compile(r"[0-9]{6}")
CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8))
_SEPARATORS = str.maketrans("", "", "-‐‑‒–—―−·・•")  # dashes and the middle dots of printed plates


def canonical(value: str) -> str:
    """The canonical form of an identifier: full-width characters as ASCII (NFKC), spaces
    (also U+3000), dashes and middle dots removed, Latin letters in capitals."""
    return "".join(unicodedata.normalize("NFKC", value).split()).translate(_SEPARATORS).upper()


def canonicalise(raw: str) -> tuple[str, bool]:
    """(the canonical form of ``raw``, whether it differs from ``raw`` by more than the
    ASCII blanks that pad a spreadsheet cell or a CHAR column) — what an adapter reports."""
    value = canonical(raw)
    return value, value != raw.strip(" \t\r\n")


def china_today() -> datetime.date:
    """Today in China Standard Time: the day a birth date must not be after."""
    return datetime.datetime.now(CHINA_TZ).date()


def _check_canonical(rule: str, value: str) -> None:
    if not isinstance(value, str):
        raise InvalidIdentifier(rule, str(value), "is not text")
    written = canonical(value)
    if written != value:
        raise InvalidIdentifier(rule, value, f"is not in canonical form (ASCII capitals and digits, no spaces, "
                                             f"dashes or full-width characters); written canonically it is {written!r}")


def check_uscc(value: str, allow: Iterable[str] = ()) -> None:
    """GB 32100 unified social credit code; ``allow`` lists pilot codes accepted as-is.

    Position 1 is a registration authority of GB 32100's table (``1``–``9``, ``A``, ``N``,
    ``Y``), positions 3–8 a region code of a known province or the Corps' ``66xxxx``
    (``REGISTRATION_REGIONS``), and the check character is python-stdnum's. The organisation type (position 2) is ``check_uscc_org_type``'s.
    """
    if value in allow:
        return
    _check_canonical("invalid_uscc", value)
    if len(value) != 18:
        raise InvalidIdentifier("invalid_uscc", value, f"has {len(value)} characters, a GB 32100 code has 18")
    wrong = sorted(set(value) - USCC_ALPHABET)
    if wrong:
        raise InvalidIdentifier("invalid_uscc", value, f"holds {''.join(wrong)!r}, outside the GB 32100 alphabet "
                                                       f"(digits and capitals but I, O, S, V, Z)")
    if value[0] not in REGISTRATION_AUTHORITIES:
        raise InvalidIdentifier("invalid_uscc", value, f"starts with {value[0]!r}, which is not a GB 32100 registration "
                                                       f"authority ({', '.join(REGISTRATION_AUTHORITIES)})")
    if not value[2:8].isdigit():
        raise InvalidIdentifier("invalid_uscc", value, f"has {value[2:8]!r} in positions 3-8, not a GB/T 2260 code")
    if value[-1] != uscc.calc_check_digit(value):
        raise InvalidIdentifier("invalid_uscc", value, "fails the GB 32100 check character")
    if value[2:4] not in REGISTRATION_REGIONS:
        raise InvalidIdentifier("invalid_uscc", value, f"has unknown province {value[2:4]!r} in its region code")


def check_uscc_org_type(value: str) -> None:
    """The organisation type (position 2) is one GB 32100 lists for the authority in position 1."""
    authority = REGISTRATION_AUTHORITIES.get(value[:1])
    if authority is None or len(value) < 2 or value[1] in authority[1]:
        return
    name, types = authority
    raise InvalidIdentifier("uscc_unknown_org_type", value,
                            f"has organisation type {value[1]!r}, which GB 32100 does not list for registration "
                            f"authority {value[0]} ({name}): one of {', '.join(types)}")


def check_id_number(value: str, today: datetime.date | None = None) -> None:
    """GB 11643 resident ID number: MOD 11-2 check, real birth date, known region.

    A birth date after ``today`` is refused (callers pass the day of their clock; None
    skips that check). The address code is the county where the number was assigned,
    which may be years after birth: it must be a GB/T 2260 county code still in use in
    or after the birth year.
    """
    _check_canonical("invalid_id_number", value)
    if len(value) != 18:
        raise InvalidIdentifier("invalid_id_number", value, f"has {len(value)} characters, a GB 11643 number has 18")
    if not (value[:17].isascii() and value[:17].isdigit()) or value[17] not in "0123456789X":
        raise InvalidIdentifier("invalid_id_number", value, "is not 17 digits and a check character (digit or X)")
    if value[:2] not in PROVINCES:
        raise InvalidIdentifier("invalid_id_number", value, f"has unknown province prefix {value[:2]!r}")
    if value[-1] != ric.calc_check_digit(value):
        raise InvalidIdentifier("invalid_id_number", value, "fails the GB 11643 check character (ISO 7064 MOD 11-2)")
    try:
        born = ric.get_birth_date(value)
    except ValidationError as exc:
        raise InvalidIdentifier("invalid_id_number", value, f"has birth date {value[6:14]}, not a real date") from exc
    if today is not None and born > today:
        raise InvalidIdentifier("invalid_id_number", value,
                                f"has birth date {born.isoformat()}, after today {today.isoformat()}")
    place_error = _birth_place_error(value[:6], born.year)
    if place_error is not None:
        raise InvalidIdentifier("invalid_id_number", value, f"is not a GB 11643 ID number ({place_error})")


def _birth_place_error(region: str, year: int) -> str | None:
    """Why ``region`` cannot be where a number of someone born in ``year`` was assigned, or None.

    A code that came into use after ``year`` is lawful (the number was assigned later); one
    whose every period of use ended before ``year`` is not.
    """
    county = _county_entry(region)
    if not county:
        return f"{region} is not a county-level region code"
    last = 0
    for period in county.split(","):
        if not period.startswith("["):
            return None
        span, _name = period[1:].split("]", 1)
        _start, end = span.split("-")
        if not end or int(end) >= year:
            return None
        last = max(last, int(end))
    return f"region {region} went out of use in {last}, before the birth year {year}"


@lru_cache(maxsize=8192)
def _county_entry(region: str) -> str | None:
    """The county entry python-stdnum's region database holds for a 6-digit code."""
    info = {k: v for _part, props in numdb.get("cn/loc").info(region) for k, v in props.items()}
    return info.get("county")


def check_plate(value: str) -> str:
    """GA 36 plate (ordinary or new-energy); returns the province code it belongs to."""
    _check_canonical("invalid_plate", value)
    match = _ORDINARY.fullmatch(value) or _NEW_ENERGY.fullmatch(value)
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
    """Six-digit GB/T 2260 code whose first two digits are a known province (or the Corps' 66)."""
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise InvalidIdentifier("invalid_region_code", value, "is not a 6-digit GB/T 2260 code")
    if value[:2] not in REGISTRATION_REGIONS:
        raise InvalidIdentifier("invalid_region_code", value, f"has unknown province {value[:2]!r}")


def party_of_uscc(value: str) -> str:
    """The party whose authority registered a valid USCC: the first two digits of its
    registration region (characters 3-8) — a province's GB/T 2260 code, or the Corps' ``66``.

    A code the Corps' own authorities issued (``66xxxx``, e.g. ``9166…``) names the Corps, party
    ``66``, which takes part in its own right: it is neither refused nor sent to Xinjiang (65),
    whose area the Corps lies in. A code a Xinjiang authority issued (``65xxxx``) names Xinjiang,
    also for the cities the Corps administers (GB/T 2260 ``6590xx``): the registration region
    says which authority registered the entity, and the registering party is the one asked.
    Whether the party takes part is the router's to check (a code may name one that does not).
    """
    return value[2:4]


def province_of_id_number(value: str) -> str:
    return value[:2]


def province_of_plate(value: str) -> str | None:
    return PROVINCE_OF_PLATE_CHAR.get(value[:1]) if value else None
