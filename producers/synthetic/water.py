"""Synthetic water registers: shipping enterprises, their ships, port enterprises and projects.

Generated only when a navigation administration takes part (``water_parties``): then the
navigation administrations publish the four water registers of their jurisdiction, and each
province publishes them beside its road registers (``WATER_SHARE`` of its events). Without one,
nothing here draws from the generator's random numbers, so the road output of a seed is
unchanged.

Each party's ``WaterRegisters`` keeps its live records: a ship's operator is one of the party's
shipping enterprises (created before it, with a permit), a project's owner one of its
enterprises, every region a county of a province in the party's jurisdiction. Ships carry valid
identifiers: an MMSI of a Chinese ship station (MID 412/413/414) and, for seagoing ships, an
IMO number with its check digit (python-stdnum's ``imo``). ``invalid`` makes a create that
breaks one rule the hub rejects: an IMO number with a wrong check digit, an MMSI of 8 digits, a
shipping enterprise's USCC with a wrong check character.
"""

from __future__ import annotations

import datetime
import random
from typing import Any, Callable, Iterable, Mapping, Sequence

from stdnum import imo

from schemas.contract import entity_key
from schemas.identifiers import PROVINCES
from schemas.parties import DEFAULT_PARTIES, NAVIGATION_ADMINISTRATION
from schemas.water_identifiers import CHINA_MIDS

from . import identities as ids
from .regions import ProvinceRegions, regions_of
from .registers import LivePool

WATER_SHARE = 0.25  # of a province's events, when water registers are generated
TABLES = {"ship": "ships", "shipping_enterprise": "shipping_enterprises", "port_enterprise": "port_enterprises",
          "waterway_project": "waterway_projects"}
# The parties that publish water registers only: the navigation administrations, by code → their provinces.
WATER_ONLY: Mapping[str, tuple[str, ...]] = {
    party.code: tuple(r[:2] for r in party.regions if r[:2] in PROVINCES)
    for party in DEFAULT_PARTIES if party.kind == NAVIGATION_ADMINISTRATION}
_SHIP_TYPES = ("bulk_carrier", "bulk_carrier", "general_cargo", "container", "oil_tanker", "chemical_tanker", "tug",
               "barge", "passenger", "ro_ro")
_SCOPES = (["inland", "inter_provincial", "bulk"], ["coastal", "inter_provincial", "container"],
           ["inland", "intra_provincial", "general_cargo"], ["coastal", "dangerous_goods"], ["inland", "passenger"])
_TRADES = ("长航", "江海", "通达", "远洋", "顺航", "海联", "安澜", "恒舟", "港航", "汇通")
_WORKS = ("航道整治工程", "船闸扩能工程", "集装箱码头工程", "港区疏港航道工程", "锚地建设工程")
_PROJECT_STEPS = {"approved": "under_construction", "under_construction": "completed"}
Emit = Callable[[str, str, "dict | None", "dict | None"], dict]


def water_parties(codes: Iterable[str]) -> bool:
    """Whether water registers are generated for these parties: a navigation administration takes part."""
    return any(code in WATER_ONLY for code in codes)


class WaterRegisters:
    """One party's synthetic water registers; ``only``: the party publishes nothing else."""

    def __init__(self, code: str, rng: random.Random) -> None:
        self.code, self.only, self._rng = code, code in WATER_ONLY, rng
        self.system = f"shuiyun-{code}"
        self._regions: list[ProvinceRegions] = [regions_of(p) for p in WATER_ONLY.get(code, (code,))]
        self.pools = {name: LivePool() for name in TABLES}
        self.used: set[str] = set()
        self.count = 0

    # -- creates and updates ---------------------------------------------------------------

    def valid(self, emit: Emit) -> dict[str, Any]:
        rng = self._rng
        live = sum(len(pool) for pool in self.pools.values())
        if live >= 8 and rng.random() < 0.35:
            event = self._update(emit)
            if event is not None:
                return event
        roll = rng.random()
        pools = self.pools
        if not pools["shipping_enterprise"] or roll < 0.2:
            etype, record = "shipping_enterprise", self._shipping_enterprise()
        elif roll < 0.7:
            etype, record = "ship", self._ship()
        elif roll < 0.85 or not pools["port_enterprise"]:
            etype, record = "port_enterprise", self._port_enterprise()
        else:
            etype, record = "waterway_project", self._project()
        pools[etype].add(entity_key(etype, record), record)
        return emit("c", etype, None, record)

    def invalid(self, emit: Emit) -> dict[str, Any]:
        """A create that breaks one rule the hub rejects (never kept, updated or resent)."""
        rng = self._rng
        rule = ids.pick(rng, ("imo", "mmsi", "uscc"))
        if rule != "uscc" and self.pools["shipping_enterprise"]:
            record = self._ship(seagoing=rule == "imo")
            if rule == "imo":
                record["imo"] = record["imo"][:6] + str((int(record["imo"][6]) + 1) % 10)
            else:
                record["mmsi"] = record["mmsi"][:8]
            return emit("c", "ship", None, record)
        record = self._shipping_enterprise()
        record["uscc"] = self._unique(lambda: ids.broken_uscc(record["uscc"]))
        return emit("c", "shipping_enterprise", None, record)

    def _update(self, emit: Emit) -> dict[str, Any] | None:
        rng = self._rng
        etype = ids.pick(rng, ("ship", "ship", "shipping_enterprise", "port_enterprise", "waterway_project"))
        pool = self.pools[etype]
        if not pool:
            return None
        key, old = pool.choice(rng)
        new = dict(old)
        if etype == "waterway_project":
            if old["status"] not in _PROJECT_STEPS:
                return None
            new["status"] = _PROJECT_STEPS[old["status"]]
            if new["status"] == "completed":
                new["end_date"] = max(old["start_date"] + datetime.timedelta(days=400), old["end_date"])
        elif etype == "ship" and rng.random() < 0.4:
            new["gross_tonnage"] = old["gross_tonnage"] + 100
        elif etype == "ship":
            new["status"] = "laid_up" if old["status"] == "active" else "active"
        else:
            new["status"] = "suspended" if old["status"] == "active" else "active"
        pool.records[key] = new
        return emit("u", etype, old, new)

    # -- records ---------------------------------------------------------------------------

    def _place(self) -> tuple[ProvinceRegions, str, str]:
        regions = ids.pick(self._rng, self._regions)
        county = ids.pick(self._rng, regions.current_counties)
        return regions, county, regions.place_name(county)

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def _authority(self, regions: ProvinceRegions) -> str:
        """Who issues the permit: the ministry (交) for a navigation administration, else the province."""
        return "交" if self.only else PROVINCES[regions.province][1]

    def _shipping_enterprise(self) -> dict[str, Any]:
        rng = self._rng
        regions, county, place = self._place()
        self.count += 1
        return {
            "uscc": self._unique(lambda: ids.make_uscc(rng, county)),
            "name": f"{place}{ids.pick(rng, _TRADES)}航运有限公司",
            "permit_no": f"{self._authority(regions)}XS{2015 + int(rng.random() * 9)}{self.count:05d}",
            "business_scope": list(ids.pick(rng, _SCOPES)), "region_code": county, "status": "active",
        }

    def _ship(self, seagoing: bool | None = None) -> dict[str, Any]:
        rng = self._rng
        operator = self.pools["shipping_enterprise"].choice(rng)[1]
        seagoing = rng.random() < 0.3 if seagoing is None else seagoing
        self.count += 1
        number = None
        if seagoing:
            body = self._unique(lambda: f"9{int(rng.random() * 100_000):05d}")
            number = body + imo.calc_check_digit(body)
        mid = ids.pick(rng, CHINA_MIDS)
        _regions, _county, place = self._place()
        return {
            "ship_id": f"CN{self.code}{2010 + int(rng.random() * 14)}{self.count:06d}",
            "name": f"{ids.pick(rng, _TRADES)}{self.count}", "imo": number,
            "mmsi": self._unique(lambda: f"{mid}{int(rng.random() * 1_000_000):06d}"),
            "port_of_registry": place, "gross_tonnage": 200 + int(rng.random() * 40_000),
            "ship_type": ids.pick(rng, _SHIP_TYPES), "operator_uscc": operator["uscc"], "status": "active",
        }

    def _port_enterprise(self) -> dict[str, Any]:
        rng = self._rng
        regions, county, place = self._place()
        self.count += 1
        return {
            "uscc": self._unique(lambda: ids.make_uscc(rng, county)),
            "name": f"{place}港{ids.pick(rng, _TRADES)}港务有限公司",
            "permit_no": f"({PROVINCES[regions.province][1]}{place[0]})港经证({self.count:04d})号",
            "port": f"{place}港", "region_code": county, "status": "active",
        }

    def _project(self) -> dict[str, Any]:
        rng = self._rng
        owner = self.pools["port_enterprise"].choice(rng)[1]
        _regions, county, place = self._place()
        self.count += 1
        start = datetime.date(2018, 1, 1) + datetime.timedelta(days=int(rng.random() * 2000))
        return {
            "project_code": f"{start.year}-{county}-55-01-{self.count:06d}", "name": f"{place}{ids.pick(rng, _WORKS)}",
            "owner_uscc": owner["uscc"], "region_code": county,
            "total_investment_yuan": (500 + int(rng.random() * 200_000)) * 10_000,
            "start_date": start, "end_date": start + datetime.timedelta(days=365 * (1 + int(rng.random() * 4))),
            "status": ids.pick(rng, ("approved", "under_construction")),
        }


def registered_ship(rng: random.Random, parties: Sequence["WaterParty"]) -> tuple[str, str] | None:
    """(ship id, code of the party that registered it) of a live ship of one of ``parties``, or None
    when none has a ship yet."""
    with_ships = [party for party in parties if party.water is not None and party.water.pools["ship"]]
    if not with_ships:
        return None
    party = with_ships[int(rng.random() * len(with_ships))]
    return party.water.pools["ship"].choice(rng)[1]["ship_id"], party.code


class WaterParty:
    """A party that publishes water registers only (a navigation administration): its counters."""

    def __init__(self, code: str) -> None:
        self.code, self.system, self.seq = code, f"shuiyun-{code}", 0
        self.recent: list[dict[str, Any]] = []
        self.water: WaterRegisters | None = None
