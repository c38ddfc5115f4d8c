"""Makers of realistic identifiers for synthetic registers, all drawn from one ``Random``.

Valid ones follow STANDARDS.md: USCC with its GB 32100 check character (and a GB 11714
organisation code inside), GB 11643 ID numbers with a county code valid in the birth
year, GA 36 plates, VINs with their ISO 3779 check digit. ``broken_*`` make values that
break exactly one rule, for injected invalid records.
"""

from __future__ import annotations

import datetime
import random

from stdnum.cn import ric, uscc

from .regions import ProvinceRegions

PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, O
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_DIGITS = "0123456789"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
_VIN_VALUES = dict(zip("ABCDEFGH", range(1, 9))) | dict(zip("JKLMN", range(1, 6))) | {"P": 7, "R": 9} \
    | dict(zip("STUVWXYZ", range(2, 10))) | {d: int(d) for d in _DIGITS}
_WMI = ("LGA", "LZY", "LDC", "LFV", "LSV", "LBV", "LHG", "LJD", "LZZ", "LGB")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰文斌辉鹏飞宇浩然婷雪梅海燕晓东春林凤琴德胜永福成龙俊峰云波亮宁欣怡思远子涵家豪"
_TRADE_WORDS = ("顺达", "通达", "安运", "畅行", "宏远", "鸿运", "永安", "恒通", "捷运", "利民", "四通", "平安", "远航", "长运", "兴旺", "联运", "鑫源", "金桥")
_SUFFIXES = ("运输有限公司", "汽车运输有限公司", "客运有限公司", "物流有限公司", "危险货物运输有限公司", "出租汽车有限公司", "旅游客运有限公司")
_PHONE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "177", "180", "181", "186", "187", "188", "189", "199")
_BIRTH_FIRST = datetime.date(1960, 1, 1).toordinal()
_BIRTH_LAST = datetime.date(2000, 12, 31).toordinal()
_UUID_VERSION_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` for 128 random bits, without building a UUID object."""
    digits = f"{(bits & _UUID_VERSION_CLEAR) | _UUID_VERSION_4:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def pick(rng: random.Random, seq):
    return seq[int(rng.random() * len(seq))]


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    size = len(alphabet)
    return "".join(alphabet[int(rng.random() * size)] for _ in range(n))


def organisation_code(rng: random.Random) -> str:
    """Nine characters of a GB 11714 organisation code (body + check character)."""
    body = ("MA" + _chars(rng, "0123456789ABCDEFGHJKLMNPQRTUWXY", 6)) if rng.random() < 0.5 else _chars(rng, _DIGITS, 8)
    return organisation_code_of(body)


def organisation_code_of(body: str) -> str:
    """The eight-character body of a GB 11714 organisation code with its check character."""
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, _ORG_WEIGHTS))
    check = 11 - total % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def make_uscc(rng: random.Random, region_code: str) -> str:
    """A GB 32100 code for an enterprise (登记管理部门 9, 类别 1) registered in ``region_code``."""
    return uscc_of(region_code, organisation_code(rng))


def uscc_of(region_code: str, organisation: str) -> str:
    """The GB 32100 code of an enterprise registered in ``region_code`` with organisation code ``organisation``."""
    body = "91" + region_code + organisation
    return body + uscc.calc_check_digit(body)


def broken_uscc(valid: str) -> str:
    """``valid`` with a wrong check character."""
    wrong = _USCC_ALPHABET[(_USCC_ALPHABET.index(valid[-1]) + 1) % len(_USCC_ALPHABET)]
    return valid[:-1] + wrong


def birth_date(rng: random.Random, regions: ProvinceRegions) -> tuple[datetime.date, str]:
    """A birth date in 1960–2000 and a county code of the province valid in that year."""
    while True:
        born = datetime.date.fromordinal(_BIRTH_FIRST + int(rng.random() * (_BIRTH_LAST - _BIRTH_FIRST + 1)))
        counties = regions.counties_in_year(born.year)
        if counties:
            return born, pick(rng, counties)


def make_id_number(rng: random.Random, regions: ProvinceRegions) -> str:
    born, county = birth_date(rng, regions)
    body = f"{county}{born:%Y%m%d}{1 + int(rng.random() * 998):03d}"
    return body + ric.calc_check_digit(body + "0")


def broken_id_number(valid: str) -> str:
    """``valid`` with a wrong MOD 11-2 check character."""
    order = "0123456789X"
    return valid[:-1] + order[(order.index(valid[-1]) + 1) % len(order)]


def make_name(rng: random.Random) -> str:
    given = pick(rng, _GIVEN) + (pick(rng, _GIVEN) if rng.random() < 0.7 else "")
    return pick(rng, _SURNAMES) + given


def make_operator_name(rng: random.Random, place: str) -> str:
    return place + pick(rng, _TRADE_WORDS) + pick(rng, _SUFFIXES)


def make_phone(rng: random.Random) -> str:
    return pick(rng, _PHONE_PREFIXES) + _chars(rng, _DIGITS, 8)


def make_plate(rng: random.Random, plate_char: str, new_energy: str | None = None) -> str:
    """GA 36 plate: ordinary 7 characters, or new-energy 8 (``"large"`` / ``"small"``)."""
    office = pick(rng, PLATE_LETTERS)
    if new_energy == "large":
        return plate_char + office + _chars(rng, _DIGITS, 5) + pick(rng, "DF")
    if new_energy == "small":
        return plate_char + office + pick(rng, "DF") + pick(rng, PLATE_LETTERS + _DIGITS) + _chars(rng, _DIGITS, 4)
    letters = 1 if rng.random() < 0.4 else 0
    tail = [pick(rng, PLATE_LETTERS) for _ in range(letters)] + [pick(rng, _DIGITS) for _ in range(5 - letters)]
    rng.shuffle(tail)
    return plate_char + office + "".join(tail)


def broken_plate(rng: random.Random, valid: str) -> str:
    """A malformed plate: a forbidden letter O or I, a lower-case office letter, or too short."""
    choice = int(rng.random() * 4)
    if choice == 0:
        return valid[:2] + "O" + valid[3:]
    if choice == 1:
        return valid[:-1] + "I"
    if choice == 2:
        return valid[0] + valid[1].lower() + valid[2:]
    return valid[:5]


def broken_region_code(rng: random.Random, valid: str) -> str:
    """Not a GB/T 2260 code: five digits, or an unknown province prefix."""
    return valid[:5] if rng.random() < 0.5 else "99" + valid[2:]


def make_vin(rng: random.Random) -> str:
    """A 17-character VIN with its ISO 3779 / GB 16735 check digit in position 9."""
    chars = list(pick(rng, _WMI) + _chars(rng, _VIN_CHARS, 5) + "0" + _chars(rng, _VIN_CHARS, 2) + _chars(rng, _DIGITS, 6))
    total = sum(_VIN_VALUES[c] * w for c, w in zip(chars, _VIN_WEIGHTS))
    remainder = total % 11
    chars[8] = "X" if remainder == 10 else str(remainder)
    return "".join(chars)
