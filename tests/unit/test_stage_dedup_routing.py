"""The stage's state: content dedup, staleness, registry-first routing, moves, findings."""

from __future__ import annotations

import pytest

from schemas import topics as th
from schemas.codec import FindingCodec
from streams import routing
from streams.pipeline import process_batch

from test_pipeline import (
    CODEC, TOPICS, USCC_11, USCC_31, USCC_44, case, event, headers, inbound, operator, signed,
)


def seq(ev, n):
    ev["source"]["seq"] = n
    return ev


def on(topic, result):
    return [o for o in result.outputs if o.topic == topic]


def findings(result):
    codec = FindingCodec(CODEC.registry)
    return [codec.decode(o.value) for o in on(TOPICS.national_quality, result)]


def test_an_update_that_changes_nothing_produces_nothing_downstream(ctx):
    state = {}
    first = process_batch([inbound(signed(seq(event("operator", operator()), 1)))], ctx, state)
    resend = process_batch([inbound(signed(seq(event("operator", operator(), op="u"), 2)))], ctx, state)
    assert len(on(TOPICS.national_changes, first)) == 1
    assert resend.outputs == [] and resend.counts == {("unchanged", "44"): 1}


def test_an_older_event_is_kept_in_the_log_but_flagged_stale(ctx):
    state = {}
    process_batch([inbound(signed(seq(event("operator", operator(status="suspended")), 5)))], ctx, state)
    late = process_batch([inbound(signed(seq(event("operator", operator(), op="u"), 3)))], ctx, state)
    forwarded = on(TOPICS.national_changes, late)
    assert len(forwarded) == 1 and headers(forwarded[0])[th.STALE] == b"true"
    assert late.counts == {("stale", "44"): 1}
    assert [f["rule"] for f in findings(late)] == ["stale_event"]
    assert state[f"entity:operator:{USCC_44}"]["seq"] == 5


def test_registry_beats_the_identifiers_embedded_region(ctx3):
    state = {"reg:plate:京A12345": "31/310115"}  # a Beijing plate registered in Shanghai, Pudong
    result = process_batch([inbound(signed(event("case", case(involved_plate="京A12345"))))], ctx3, state)
    routed = [(o.topic, headers(o)[th.ROUTED_REGION]) for o in result.outputs if o.topic.startswith("t.xprov.")]
    assert routed == [(TOPICS.province_inbound("31"), b"310115")]


def test_an_entry_without_a_region_and_an_unknown_entity_get_the_identifiers_region(ctx3):
    state = {"reg:plate:京A12345": "31"}  # written before entries held a region
    record = case(involved_plate="京A12345", involved_operator_uscc=USCC_11)
    result = process_batch([inbound(signed(event("case", record)))], ctx3, state)
    routed = {o.topic: headers(o)[th.ROUTED_REGION] for o in result.outputs if o.topic.startswith("t.xprov.")}
    assert routed == {TOPICS.province_inbound("31"): b"310000",  # a plate names only its province
                      TOPICS.province_inbound("11"): USCC_11[2:8].encode()}  # a USCC its registration region


def test_a_case_involving_two_other_provinces_reaches_both_with_one_correlation_id(ctx3):
    record = case(involved_plate="京A12345", involved_operator_uscc=USCC_31)
    result = process_batch([inbound(signed(event("case", record)))], ctx3, {})
    routed = {o.topic: headers(o) for o in result.outputs if o.topic.startswith("t.xprov.")}
    assert set(routed) == {TOPICS.province_inbound("11"), TOPICS.province_inbound("31")}
    ids = {h[th.ROUTED_CORRELATION_ID] for h in routed.values()}
    assert len(ids) == 1
    assert routed[TOPICS.province_inbound("31")][th.ROUTED_REASON] == b"involved_operator_uscc"
    assert routed[TOPICS.province_inbound("11")][th.ROUTED_TO] == b"11"


def test_each_stage_of_a_case_is_routed_once_and_later_stages_follow(ctx3):
    state = {}
    filed = process_batch([inbound(signed(seq(event("case", case(involved_plate="京A12345")), 1)))], ctx3, state)
    again = process_batch(
        [inbound(signed(seq(event("case", case(involved_plate="京A12345", penalty_cents=100), op="u"), 2)))],
        ctx3, state)
    decided = process_batch(
        [inbound(signed(seq(event("case", case(stage="decided", involved_plate=None), op="u"), 3)))], ctx3, state)
    assert len(on(TOPICS.province_inbound("11"), filed)) == 1
    assert on(TOPICS.province_inbound("11"), again) == []  # same stage: already delivered
    follow = on(TOPICS.province_inbound("11"), decided)
    assert len(follow) == 1 and headers(follow[0])[th.ROUTED_REASON] == b"follows"
    assert headers(follow[0])[th.ROUTED_REGION] == b"110000"  # nothing involved names a region any more
    assert headers(follow[0])[th.ROUTED_STAGE] == b"decided"
    ids = {headers(o)[th.ROUTED_CORRELATION_ID] for r in (filed, decided) for o in on(TOPICS.province_inbound("11"), r)}
    assert len(ids) == 1


def test_a_vehicle_that_moves_province_notifies_both(ctx3):
    from test_rules import vehicle
    state = {}
    ev11 = event("vehicle", vehicle(plate="京A12345", operator_uscc=USCC_11), province="11")
    process_batch([inbound(signed(ev11), province="11")], ctx3, state)
    assert state["reg:vehicle:京A12345:2"] == f"11/{USCC_11[2:8]}"  # a vehicle's region: its operator's
    moved = event("vehicle", vehicle(plate="京A12345", operator_uscc=USCC_44), province="44")
    result = process_batch([inbound(signed(moved), province="44")], ctx3, state)
    notified = sorted(o.topic for o in result.outputs if o.topic.startswith("t.xprov."))
    assert notified == [TOPICS.province_inbound("11"), TOPICS.province_inbound("44")]
    assert all(headers(o)[th.ROUTED_REASON] == b"moved" for o in result.outputs if o.topic.startswith("t.xprov."))
    regions = {o.topic: headers(o)[th.ROUTED_REGION] for o in result.outputs if o.topic.startswith("t.xprov.")}
    assert regions == {TOPICS.province_inbound("11"): USCC_11[2:8].encode(),  # where it was registered
                       TOPICS.province_inbound("44"): USCC_44[2:8].encode()}  # where it is now
    assert state["reg:vehicle:京A12345:2"] == f"44/{USCC_44[2:8]}"
    assert ("vehicle:京A12345:2", f"44/{USCC_44[2:8]}") in result.ownership


def test_an_update_within_the_province_writes_nothing_to_the_registry(ctx):
    state = {}
    first = process_batch([inbound(signed(seq(event("operator", operator()), 1)))], ctx, state)
    renamed = event("operator", operator(name="新名称运输公司"), op="u")
    update = process_batch([inbound(signed(seq(renamed, 2)))], ctx, state)
    gone = process_batch([inbound(signed(seq(event("operator", operator(), op="d"), 3)))], ctx, state)
    assert first.ownership == [(f"operator:{USCC_44}", f"44/{operator()['region_code']}")]
    assert update.ownership == [] and len(on(TOPICS.national_changes, update)) == 1
    assert gone.ownership == [(f"operator:{USCC_44}", None)] and state.get(f"reg:operator:{USCC_44}") is None


def test_rejected_and_warned_events_publish_their_findings(ctx):
    bad = signed(event("operator", operator(uscc="91440300MA5F0000XX", permit_no=None)))
    result = process_batch([inbound(bad), inbound(b"\x01junk", offset=1)], ctx, {})
    got = {(f["rule"], f["severity"], f["dimension"]) for f in findings(result)}
    assert ("invalid_uscc", "error", "conformity") in got
    assert ("expected_field", "warning", "completeness") in got
    assert ("not_framed", "error", "conformity") in got
    assert result.findings[("44", "conformity", "error")] == 2


def test_a_forged_signature_is_a_provenance_finding(ctx):
    forged = CODEC.encode(event("operator", operator()), b"not the province key at all")
    result = process_batch([inbound(forged)], ctx, {})
    assert [(f["rule"], f["dimension"]) for f in findings(result)] == [("bad_signature", "provenance")]


def test_a_valid_avro_record_of_the_wrong_schema_is_rejected(ctx):
    wrong = FindingCodec(CODEC.registry).encode({
        "finding_id": "x", "rule": "r", "dimension": "d", "severity": "s", "province": "44", "message": "m",
        "source_topic": "t", "source_partition": 0, "source_offset": 0, "detected_ms": 0})
    result = process_batch([inbound(wrong)], ctx, {})
    assert [o.topic for o in result.outputs if o.topic == TOPICS.national_dlq] == [TOPICS.national_dlq]


def test_an_event_with_a_null_entity_key_record_is_rejected(ctx):
    ev = event("operator", operator())
    ev["entity_key"] = ""
    result = process_batch([inbound(signed(ev))], ctx, {})
    assert headers(on(TOPICS.national_dlq, result)[0])[th.DLQ_RULE] == b"entity_key_mismatch"


def test_correlation_id_is_stable_for_a_case():
    assert routing.correlation_id("44", "case:A") == routing.correlation_id("44", "case:A")
    assert routing.correlation_id("44", "case:A") != routing.correlation_id("44", "case:B")


@pytest.fixture
def ctx3():
    from streams.pipeline import StageContext
    from schemas import signing
    from test_pipeline import KEYS, MASTER, registered
    keys = {**KEYS, "31": signing.mac(MASTER, "31".encode())}
    return StageContext(CODEC, TOPICS, registered(keys), frozenset({"11", "31", "44"}))


@pytest.fixture
def ctx():
    from streams.pipeline import StageContext
    from test_pipeline import KEYS, PROVINCES, registered
    return StageContext(CODEC, TOPICS, registered(KEYS), PROVINCES)


def test_content_digest_is_of_the_same_text_earlier_versions_stored(tmp_path):
    import datetime as dt
    import hashlib
    import json

    from schemas.settings import Settings
    from producers.synthetic.generator import SyntheticProvinces
    from schemas.codec import EventCodec
    from schemas.registry import EmbeddedRegistry
    from streams.pipeline import _json_value, content_hash

    settings, codec = Settings(data_dir=tmp_path / "hub"), EventCodec(EmbeddedRegistry())
    records = [codec.decode(codec.encode(g.event, settings.province_key(g.province)))[1]["after"]
               for g in SyntheticProvinces(settings.provinces, 3, 0.0, 0.0, 0.2).events(2000)]
    records = [r for r in records if r is not None]
    records.append({"at": dt.datetime(2024, 1, 1, 1, 2, 3, 123000, tzinfo=dt.timezone.utc),
                    "on": dt.date(2024, 1, 2), "raw": b"\x01\xff", "name": "名", "big": 2 ** 62, "none": None})
    for record in records:
        text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=_json_value, separators=(",", ":"))
        assert content_hash(record) == hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest(), record


def test_a_practitioner_filed_as_working_in_another_province_notifies_home_once_and_changes_no_owner(ctx3):
    from test_rules import practitioner

    id_11 = "110105199001011232"  # passes GB 11643
    state = {}
    home = event("practitioner", practitioner(id_number=id_11, region_code="110105", employer_uscc=USCC_11),
                 province="11")
    process_batch([inbound(signed(seq(home, 5)), province="11")], ctx3, state)
    key = f"practitioner:{id_11}"
    assert state[f"reg:{key}"] == "11/110105"
    # 44 files them as working for a 44 operator: registered in 11 still (region_code), seq of 44's own system
    filing = event("practitioner", practitioner(id_number=id_11, region_code="110105", employer_uscc=USCC_44),
                   province="44")
    filed = process_batch([inbound(signed(seq(filing, 1)))], ctx3, state)
    routed = [(o.topic, headers(o)[th.ROUTED_REASON], headers(o)[th.ROUTED_STAGE], headers(o)[th.ROUTED_REGION])
              for o in filed.outputs if o.topic.startswith("t.xprov.")]
    assert routed == [(TOPICS.province_inbound("11"), b"working_away", b"filed", b"110105")]
    assert filed.counts == {("accepted", "44"): 1}  # not stale against 11's seq 5: its own history
    assert filed.ownership == [] and state[f"reg:{key}"] == "11/110105"  # nothing changed hands
    assert len(on(TOPICS.national_changes, filed)) == 1
    changed = event("practitioner", practitioner(id_number=id_11, region_code="110105", employer_uscc=USCC_44,
                                                 name="张三丰"), province="44", op="u")
    again = process_batch([inbound(signed(seq(changed, 2)))], ctx3, state)
    assert [o for o in again.outputs if o.topic.startswith("t.xprov.")] == []  # the filing is known at home
    ended = event("practitioner", practitioner(id_number=id_11, region_code="110105", employer_uscc=USCC_44),
                  province="44", op="d")
    gone = process_batch([inbound(signed(seq(ended, 3)))], ctx3, state)
    assert [(headers(o)[th.ROUTED_STAGE], headers(o)[th.ROUTED_CORRELATION_ID]) for o in gone.outputs
            if o.topic.startswith("t.xprov.")] == [(b"ended", filed_correlation(filed))]
    assert state[f"reg:{key}"] == "11/110105"
    # 11's own next update is judged against its own history, not 44's filing
    update = process_batch([inbound(signed(seq(event("practitioner", practitioner(
        id_number=id_11, region_code="110105", employer_uscc=USCC_11, name="张三"), province="11", op="u"), 6)),
        province="11")], ctx3, state)
    assert update.counts in ({("accepted", "11"): 1}, {("unchanged", "11"): 1})


def filed_correlation(result):
    return next(headers(o)[th.ROUTED_CORRELATION_ID] for o in result.outputs if o.topic.startswith("t.xprov."))


def test_the_responsible_region_is_the_most_precise_an_involved_entity_names(ctx3):
    record = case(involved_plate="京A12345", involved_operator_uscc=USCC_11)
    state = {f"reg:operator:{USCC_11}": "11/110108"}  # the operator is registered in Haidian
    result = process_batch([inbound(signed(event("case", record)))], ctx3, state)
    routed = [(o.topic, headers(o)[th.ROUTED_REASON], headers(o)[th.ROUTED_REGION]) for o in result.outputs
              if o.topic.startswith("t.xprov.")]
    # the plate names only Beijing; the operator its district, though the plate came first
    assert routed == [(TOPICS.province_inbound("11"), b"involved_plate,involved_operator_uscc", b"110108")]
