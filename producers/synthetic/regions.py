"""GB/T 2260 county codes per province, read from python-stdnum's ``cn/loc`` database.

The database records when each code was in use (``[1986-]房山区``); the resident ID
numbers made here carry a code valid in the holder's birth year (a later one is lawful
too: the number is assigned where the holder lives then), and new registrations use
codes valid today.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from ..errors import GeneratorConfigError

_PERIOD = re.compile(r"^\[(\d*)-(\d*)\](.*)$")
# Grouping entries, not places a person or business is registered in.
_PLACEHOLDERS = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划", "省直辖行政单位"}
_OPEN_END = 9999


@dataclass(frozen=True)
class Period:
    start: int
    end: int
    name: str


@dataclass(frozen=True)
class ProvinceRegions:
    """The county codes of one province and when each was in use."""

    province: str
    province_name: str
    periods: dict[str, tuple[Period, ...]]

    @functools.cached_property
    def current_counties(self) -> tuple[str, ...]:
        """County-level codes in use today (for operators, cases, licences)."""
        return tuple(
            code for code, spans in self.periods.items()
            if code[4:] != "00" and spans[-1].end == _OPEN_END and spans[-1].name not in _PLACEHOLDERS
        )

    def counties_in_year(self, year: int) -> tuple[str, ...]:
        """County-level codes valid in ``year`` (for ID numbers of people born then)."""
        return self._by_year.get(year, ())

    @functools.cached_property
    def _by_year(self) -> dict[int, tuple[str, ...]]:
        years: dict[int, list[str]] = {}
        for code, spans in self.periods.items():
            if code[4:] == "00":
                continue
            for span in spans:
                if span.name in _PLACEHOLDERS:
                    continue
                for year in range(max(span.start, 1949), min(span.end, 2030) + 1):
                    years.setdefault(year, []).append(code)
        return {year: tuple(dict.fromkeys(codes)) for year, codes in years.items()}

    def place_name(self, code: str) -> str:
        """The city a county belongs to (its province for municipalities)."""
        spans = self.periods.get(code[:4] + "00")
        if spans and spans[-1].name not in _PLACEHOLDERS:
            return spans[-1].name
        return self.province_name


@functools.cache
def _database() -> dict[str, ProvinceRegions]:
    text = resources.files("stdnum.cn").joinpath("loc.dat").read_text("utf-8")
    provinces: dict[str, tuple[str, dict[str, tuple[Period, ...]]]] = {}
    current: dict[str, tuple[Period, ...]] = {}
    prefix = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        code, _, props = line.strip().partition(" ")
        value = props.split("=", 1)[1].strip('"') if "=" in props else ""
        if not line.startswith(" "):
            prefix, current = code, {}
            provinces[code] = (value, current)
            continue
        current[prefix + code] = tuple(_periods(value))
    return {code: ProvinceRegions(code, name, periods) for code, (name, periods) in provinces.items()}


def _periods(value: str) -> list[Period]:
    spans = []
    for part in value.split(","):
        match = _PERIOD.match(part)
        if match:
            start, end, name = match.groups()
            spans.append(Period(int(start or 0), int(end or _OPEN_END), name))
        else:
            spans.append(Period(0, _OPEN_END, part))
    return spans


def regions_of(province: str) -> ProvinceRegions:
    """County codes of a two-digit province; raises if the database does not know it."""
    found = _database().get(province)
    if found is None or not found.current_counties:
        raise GeneratorConfigError(f"province {province!r} has no county codes in the GB/T 2260 database")
    return found
