"""Synthetic provincial registers: deterministic change events for the demo, tests and benchmarks.

``SyntheticProvinces(provinces, seed).events(total)`` yields ``Generated`` items. Each province
has operators owning vehicles and employing practitioners, a licence for each, and
enforcement cases, some involving another province's entities. Events are envelope-shaped
dicts (``roadx.ChangeEvent`` without its signature). Injected at the given rates: resends
of an earlier valid event (``duplicate``, the same dict) and records that break one
identifier rule (``invalid``, never updated or resent later). ``expected`` tells what a
correct pipeline must make of them.

When a navigation administration (``CJ``, ``ZJ``) is among the parties, the water registers are
generated too (``water``): the administrations publish them alone, each province beside its road
registers; and ``SHIP_CASE_SHARE`` of the provinces' new cases involve a ship an administration
registered (``involved_ship_id``), which routes them to that administration. Such a case's
``Generated.after`` names the administration and the ship's entity key: the ship was generated
before the case, and a publisher still holding it sends it before the case (``publish_synthetic``),
so the line knows who registered the ship when the case arrives. Without an administration, the
output of a seed is what it always was.

Given ``seal_keys`` (province → its own ``schemas.keys.PartyKey``), the generator seals each
licence issued from ``seal_from`` on (default 2022-07-01: older ones stay unsealed, as licences
issued before sealing began) with the issuing province's key, and seals it again when it changes,
as a provincial licensing system does (``schemas.seals``; at ``seal_clock()``, the real time, in
the key's validity). Without keys licences are unsealed. A seal costs an SM2 signature (≈0.5 ms):
sealing takes generation from ≈70k to ≈15k events/s, so bench fills leave it off.
"""

from __future__ import annotations

import bisect
import datetime
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

from schemas.codes import CASE_STAGES
from schemas.contract import change_event, entity_key
from schemas.identifiers import PROVINCE_OF_PLATE_CHAR, PROVINCES
from schemas.seals import issuing_party, seal_licence

from . import identities as ids
from ..errors import GeneratorConfigError
from .registers import ProvinceRegister
from .water import (TABLES as WATER_TABLES, WATER_ONLY, WATER_SHARE, WaterParty, WaterRegisters, registered_ship,
                    water_parties)

Kind = Literal["valid", "invalid", "duplicate"]
TABLES = {"operator": "operators", "vehicle": "vehicles", "practitioner": "practitioners",
          "licence": "licences", "case": "cases", **WATER_TABLES}
BASE_TS_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z
_DAY_MS = 86_400_000
_ISSUED_FIRST = datetime.date(2019, 1, 1).toordinal()
_ISSUED_SPAN = datetime.date(2024, 5, 31).toordinal() - _ISSUED_FIRST
SEALING_BEGAN = datetime.date(2022, 7, 1)
_SCOPES = ("道路旅客运输", "道路普通货物运输", "道路危险货物运输", "道路旅客运输;道路普通货物运输", "出租汽车客运")
# vehicle class -> (weight, qualification types of its drivers)
_CLASSES = {
    "truck": (0.40, ("道路货物运输驾驶员",)),
    "charter_bus": (0.15, ("道路旅客运输驾驶员",)),
    "route_bus": (0.15, ("道路旅客运输驾驶员",)),
    "dangerous_goods": (0.15, ("道路危险货物运输驾驶员", "道路危险货物运输押运人员")),
    "taxi": (0.15, ("出租汽车驾驶员",)),
}
# violation code -> penalty range in yuan
_QUALIFICATIONS = tuple(quals for _weight, quals in _CLASSES.values())
_VIOLATIONS = {"DLYS-0101": (10_000, 100_000), "DLYS-0203": (3_000, 10_000), "DLYS-0305": (1_000, 3_000),
               "DLYS-0411": (200, 2_000), "WXHW-0102": (20_000, 200_000), "CZC-0107": (500, 5_000)}
_VIOLATION_CODES = tuple(_VIOLATIONS)
SHIP_CASE_SHARE = 0.05  # of a province's new cases, when a navigation administration takes part: one of its ships


@dataclass(frozen=True)
class Generated:
    province: str
    event: dict[str, Any]
    kind: Kind
    # (party, entity key) of what this event refers to that only that party's events tell: to be sent first
    after: tuple[str, str] | None = None


@dataclass
class ExpectedCounts:
    """What the generator yielded so far, and what routing must make of it."""

    produced: int = 0
    valid: int = 0
    duplicates: int = 0
    invalid: int = 0
    per_province: dict[str, int] = field(default_factory=dict)
    per_province_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    # xprov.<Q>.inbound copies: one per valid case event per distinct other province involved
    routed: dict[str, int] = field(default_factory=dict)
    cases_created: int = 0
    cross_province_cases: int = 0


class SyntheticProvinces:
    RECENT = 512  # resends are drawn from this many latest valid events per province

    def __init__(self, provinces: Sequence[str], seed: int, duplicate_rate: float = 0.02,
                 invalid_rate: float = 0.01, cross_province_case_share: float = 0.15,
                 seal_keys: Mapping[str, Any] | None = None, seal_from: datetime.date = SEALING_BEGAN,
                 seal_clock: Callable[[], datetime.datetime] | None = None) -> None:
        codes = list(provinces)
        if not codes:
            raise GeneratorConfigError("at least one province is needed")
        unknown = [p for p in codes if p not in PROVINCES and p not in WATER_ONLY]
        if unknown or len(set(codes)) != len(codes):
            raise GeneratorConfigError(f"parties must be distinct two-digit GB/T 2260 codes or navigation "
                                       f"administrations ({', '.join(WATER_ONLY)}), got {codes}")
        for name, rate in (("duplicate_rate", duplicate_rate), ("invalid_rate", invalid_rate),
                           ("cross_province_case_share", cross_province_case_share)):
            if not 0.0 <= rate <= 1.0:
                raise GeneratorConfigError(f"{name} must be between 0 and 1, got {rate}")
        if duplicate_rate + invalid_rate >= 0.5:
            raise GeneratorConfigError("duplicate_rate + invalid_rate must stay below 0.5")
        self._rng = random.Random(seed)
        self._dup = duplicate_rate
        self._bad = duplicate_rate + invalid_rate
        self._cross = cross_province_case_share
        self._provinces = [ProvinceRegister(code) if code in PROVINCES else WaterParty(code) for code in codes]
        if water_parties(codes):
            for state in self._provinces:
                state.water = WaterRegisters(state.code, self._rng)
        # the navigation administrations whose ships a province's case may involve; ship id → its registering party
        self._ship_registers = [state for state in self._provinces if isinstance(state, WaterParty)]
        self._ship_party: dict[str, str] = {}
        self._seal_keys, self._seal_from = dict(seal_keys or {}), seal_from
        self._seal_clock = seal_clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        weights = [0.5 + self._rng.random() * 1.5 for _ in codes]
        total = sum(weights)
        acc, self._cumulative = 0.0, []
        for weight in weights:
            acc += weight / total
            self._cumulative.append(acc)
        self._ts = BASE_TS_MS
        self.expected = ExpectedCounts(
            per_province={p: 0 for p in codes},
            per_province_kind={p: {"valid": 0, "invalid": 0, "duplicate": 0} for p in codes},
        )

    def events(self, total: int) -> Iterator[Generated]:
        """Yield ``total`` items (valid, invalid and duplicate together)."""
        if total < 0:
            raise GeneratorConfigError(f"total must not be negative, got {total}")
        for _ in range(total):
            yield self._next()

    # -- one item ------------------------------------------------------------------------

    def _next(self) -> Generated:
        rng = self._rng
        index = bisect.bisect_right(self._cumulative, rng.random())
        state = self._provinces[min(index, len(self._provinces) - 1)]
        roll = rng.random()
        water = state.water is not None and (state.water.only or rng.random() < WATER_SHARE)
        after = None
        if roll < self._dup and state.recent:
            event, kind = state.recent[int(rng.random() * len(state.recent))], "duplicate"
            self.expected.duplicates += 1
        elif roll < self._bad:
            event = state.water.invalid(self._emitter(state)) if water else self._invalid(state)
            kind = "invalid"
            self.expected.invalid += 1
        else:
            event, kind = state.water.valid(self._emitter(state)) if water else self._valid(state), "valid"
            self.expected.valid += 1
            if len(state.recent) < self.RECENT:
                state.recent.append(event)
            else:
                state.recent[state.seq % self.RECENT] = event
            if event["entity_type"] == "case":
                self._count_routes(state.code, event)
                ship = (event["after"] or {}).get("involved_ship_id")
                after = (self._ship_party[ship], f"ship:{ship}") if ship and event["op"] == "c" else None
        self.expected.produced += 1
        self.expected.per_province[state.code] += 1
        self.expected.per_province_kind[state.code][kind] += 1
        return Generated(state.code, event, kind, after)

    def _count_routes(self, source: str, event: dict[str, Any]) -> None:
        record = event["after"] if event["after"] is not None else event["before"]
        targets = set()
        if record["involved_plate"]:
            targets.add(PROVINCE_OF_PLATE_CHAR[record["involved_plate"][0]])
        if record["involved_operator_uscc"]:
            targets.add(record["involved_operator_uscc"][2:4])
        if record["involved_id_number"]:
            targets.add(record["involved_id_number"][:2])
        if record.get("involved_ship_id"):
            targets.add(self._ship_party[record["involved_ship_id"]])
        targets.discard(source)
        for target in targets:
            self.expected.routed[target] = self.expected.routed.get(target, 0) + 1
        if event["op"] == "c":
            self.expected.cases_created += 1
            self.expected.cross_province_cases += bool(targets)

    def _emit(self, state: ProvinceRegister, op: str, etype: str, before: dict | None, after: dict | None,
              system: str | None = None) -> dict[str, Any]:
        state.seq += 1
        self._ts += 1 + int(self._rng.random() * 20)
        return change_event(event_id=ids.uuid4_text(self._rng.getrandbits(128)), op=op, entity_type=etype,
                            before=before, after=after, province=state.code, system=system or state.system,
                            table=TABLES[etype], seq=state.seq, ts_ms=self._ts)

    def _emitter(self, state: ProvinceRegister):
        system = state.water.system
        return lambda op, etype, before, after: self._emit(state, op, etype, before, after, system)

    def _valid(self, state: ProvinceRegister) -> dict[str, Any]:
        rng = self._rng
        if state.pending_licences and rng.random() < 0.6:
            event = self._create_licence(state)
            if event is not None:
                return event
        roll = rng.random()
        event = None
        if state.live() >= 12 and roll >= 0.55:
            event = self._update(state) if roll < 0.96 else self._delete(state)
        return event or self._create(state)

    # -- creates -------------------------------------------------------------------------

    def _create(self, state: ProvinceRegister) -> dict[str, Any]:
        roll = self._rng.random()
        pools = state.pools
        if roll >= 0.75 and pools["vehicle"]:
            case = self._case(state)
            if case is not None:
                pools["open_case"].add(entity_key("case", case), case)
                return self._emit(state, "c", "case", None, case)
        if not pools["operator"] or roll < 0.12:
            etype, record = "operator", self._operator(state)
        elif roll < 0.45 or roll >= 0.75:
            etype, record = "vehicle", self._vehicle(state)
        else:
            etype, record = "practitioner", self._practitioner(state)
        key = entity_key(etype, record)
        pools[etype].add(key, record)
        state.pending_licences.append((etype, key))
        return self._emit(state, "c", etype, None, record)

    def _unique(self, state: ProvinceRegister, make) -> str:
        while True:
            value = make()
            if value not in state.used:
                state.used.add(value)
                return value

    def _operator(self, state: ProvinceRegister) -> dict[str, Any]:
        rng = self._rng
        region = ids.pick(rng, state.counties)
        place = state.regions.place_name(region)
        state.permits += 1
        return {
            "uscc": self._unique(state, lambda: ids.make_uscc(rng, region)),
            "name": ids.make_operator_name(rng, place),
            "region_code": region,
            "permit_no": f"{state.plate_char}交运管许可{place[0]}字{region}{state.permits:06d}号",
            "business_scope": ids.pick(rng, _SCOPES),
            "status": "active",
            "legal_rep_id_number": self._unique(state, lambda: ids.make_id_number(rng, state.regions)),
            "contact_phone": self._unique(state, lambda: ids.make_phone(rng)),
        }

    def _vehicle(self, state: ProvinceRegister) -> dict[str, Any]:
        rng = self._rng
        _key, operator = state.pools["operator"].choice(rng)
        roll, vclass = rng.random(), "taxi"
        for name, (weight, _quals) in _CLASSES.items():
            if roll < weight:
                vclass = name
                break
            roll -= weight
        new_energy = rng.random() < 0.15 and vclass != "dangerous_goods"
        if vclass == "taxi":
            style, color = ("small", 94) if new_energy else (None, 1)
        else:
            style, color = ("large", 93) if new_energy else (None, 2)
        plate = self._unique(state, lambda: ids.make_plate(rng, state.plate_char, style))
        state.permits += 1
        seats = tonnage = None
        if vclass in ("charter_bus", "route_bus"):
            seats = 19 + int(rng.random() * 37)
        elif vclass == "taxi":
            seats = 5
        else:
            tonnage = 1500 + int(rng.random() * 47_500)
        return {
            "plate": plate, "plate_color": color, "vin": ids.make_vin(rng), "vehicle_class": vclass,
            "operator_uscc": operator["uscc"], "transport_cert_no": f"{operator['region_code']}{state.permits:06d}",
            "seats": seats, "tonnage_kg": tonnage, "status": "active",
        }

    def _practitioner(self, state: ProvinceRegister) -> dict[str, Any]:
        rng = self._rng
        _key, operator = state.pools["operator"].choice(rng)
        id_number = self._unique(state, lambda: ids.make_id_number(rng, state.regions))
        quals = list(ids.pick(rng, _QUALIFICATIONS))
        return {
            "id_number": id_number, "name": ids.make_name(rng), "qualification_cert_no": id_number,
            "qualification_types": quals, "region_code": operator["region_code"],
            "employer_uscc": operator["uscc"], "status": "active",
        }

    def _create_licence(self, state: ProvinceRegister) -> dict[str, Any] | None:
        etype, key = state.pending_licences.popleft()
        holder = state.pools[etype].records.get(key)
        if holder is None:  # deleted before its licence was issued
            return None
        if etype == "operator":
            ltype, number, region, years = "operating_permit", holder["permit_no"], holder["region_code"], 4
        elif etype == "vehicle":
            ltype, number, years = "transport_cert", holder["transport_cert_no"], 8
            region = holder["transport_cert_no"][:6]
        else:
            ltype, number, region, years = "qualification", holder["qualification_cert_no"], holder["region_code"], 6
        valid_from = datetime.date.fromordinal(_ISSUED_FIRST + int(self._rng.random() * _ISSUED_SPAN))
        record = {
            "licence_no": number, "licence_type": ltype, "holder_key": key, "issuer_region_code": region,
            "valid_from": valid_from, "valid_until": valid_from + datetime.timedelta(days=365 * years + 1),
            "status": "valid", "seal": None,
        }
        record = self._sealed(record)
        state.pools["licence"].add(entity_key("licence", record), record)
        return self._emit(state, "c", "licence", None, record)

    def _case(self, state: ProvinceRegister) -> dict[str, Any] | None:
        rng = self._rng
        where = state
        if rng.random() < self._cross:
            others = [p for p in self._provinces
                      if p is not state and isinstance(p, ProvinceRegister) and p.pools["vehicle"]]
            if not others:
                return None
            where = others[int(rng.random() * len(others))]
        elif not state.pools["vehicle"]:
            return None
        plate = uscc = id_number = None
        if rng.random() < 0.15:
            uscc = where.pools["operator"].choice(rng)[1]["uscc"]
        else:
            vehicle = where.pools["vehicle"].choice(rng)[1]
            plate, uscc = vehicle["plate"], vehicle["operator_uscc"]
            if where.pools["practitioner"] and rng.random() < 0.6:
                id_number = where.pools["practitioner"].choice(rng)[1]["id_number"]
        state.cases += 1
        year = datetime.datetime.fromtimestamp(self._ts / 1000, datetime.timezone.utc).year
        record = {
            "case_no": f"{state.plate_char}交执罚〔{year}〕{state.cases:07d}号",
            "region_code": ids.pick(rng, state.counties), "stage": "filed",
            "violation_code": ids.pick(rng, _VIOLATION_CODES),
            "occurred_at": self._ts - int(rng.random() * 30 * _DAY_MS),
            "involved_plate": plate, "involved_operator_uscc": uscc, "involved_id_number": id_number,
            "penalty_cents": None,
        }
        if self._ship_registers:  # drawn only when an administration takes part: road-only seeds stay as they were
            record["involved_ship_id"] = self._involved_ship()
        return record

    def _involved_ship(self) -> str | None:
        """A ship a navigation administration registered, for ``SHIP_CASE_SHARE`` of the cases (None otherwise)."""
        if self._rng.random() >= SHIP_CASE_SHARE:
            return None
        picked = registered_ship(self._rng, self._ship_registers)
        if picked is None:
            return None
        self._ship_party[picked[0]] = picked[1]
        return picked[0]

    # -- updates and deletes -------------------------------------------------------------

    def _update(self, state: ProvinceRegister) -> dict[str, Any] | None:
        rng = self._rng
        etype = ids.pick(rng, ("operator", "vehicle", "vehicle", "practitioner", "practitioner",
                                "licence", "open_case", "open_case", "open_case"))
        pool = state.pools[etype]
        if not pool:
            return None
        key, old = pool.choice(rng)
        new = dict(old)
        roll = rng.random()
        if etype == "open_case":
            new["stage"] = CASE_STAGES[CASE_STAGES.index(old["stage"]) + 1]
            if new["stage"] == "decided":
                low, high = _VIOLATIONS[old["violation_code"]]
                new["penalty_cents"] = (low + int(rng.random() * (high - low))) * 100
            if new["stage"] == "closed":
                pool.remove(key)
                state.pools["closed_case"].add(key, new)
            else:
                pool.records[key] = new
            return self._emit(state, "u", "case", old, new)
        if etype == "operator" and roll < 0.5:
            new["contact_phone"] = self._unique(state, lambda: ids.make_phone(rng))
        elif etype == "vehicle" and roll < 0.3:
            if old["seats"] is not None:
                new["seats"] = old["seats"] + (1 if old["seats"] < 50 else -1)
            else:
                new["tonnage_kg"] = old["tonnage_kg"] + 500
        elif etype == "practitioner" and roll < 0.3 and len(state.pools["operator"]) > 1:
            while new["employer_uscc"] == old["employer_uscc"]:
                new["employer_uscc"] = state.pools["operator"].choice(rng)[1]["uscc"]
        elif etype == "licence" and roll < 0.4:
            new["valid_until"] = old["valid_until"] + datetime.timedelta(days=365 * 2)
        elif etype == "licence":
            new["status"] = "suspended" if old["status"] == "valid" else "valid"
        else:
            new["status"] = "suspended" if old["status"] == "active" else "active"
        if etype == "licence":  # the issuing authority seals the changed licence again
            new = self._sealed({**new, "seal": None})
        pool.records[key] = new
        return self._emit(state, "u", etype, old, new)

    def _sealed(self, licence: dict[str, Any]) -> dict[str, Any]:
        key = self._seal_keys.get(issuing_party(licence))
        if key is None or licence["valid_from"] < self._seal_from:
            return licence
        return seal_licence(licence, key, self._seal_clock())

    def _delete(self, state: ProvinceRegister) -> dict[str, Any] | None:
        rng = self._rng
        etype = ids.pick(rng, ("closed_case", "closed_case", "open_case", "licence", "practitioner"))
        pool = state.pools[etype]
        if not pool:
            return None
        key, _record = pool.choice(rng)
        old = pool.remove(key)
        return self._emit(state, "d", "case" if etype.endswith("case") else etype, old, None)

    # -- invalid records -----------------------------------------------------------------

    def _invalid(self, state: ProvinceRegister) -> dict[str, Any]:
        """A create that fits the schema but breaks one identifier rule."""
        rng = self._rng
        rule = ids.pick(rng, ("uscc", "id_number", "plate", "region_code"))
        if rule == "plate" and state.pools["operator"]:
            record = self._vehicle(state)
            record["plate"] = self._unique(state, lambda: ids.broken_plate(rng, record["plate"]))
            return self._emit(state, "c", "vehicle", None, record)
        if rule == "id_number" and state.pools["operator"]:
            record = self._practitioner(state)
            broken = self._unique(state, lambda: ids.broken_id_number(record["id_number"]))
            record["id_number"] = record["qualification_cert_no"] = broken
            return self._emit(state, "c", "practitioner", None, record)
        record = self._operator(state)
        if rule == "region_code":
            record["region_code"] = ids.broken_region_code(rng, record["region_code"])
        else:
            record["uscc"] = self._unique(state, lambda: ids.broken_uscc(record["uscc"]))
        return self._emit(state, "c", "operator", None, record)

