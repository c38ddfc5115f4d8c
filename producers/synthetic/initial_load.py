"""A national initial load (首次全量汇聚): snapshot reads of many distinct entities, made from
their index alone, so that any stretch of the load is generated in bounded memory and anew.

``initial_load(provinces, first, count, seed)`` yields the events ``first`` … ``first + count - 1``
of the load as ``(province, envelope)``. Event ``i`` belongs to province ``provinces[i % P]`` as
that province's ``k = i // P``-th: every tenth is an operator (经营业户), the nine after it its
vehicles (营运车辆), so a vehicle's operator is always loaded before it. Identifiers are valid
and distinct for every index: an operator's USCC has the province's county ``o % counties`` and
the organisation code of its number ``o``; a vehicle's plate is the province's character, an
office letter and five digits of its number (2.4 million vehicles a province at most). Every
event is an ``r`` (snapshot read) naming no submission; its ``seq`` is its index + 1, so the
events of one province come in order and a later stretch continues an earlier one.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from schemas.contract import change_event
from schemas.identifiers import PROVINCES

from ..errors import GeneratorConfigError
from . import identities as ids
from .regions import regions_of

BASE_TS_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z
VEHICLES_PER_OPERATOR = 9
_PLATES_PER_LETTER = 100_000
SYSTEM = "initial-load"


def initial_load(provinces: Sequence[str], first: int, count: int, seed: int = 0
                 ) -> Iterator[tuple[str, dict[str, Any]]]:
    """The events ``first`` … ``first + count - 1`` of the load, each with its province."""
    if first < 0 or count < 0 or seed < 0:
        raise GeneratorConfigError(f"first, count and seed must not be negative, got {first}, {count}, {seed}")
    unknown = [p for p in provinces if p not in PROVINCES]
    if not provinces or unknown:
        raise GeneratorConfigError(f"an initial load is made for provinces (GB/T 2260 codes), not {list(unknown)}")
    counties = {p: regions_of(p).current_counties for p in provinces}
    party = len(provinces)
    for index in range(first, first + count):
        province = provinces[index % party]
        number = index // party
        operator = _operator(province, number // (VEHICLES_PER_OPERATOR + 1), counties[province])
        if number % (VEHICLES_PER_OPERATOR + 1) == 0:
            entity_type, record = "operator", operator
        else:
            entity_type, record = "vehicle", _vehicle(province, number - number // (VEHICLES_PER_OPERATOR + 1) - 1,
                                                      operator)
        yield province, change_event(
            event_id=ids.uuid4_text((seed << 96) | index), op="r", entity_type=entity_type, before=None,
            after=record, province=province, system=SYSTEM, table=f"{entity_type}s", seq=index + 1,
            ts_ms=BASE_TS_MS + index, snapshot=True)


def _operator(province: str, number: int, counties: Sequence[str]) -> dict[str, Any]:
    region = counties[number % len(counties)]
    return {
        "uscc": ids.uscc_of(region, ids.organisation_code_of(f"{number:08d}")),
        "name": f"{PROVINCES[province][0]}第{number}运输有限公司",
        "region_code": region,
        "permit_no": f"{PROVINCES[province][1]}交运管许可字{region}{number:08d}号",
        "business_scope": "道路普通货物运输",
        "status": "active",
        "legal_rep_id_number": None,
        "contact_phone": None,
    }


def _vehicle(province: str, number: int, operator: dict[str, Any]) -> dict[str, Any]:
    letter = number // _PLATES_PER_LETTER
    if letter >= len(ids.PLATE_LETTERS):
        raise GeneratorConfigError(f"province {province}: more than {len(ids.PLATE_LETTERS) * _PLATES_PER_LETTER:,} "
                                   f"vehicles have no plate of this load's form")
    return {
        "plate": f"{PROVINCES[province][1]}{ids.PLATE_LETTERS[letter]}{number % _PLATES_PER_LETTER:05d}",
        "plate_color": 2,
        "vin": f"LBV{number:014d}",
        "vehicle_class": "truck",
        "operator_uscc": operator["uscc"],
        "transport_cert_no": f"{operator['region_code']}{number:08d}",
        "seats": None,
        "tonnage_kg": 15_000,
        "status": "active",
    }
