"""The synthetic province generator: determinism, realistic identifiers, injected faults."""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import uuid

import pytest

from producers.errors import GeneratorConfigError
from producers.synthetic.generator import SyntheticProvinces
from producers.synthetic.identities import uuid4_text
from producers.synthetic import publish_synthetic
from schemas import identifiers
from schemas.codec import EventCodec
from schemas.codes import CASE_STAGES
from schemas.contract import entity_key
from schemas.errors import InvalidIdentifier
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

PROVINCES = ("44", "11", "50", "46", "65")
N = 20_000


@pytest.fixture(scope="module")
def generated():
    gen = SyntheticProvinces(PROVINCES, seed=42)
    return gen, list(gen.events(N))


def identifier_failures(event: dict) -> list[str]:
    """Rules (from schemas.identifiers) that the event's identifiers break."""
    record = event["after"] if event["after"] is not None else event["before"]
    source = event["source"]["province"]
    checks = []
    etype = event["entity_type"]
    if etype == "operator":
        checks += [(identifiers.check_uscc, record["uscc"]), (identifiers.check_region_code, record["region_code"]),
                   (identifiers.check_id_number, record["legal_rep_id_number"])]
    elif etype == "vehicle":
        checks += [(identifiers.check_plate, record["plate"]), (identifiers.check_plate_color, record["plate_color"]),
                   (identifiers.check_uscc, record["operator_uscc"])]
    elif etype == "practitioner":
        checks += [(identifiers.check_id_number, record["id_number"]),
                   (identifiers.check_region_code, record["region_code"]),
                   (identifiers.check_uscc, record["employer_uscc"])]
    elif etype == "licence":
        checks += [(identifiers.check_region_code, record["issuer_region_code"])]
    else:
        checks += [(identifiers.check_region_code, record["region_code"])]
        checks += [(identifiers.check_plate, record["involved_plate"])] if record["involved_plate"] else []
        checks += [(identifiers.check_uscc, record["involved_operator_uscc"])] if record["involved_operator_uscc"] else []
        checks += [(identifiers.check_id_number, record["involved_id_number"])] if record["involved_id_number"] else []
    failures = []
    for check, value in checks:
        try:
            check(value)
        except InvalidIdentifier as exc:
            failures.append(exc.rule)
    own = {"operator": record.get("uscc", "")[2:4], "practitioner": record.get("id_number", "")[:2],
           "vehicle": identifiers.province_of_plate(record.get("plate", ""))}.get(etype)
    if etype in ("operator", "practitioner", "vehicle") and not failures and own != source:
        failures.append("foreign_identifier")
    return failures


def test_same_seed_yields_identical_events():
    first = [(g.province, g.event, g.kind) for g in SyntheticProvinces(PROVINCES, seed=7).events(3000)]
    second = [(g.province, g.event, g.kind) for g in SyntheticProvinces(PROVINCES, seed=7).events(3000)]
    assert first == second


def test_different_seed_yields_different_events():
    first = [g.event["event_id"] for g in SyntheticProvinces(PROVINCES, seed=7).events(500)]
    second = [g.event["event_id"] for g in SyntheticProvinces(PROVINCES, seed=8).events(500)]
    assert not set(first) & set(second)


def test_every_valid_event_passes_identifier_checks(generated):
    _gen, items = generated
    broken = [(g.event["entity_key"], identifier_failures(g.event)) for g in items if g.kind != "invalid"]
    assert [b for b in broken if b[1]] == []


def test_every_invalid_event_breaks_exactly_one_identifier_rule(generated):
    _gen, items = generated
    invalid = [g for g in items if g.kind == "invalid"]
    rules = collections.Counter()
    for item in invalid:
        failures = identifier_failures(item.event)
        assert len(failures) == 1, (item.event, failures)
        rules[failures[0]] += 1
    assert set(rules) == {"invalid_uscc", "invalid_id_number", "invalid_plate", "invalid_region_code"}


def test_every_event_encodes_with_the_codec(generated):
    _gen, items = generated
    codec = EventCodec(EmbeddedRegistry())
    for item in items[:3000]:
        _schema_id, decoded = codec.decode(codec.encode(item.event, b"k" * 32))
        assert decoded["entity_key"] == item.event["entity_key"]


def test_entity_key_matches_the_record(generated):
    _gen, items = generated
    for item in items:
        event = item.event
        record = event["after"] if event["after"] is not None else event["before"]
        assert event["entity_key"] == entity_key(event["entity_type"], record)


def test_duplicate_and_invalid_rates_are_honoured(generated):
    gen, items = generated
    kinds = collections.Counter(g.kind for g in items)
    assert 0.014 < kinds["duplicate"] / N < 0.026
    assert 0.006 < kinds["invalid"] / N < 0.014
    assert (gen.expected.valid, gen.expected.duplicates, gen.expected.invalid) == (
        kinds["valid"], kinds["duplicate"], kinds["invalid"])
    assert gen.expected.produced == N == sum(gen.expected.per_province.values())


def test_duplicate_resends_an_earlier_valid_event_unchanged(generated):
    _gen, items = generated
    seen_valid: dict[str, dict] = {}
    for item in items:
        if item.kind == "valid":
            assert item.event["event_id"] not in seen_valid
            seen_valid[item.event["event_id"]] = item.event
        elif item.kind == "duplicate":
            assert seen_valid[item.event["event_id"]] is item.event
            assert item.province == item.event["source"]["province"]


def test_invalid_records_are_never_updated_or_resent(generated):
    _gen, items = generated
    invalid_keys = {g.event["entity_key"] for g in items if g.kind == "invalid"}
    invalid_ids = {g.event["event_id"] for g in items if g.kind == "invalid"}
    later = [g for g in items if g.kind != "invalid"]
    assert not invalid_keys & {g.event["entity_key"] for g in later}
    assert not invalid_ids & {g.event["event_id"] for g in later}


def test_seq_and_ts_increase_per_province(generated):
    _gen, items = generated
    last_seq: dict[str, int] = collections.defaultdict(int)
    last_ts = 0
    for item in items:
        if item.kind == "duplicate":
            continue
        source = item.event["source"]
        assert source["province"] == item.province
        assert source["system"] == f"yunzheng-{item.province}" and source["snapshot"] is False
        assert source["seq"] == last_seq[item.province] + 1
        last_seq[item.province] = source["seq"]
        assert item.event["ts_ms"] > last_ts
        last_ts = item.event["ts_ms"]


def test_each_update_changes_the_entity_and_carries_its_last_version(generated):
    _gen, items = generated
    current: dict[str, dict] = {}
    for item in (g for g in items if g.kind == "valid"):
        event = item.event
        key = event["entity_key"]
        if event["op"] == "c":
            assert key not in current and event["before"] is None
            current[key] = event["after"]
        elif event["op"] == "u":
            assert event["before"] == current[key] and event["after"] != event["before"]
            current[key] = event["after"]
        else:
            assert event["op"] == "d" and event["after"] is None and event["before"] == current.pop(key)


def test_case_stage_only_moves_forward(generated):
    _gen, items = generated
    stage: dict[str, int] = {}
    for item in (g for g in items if g.kind == "valid" and g.event["entity_type"] == "case"):
        record = item.event["after"]
        if record is None:
            continue
        now = CASE_STAGES.index(record["stage"])
        assert now == stage.get(item.event["entity_key"], -1) + 1
        stage[item.event["entity_key"]] = now
        assert (record["penalty_cents"] is not None) == (now >= CASE_STAGES.index("decided"))
    assert max(stage.values()) == len(CASE_STAGES) - 1


def test_case_numbers_are_unique_and_handled_in_their_province(generated):
    _gen, items = generated
    creates = [g for g in items if g.kind == "valid" and g.event["entity_type"] == "case" and g.event["op"] == "c"]
    assert len({g.event["entity_key"] for g in creates}) == len(creates)
    assert all(g.event["after"]["region_code"][:2] == g.province for g in creates)


def _targets(case: dict, source: str) -> set[str]:
    found = set()
    if case["involved_plate"]:
        found.add(identifiers.province_of_plate(case["involved_plate"]))
    if case["involved_operator_uscc"]:
        found.add(identifiers.party_of_uscc(case["involved_operator_uscc"]))
    if case["involved_id_number"]:
        found.add(identifiers.province_of_id_number(case["involved_id_number"]))
    return found - {source}


def test_cross_province_share_is_near_the_requested_share(generated):
    gen, items = generated
    creates = [g for g in items if g.kind == "valid" and g.event["entity_type"] == "case" and g.event["op"] == "c"]
    cross = [g for g in creates if _targets(g.event["after"], g.province)]
    assert 0.10 < len(cross) / len(creates) < 0.20
    assert (gen.expected.cases_created, gen.expected.cross_province_cases) == (len(creates), len(cross))


def test_expected_routed_counts_every_case_event_per_target_province(generated):
    gen, items = generated
    routed: collections.Counter = collections.Counter()
    for item in (g for g in items if g.kind == "valid" and g.event["entity_type"] == "case"):
        record = item.event["after"] if item.event["after"] is not None else item.event["before"]
        routed.update(_targets(record, item.province))
    assert dict(routed) == gen.expected.routed
    assert set(routed) <= set(PROVINCES) and sum(routed.values()) > 0


def test_licences_name_an_existing_holder_and_a_valid_period(generated):
    _gen, items = generated
    created = set()
    for item in (g for g in items if g.kind == "valid"):
        event = item.event
        if event["op"] == "c":
            created.add(event["entity_key"])
        if event["entity_type"] == "licence" and event["after"] is not None:
            licence = event["after"]
            assert licence["holder_key"] in created
            assert licence["valid_from"] <= licence["valid_until"]
            assert licence["issuer_region_code"][:2] == item.province


def test_operating_permit_number_follows_the_national_pattern(generated):
    _gen, items = generated
    operator = next(g.event["after"] for g in items if g.kind == "valid" and g.event["entity_type"] == "operator")
    permit = operator["permit_no"]
    plate_char = identifiers.PROVINCES[operator["uscc"][2:4]][1]
    assert permit.startswith(f"{plate_char}交运管许可") and permit.endswith("号")
    assert permit[-13:-7] == operator["region_code"]


def test_a_single_province_makes_only_local_cases():
    gen = SyntheticProvinces(["44"], seed=1)
    items = list(gen.events(3000))
    assert gen.expected.cross_province_cases == 0 and gen.expected.routed == {}
    assert any(g.event["entity_type"] == "case" for g in items)


@pytest.mark.parametrize("kwargs, words", [
    ({"provinces": []}, "at least one"),
    ({"provinces": ["44", "99"]}, "two-digit"),
    ({"provinces": ["44", "44"]}, "distinct"),
    ({"provinces": ["44"], "duplicate_rate": -0.1}, "duplicate_rate"),
    ({"provinces": ["44"], "cross_province_case_share": 1.5}, "cross_province_case_share"),
    ({"provinces": ["44"], "duplicate_rate": 0.3, "invalid_rate": 0.3}, "below 0.5"),
])
def test_bad_parameters_are_rejected_with_the_reason(kwargs, words):
    with pytest.raises(GeneratorConfigError, match=words):
        SyntheticProvinces(seed=1, **kwargs)


def test_negative_total_is_rejected():
    with pytest.raises(GeneratorConfigError, match="negative"):
        list(SyntheticProvinces(["44"], seed=1).events(-1))


def test_same_seed_yields_identical_events_in_another_process():
    script = (
        "import hashlib, sys; from producers.synthetic.generator import SyntheticProvinces; "
        "h = hashlib.sha256(); "
        "[h.update(repr((g.province, g.kind, sorted(g.event.items(), key=str))).encode()) "
        "for g in SyntheticProvinces(['44', '11', '50'], seed=3).events(2000)]; print(h.hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
        for hash_seed in ("1", "2")
    }
    assert len(digests) == 1 and len(digests.pop()) == 65


def test_publish_synthetic_rejects_a_negative_total_before_touching_spools(tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1", provinces=("44",))
    with pytest.raises(GeneratorConfigError, match="negative"):
        publish_synthetic(settings, total=-5, seed=1)
    assert not settings.spool_dir.exists()


def test_event_ids_are_the_version_4_uuid_text_of_the_random_bits():
    rng = random.Random(3)
    for bits in [0, 2 ** 128 - 1] + [rng.getrandbits(128) for _ in range(2000)]:
        assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def test_with_keys_licences_issued_since_sealing_began_are_sealed_by_their_province(tmp_path):
    import datetime as dt

    from schemas import seals
    from schemas.keys import HubKeys, PartyKeys

    now = dt.datetime.now(dt.timezone.utc)
    hub = HubKeys(tmp_path / "hub")
    keys = {p: PartyKeys(tmp_path / p, p).init(now - dt.timedelta(days=1)) for p in ("44", "11")}
    for key in keys.values():
        hub.register(key.registration(), now, list(keys))
    licences = [g.event for g in SyntheticProvinces(["44", "11"], seed=4, seal_keys=keys).events(3000)
                if g.event["entity_type"] == "licence" and g.event["after"] is not None]
    verdicts = collections.Counter()
    for event in licences:
        record = event["after"]
        check = seals.check_seal(record, hub.public_key)
        verdicts[check.seal, event["op"]] += 1
        assert check.seal == ("valid" if record["valid_from"] >= dt.date(2022, 7, 1) else "unsealed"), check
        if check.seal == "valid":
            assert check.key_id == keys[event["source"]["province"]].key_id
    assert verdicts["valid", "c"] and verdicts["valid", "u"] and verdicts["unsealed", "c"], verdicts
    unsealed = [g.event for g in SyntheticProvinces(["44"], seed=4).events(500) if g.event["entity_type"] == "licence"]
    assert unsealed and all((e["after"] or e["before"])["seal"] is None for e in unsealed)
