"""The synthetic generator's water registers: generated only when a navigation administration takes
part (the road output of a seed is otherwise unchanged); the administrations publish them alone,
provinces beside their road registers; what the hub's rules make of every event is what the
generator says it is (valid ones pass without a finding, invalid ones are rejected by an
identifier rule)."""

from __future__ import annotations

import hashlib
import json

import pytest

from producers.errors import GeneratorConfigError
from producers.synthetic import SyntheticProvinces
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.water_identifiers import CHINA_MIDS
from streams import routing
from streams.pipeline import event_findings, rejecting_rule
from streams.validation import validate_shape

WATER = {"ship", "shipping_enterprise", "port_enterprise", "waterway_project"}
CODEC = EventCodec(EmbeddedRegistry())


def digest(parties, seed=3, n=1500):
    items = [(g.province, g.event, g.kind) for g in SyntheticProvinces(parties, seed).events(n)]
    return hashlib.sha256(json.dumps(items, default=str, sort_keys=True).encode()).hexdigest(), items


def test_without_a_navigation_administration_no_water_register_is_generated_and_the_road_output_is_unchanged():
    first, items = digest(["44", "11"])
    assert not {event["entity_type"] for _p, event, _k in items} & WATER
    again, _ = digest(["44", "11"])
    assert first == again


def test_with_a_navigation_administration_it_publishes_water_registers_alone_and_provinces_beside_road_ones():
    _, items = digest(["44", "CJ", "ZJ"], n=3000)
    by_party: dict[str, set[str]] = {}
    for party, event, _kind in items:
        by_party.setdefault(party, set()).add(event["entity_type"])
    assert by_party["CJ"] <= WATER and by_party["ZJ"] <= WATER and {"ship", "shipping_enterprise"} <= by_party["CJ"]
    assert by_party["44"] & WATER and by_party["44"] - WATER
    assert digest(["44", "CJ", "ZJ"], n=3000)[1] == items  # deterministic by seed


def test_the_corps_or_an_unknown_code_is_refused_with_the_codes_it_takes():
    with pytest.raises(GeneratorConfigError, match="navigation administrations"):
        SyntheticProvinces(["44", "66"], seed=1)


def test_the_hub_judges_every_water_event_as_the_generator_says():
    owners: dict[str, str] = {}
    last: dict[str, dict] = {}
    judged = {"valid": 0, "invalid": 0}
    for generated in SyntheticProvinces(["CJ", "42"], seed=5, duplicate_rate=0.0, invalid_rate=0.05).events(2500):
        event = CODEC.decode(CODEC.encode(generated.event))[1]
        if event["entity_type"] not in WATER:
            continue
        validate_shape(event)
        findings = event_findings(event, owners.get, last.get(event["entity_key"]))
        rule = rejecting_rule(findings)
        judged[generated.kind] += 1
        if generated.kind == "invalid":
            assert rule in ("invalid_imo", "invalid_mmsi", "invalid_uscc"), (event, findings)
            continue
        assert findings == [], (event["after"], [f.rule.code for f in findings])
        record = event["after"]
        if event["entity_type"] == "ship":
            assert record["mmsi"][:3] in CHINA_MIDS and len(record["mmsi"]) == 9
        last[event["entity_key"]] = record
        for key in routing.ownership_keys(event):
            owners[key] = routing.owner_entry(generated.province, routing.registration_region(event))
    assert judged["valid"] > 300 and judged["invalid"] > 10


def test_some_province_cases_involve_a_ship_an_administration_registered_before_and_are_routed_there():
    generator = SyntheticProvinces(["44", "11", "CJ", "ZJ"], seed=7)
    ships: dict[str, str] = {}  # ship id → the party whose valid event registered it, as generated so far
    involving: dict[str, int] = {}  # valid case events naming each administration's ship
    for generated in generator.events(10_000):
        event = generated.event
        if generated.kind == "valid" and event["entity_type"] == "ship":
            ships.setdefault(event["after"]["ship_id"], generated.province)
        if event["entity_type"] != "case" or generated.kind != "valid":
            assert generated.after is None
            continue
        record = event["after"] or event["before"]
        ship = record.get("involved_ship_id")
        if ship is None:
            assert generated.after is None
            continue
        # registered before, by an administration; named by a province's case
        assert ships[ship] in ("CJ", "ZJ") and generated.province in ("44", "11")
        assert generated.after == ((ships[ship], f"ship:{ship}") if event["op"] == "c" else None)  # the create waits
        involving[ships[ship]] = involving.get(ships[ship], 0) + 1
    assert involving.get("CJ", 0) > 5 and involving.get("ZJ", 0) > 5  # some, not most: SHIP_CASE_SHARE
    assert {q: generator.expected.routed.get(q, 0) for q in ("CJ", "ZJ")} == involving  # each is routed there


def test_without_an_administration_no_case_names_a_ship():
    items = SyntheticProvinces(["44", "11"], seed=7).events(3000)
    assert not [g for g in items if g.event["entity_type"] == "case" and "involved_ship_id" in (g.event["after"] or {})]
