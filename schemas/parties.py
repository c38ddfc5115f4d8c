"""The parties of the exchange: who may publish, under which code, which registers.

A party is a participant with its own topics (``prov.<P>.*``, ``xprov.<P>.*``), keys and
principal: the 31 provinces (two-digit GB/T 2260 codes), the Xinjiang Production and
Construction Corps (新疆生产建设兵团, which takes part in its own right) and the navigation
administrations of the Ministry (长江航务管理局, 珠江航务管理局), each for its own jurisdiction.

The set of parties is configuration: ``DEFAULT_PARTIES`` unless ``ROADX_PARTIES_FILE`` names a
JSON or TOML file that replaces it (``load_parties``); which of them take part is the selection
``ROADX_PARTIES`` (``ROADX_PROVINCES``, its first name, is an alias), by default every party of
kind ``province`` — so an exchange configured as before has the same 31 parties as before.

Codes. A province's code is its GB/T 2260 code. The Corps has none there (it is not an
administrative division): it takes ``66``, the code national statistical and social-insurance
systems give it (e.g. region ``660000`` for 兵团 in the insurance schemes' area codes); ``66`` is
no GB/T 2260 province-level code (Xinjiang is 65; 71, 81 and 82 are Taiwan, Hong Kong and
Macau), so it cannot be read as a province. The navigation administrations take letter codes,
``CJ`` (长江) and ``ZJ`` (珠江), which no region code can be. Every code is 2 to 8 capitals or
digits (``PARTY_CODE``): it sits between the dots of a topic name and in a principal's name.

A parties file is ``{"parties": [entry, ...]}`` (JSON) or ``[[parties]]`` tables (TOML), each
entry with ``code``, ``name`` (Chinese), ``name_en``, ``kind``, ``jurisdiction`` and
``registers``, and optionally ``regions`` (GB/T 2260 prefixes its jurisdiction lies in). Each is
checked; an error names the file, the entry and the field.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import InvalidIdentifier, SettingsError
from .identifiers import CORPS_REGION, PROVINCES
from .registers import declarations
from .topics import PARTY_CODE

PROVINCE, NAVIGATION_ADMINISTRATION, CORPS = "province", "navigation_administration", "corps"
KINDS = (PROVINCE, NAVIGATION_ADMINISTRATION, CORPS)

# The exchange's own registers by family, as the built-in party set allows them. A parties file may
# allow any declared register (``schemas.registers``: a register declared in the configured
# directory too).
ROAD_REGISTERS = ("operator", "vehicle", "practitioner", "licence", "case")
WATER_REGISTERS = ("ship", "shipping_enterprise", "port_enterprise", "waterway_project")


def known_registers() -> tuple[str, ...]:
    """Every declared register's entity type: what a party may be allowed to publish."""
    return tuple(register.entity_type for register in declarations())

# GB/T 2260 province-level codes that are no party of this exchange: no other party may take them.
OTHER_REGION_CODES = {"71": "台湾", "81": "香港", "82": "澳门"}

PROVINCE_NAMES_EN = {
    "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi", "15": "Inner Mongolia", "21": "Liaoning",
    "22": "Jilin", "23": "Heilongjiang", "31": "Shanghai", "32": "Jiangsu", "33": "Zhejiang", "34": "Anhui",
    "35": "Fujian", "36": "Jiangxi", "37": "Shandong", "41": "Henan", "42": "Hubei", "43": "Hunan",
    "44": "Guangdong", "45": "Guangxi", "46": "Hainan", "50": "Chongqing", "51": "Sichuan", "52": "Guizhou",
    "53": "Yunnan", "54": "Tibet", "61": "Shaanxi", "62": "Gansu", "63": "Qinghai", "64": "Ningxia",
    "65": "Xinjiang",
}
CORPS_CODE = CORPS_REGION  # also the prefix of the registration regions of the codes its authorities issue
CHANGJIANG, ZHUJIANG = "CJ", "ZJ"

_FIELDS = ("code", "name", "name_en", "kind", "jurisdiction", "registers", "regions")
_REGION = re.compile(r"[0-9]{2}(?:[0-9]{2}){0,2}")


@dataclass(frozen=True)
class Party:
    """One participant: its code, names, kind, what it covers and the registers it may publish."""

    code: str
    name: str  # Chinese
    name_en: str
    kind: str  # province | navigation_administration | corps
    jurisdiction: str  # what it covers, in words
    registers: tuple[str, ...]
    regions: tuple[str, ...] = ()  # GB/T 2260 prefixes (2, 4 or 6 digits) its jurisdiction lies in

    def may_publish(self, register: str) -> bool:
        return register in self.registers

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The region prefixes its jurisdiction lies in: its own code when it is digits (a
        province's GB/T 2260 code, the Corps' ``66``), then its declared ``regions``."""
        return tuple(dict.fromkeys(((self.code,) if self.code.isdigit() else ()) + self.regions))

    def covers(self, region: str) -> bool:
        """Whether ``region`` (a region code or a prefix of one) lies in the party's jurisdiction."""
        return isinstance(region, str) and region.isdigit() and any(region.startswith(p) for p in self.prefixes)

    def whole(self) -> str:
        """The region that stands for the party as a whole where a 6-digit one is asked for:
        ``<code>0000`` (``440000`` Guangdong, ``660000`` the Corps, ``CJ0000`` the Changjiang
        administration), what a routing names when nothing below the party is known."""
        return f"{self.code}0000"

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "name_en": self.name_en, "kind": self.kind,
                "jurisdiction": self.jurisdiction, "registers": list(self.registers), "regions": list(self.regions)}


class Parties(Mapping[str, Party]):
    """The configured parties by code, in their order."""

    def __init__(self, parties: Iterable[Party], source: str = "the built-in party set") -> None:
        self._by_code: dict[str, Party] = {}
        self.source = source
        for party in parties:
            if party.code in self._by_code:
                raise SettingsError(f"{source}: party code {party.code!r} appears twice")
            self._by_code[party.code] = party

    def __getitem__(self, code: str) -> Party:
        return self._by_code[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_code)

    def __len__(self) -> int:
        return len(self._by_code)

    def of_kind(self, kind: str) -> tuple[str, ...]:
        return tuple(code for code, party in self._by_code.items() if party.kind == kind)

    def refusal(self, code: str, register: str) -> str | None:
        """Why ``code`` may not publish ``register`` (a sentence), or None when it may."""
        party = self._by_code.get(code)
        if party is None:
            return f"{code!r} is not a party of this exchange ({self.source})"
        if party.may_publish(register):
            return None
        return (f"party {code} ({party.name}, {party.kind}) may not publish the {register} register; "
                f"it publishes {', '.join(party.registers)}")

    def select(self, codes: Iterable[str], setting: str = "ROADX_PARTIES") -> tuple[str, ...]:
        """``codes`` checked against the set (``all``: every party), without repeats, in the order given."""
        chosen = tuple(dict.fromkeys(codes))
        if chosen == ("all",):
            return tuple(self._by_code)
        unknown = [c for c in chosen if c not in self._by_code]
        if unknown:
            raise SettingsError(f"{setting}: unknown party code(s) {', '.join(unknown)}; the parties of "
                                f"{self.source} are {', '.join(self._by_code)}")
        return chosen


def _province(code: str, names: tuple[str, str]) -> Party:
    return Party(code, names[0], PROVINCE_NAMES_EN[code], PROVINCE,
                 f"{names[0]}: its administrative area (GB/T 2260 {code}xxxx) and the waters it administers",
                 ROAD_REGISTERS + WATER_REGISTERS, (code,))


DEFAULT_PARTIES: tuple[Party, ...] = (
    *(_province(code, names) for code, names in PROVINCES.items()),
    Party(CORPS_CODE, "新疆生产建设兵团", "Xinjiang Production and Construction Corps", CORPS,
          "the Corps' divisions, regiments and the cities it administers (石河子、阿拉尔、图木舒克、五家渠 … "
          "GB/T 2260 6590xx)", ROAD_REGISTERS, ("6590",)),
    Party(CHANGJIANG, "长江航务管理局", "Changjiang River Administration of Navigational Affairs",
          NAVIGATION_ADMINISTRATION,
          "the Changjiang (Yangtze) trunk waterway from Shuifu, Yunnan to the estuary (长江干线 水富至长江口)",
          WATER_REGISTERS + ("case",), ("53", "51", "50", "42", "43", "36", "34", "32", "31")),
    Party(ZHUJIANG, "珠江航务管理局", "Pearl River Administration of Navigational Affairs", NAVIGATION_ADMINISTRATION,
          "the Zhujiang (Pearl River) system's trunk waterways: the Xijiang shipping trunk line and the "
          "Pearl River Delta high-grade channels (西江航运干线、珠江三角洲高等级航道)",
          WATER_REGISTERS + ("case",), ("44", "45", "52", "53")),
)


def default_parties() -> Parties:
    return Parties(DEFAULT_PARTIES)


def load_parties(path: Path | None) -> Parties:
    """The parties of ``path`` (JSON or TOML, by suffix), or the built-in set when None."""
    if path is None:
        return default_parties()
    source = f"parties file {path}"
    try:
        text = Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read ROADX_PARTIES_FILE {path}: {exc.__class__.__name__}: {exc}") from None
    try:
        data = tomllib.loads(text) if Path(path).suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if Path(path).suffix.lower() == ".toml" else "JSON"
        raise SettingsError(f"{source} is not valid {kind}: {exc}") from None
    return parse_parties(data, source)


def parse_parties(data: Any, source: str = "parties file") -> Parties:
    """Parties from a decoded file: ``{"parties": [...]}`` (or the list alone); each entry checked."""
    entries = data.get("parties") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"parties"}:
        raise SettingsError(f"{source}: unknown top-level key(s) {', '.join(sorted(set(data) - {'parties'}))}; "
                            f"write the entries under \"parties\"")
    if not isinstance(entries, list) or not entries:
        raise SettingsError(f"{source}: no parties (expected a non-empty list of entries under \"parties\")")
    return Parties([_entry(entry, number, source) for number, entry in enumerate(entries, start=1)], source)


def _entry(entry: Any, number: int, source: str) -> Party:
    where = f"{source}: entry {number}"
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: an entry is a table of fields ({', '.join(_FIELDS)}), not {entry!r}")
    if isinstance(entry.get("code"), str):
        where += f" (code {entry['code']!r})"
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise SettingsError(f"{where}: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(_FIELDS)}")

    def text(name: str) -> str:
        value = entry.get(name)
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{where}: field {name!r} is required and must be a non-empty string, not {value!r}")
        return value.strip()

    code, kind = text("code"), text("kind")
    if not re.fullmatch(PARTY_CODE, code):
        raise SettingsError(f"{where}: field 'code': {code!r} must be 2 to 8 capital letters or digits")
    if kind not in KINDS:
        raise SettingsError(f"{where}: field 'kind': {kind!r} is not one of {', '.join(KINDS)}")
    if kind == PROVINCE and code not in PROVINCES:
        raise SettingsError(f"{where}: field 'code': a province's code is its two-digit GB/T 2260 code "
                            f"({', '.join(PROVINCES)})")
    if kind != PROVINCE and (code in PROVINCES or code in OTHER_REGION_CODES):
        raise SettingsError(f"{where}: field 'code': {code} is a GB/T 2260 province-level code; "
                            f"a {kind} takes a code no province has")
    registers, known = entry.get("registers"), known_registers()
    if not isinstance(registers, list) or not registers or not all(isinstance(r, str) for r in registers):
        raise SettingsError(f"{where}: field 'registers' must be a non-empty list of register names "
                            f"({', '.join(known)}), not {registers!r}")
    bad = [r for r in registers if r not in known]
    if bad:
        raise SettingsError(f"{where}: field 'registers': unknown register(s) {', '.join(bad)}; "
                            f"known: {', '.join(known)}")
    regions = entry.get("regions", [])
    if not isinstance(regions, list) or not all(isinstance(r, str) and _REGION.fullmatch(r) for r in regions):
        raise SettingsError(f"{where}: field 'regions' must be a list of GB/T 2260 prefixes (2, 4 or 6 digits), "
                            f"not {regions!r}")
    return Party(code, text("name"), text("name_en"), kind, text("jurisdiction"),
                 tuple(dict.fromkeys(registers)), tuple(regions))


def region_filter(value: Any, party: Party, parties: Mapping[str, Party]) -> str | None:
    """What to select a party's routed cases by, from a ``--region`` given with ``party``: a prefix
    of the responsible regions its routings name, or None for all of them.

    ``value`` is the party's own code (the party as a whole: None), or the first 2, 4 or 6 digits of a GB/T 2260 code in its jurisdiction
    (``Party.covers``: ``4403`` for Guangdong, ``4201`` for the Changjiang administration, ``6601``
    for the Corps). ``InvalidIdentifier`` (rule ``invalid_region_code``) says which it is not:
    another party's code, no party of ``parties`` at all, or a region outside the jurisdiction.
    """
    if value == party.code:
        return None
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        if isinstance(value, str) and value in parties:
            raise InvalidIdentifier("invalid_region_code", value,
                                    f"is another party's code, not a region of party {party.code} "
                                    f"(give {party.code} itself or a prefix of {', '.join(party.prefixes)})")
        raise InvalidIdentifier("invalid_region_code", str(value),
                                f"is neither a party of the exchange ({', '.join(parties)}) nor a region prefix: "
                                f"2, 4 or 6 digits of a GB/T 2260 code (e.g. 4403)")
    if not party.covers(value):
        raise InvalidIdentifier("invalid_region_code", value,
                                f"is not within the jurisdiction of party {party.code} ({party.name}: regions "
                                f"{', '.join(party.prefixes) or 'none declared'})")
    return value


def is_party_code(code: Any) -> bool:
    """Whether ``code`` can name a party in a record (a reply's sender, a redirect, an alert's target):
    a province's GB/T 2260 code, the Corps' ``66``, or capitals and digits with a letter (``CJ``).
    Where a record is taken in, its party is checked against the exchange's own parties."""
    return isinstance(code, str) and (code in PROVINCES or code == CORPS_CODE
                                      or (re.fullmatch(PARTY_CODE, code) is not None and not code.isdigit()))
