"""Parties that are not provinces on the wire: topic names with letter codes, and the stage
refusing a register a party may not publish (``register_not_allowed``)."""

from __future__ import annotations

import pytest
from stdnum.cn import uscc

from schemas import signing
from schemas import topics as th
from schemas.parties import default_parties
from schemas.topics import ANY_PREFIX_CHANGES, TopicNames
from streams.pipeline import PROVENANCE_RULES, StageContext, process_batch

from test_pipeline import CODEC, TOPICS, case, event, headers, inbound, only_dlq, operator, registered

PARTIES = ("44", "11", "CJ", "66")
KEYS = {p: signing.mac(b"test-master", p.encode()) for p in PARTIES}
REGISTERS = {p: frozenset(default_parties()[p].registers) for p in PARTIES}


@pytest.fixture
def ctx():
    return StageContext(CODEC, TOPICS, registered(KEYS), frozenset(PARTIES), registers=REGISTERS)


def signed(ev):
    return CODEC.encode(ev, KEYS[ev["source"]["province"]])


@pytest.mark.parametrize("party", ["CJ", "ZJ", "66", "44"])
def test_topic_names_carry_every_party_code(party):
    names = TopicNames("t.")
    assert names.province_of_changes_topic(names.province_changes(party)) == party
    assert names.party_in_name(names.province_inbound(party)) == party
    assert names.party_in_name(names.stream_state(party)) == party
    assert ANY_PREFIX_CHANGES.search(names.province_changes(party))[1] == party
    assert names.managed_pattern().fullmatch(names.province_receipts(party))


def test_names_that_are_no_party_code_are_not_read_as_one():
    names = TopicNames("t.")
    for topic in ("t.prov.cj.changes", "t.prov.C.changes", "t.prov.C.J.changes", "t.prov.ABCDEFGHI.changes",
                  "t.prov.44.replies", "prov.44.changes"):
        assert names.province_of_changes_topic(topic) is None, topic
    assert th.PROVINCE_CODE == th.PARTY_CODE  # the first name still answers


def test_a_navigation_administration_publishes_a_case(ctx):
    raw = signed(event("case", case(region_code="420100", involved_plate="粤B12345"), province="CJ"))
    result = process_batch([inbound(raw, province="CJ")], ctx, {})
    assert result.counts == {("accepted", "CJ"): 1}
    forwarded = [o for o in result.outputs if o.topic == TOPICS.national_changes]
    assert [o.value for o in forwarded] == [raw]
    routed = [o for o in result.outputs if o.topic == TOPICS.province_inbound("44")]
    assert len(routed) == 1 and headers(routed[0])[th.ROUTED_FROM] == b"CJ"


def test_a_road_register_from_a_navigation_administration_is_refused(ctx):
    raw = signed(event("operator", operator(), province="CJ"))
    result = process_batch([inbound(raw, province="CJ")], ctx, {})
    dead = only_dlq(result)
    assert headers(dead)[th.DLQ_RULE] == b"register_not_allowed"
    assert b"party CJ may not publish the operator register" in headers(dead)[th.DLQ_REASON]
    assert dead.value == raw
    assert not [o for o in result.outputs if o.topic == TOPICS.national_changes]
    assert result.rejects == {("register_not_allowed", "CJ"): 1}
    assert "register_not_allowed" in PROVENANCE_RULES


def test_the_corps_publishes_road_registers(ctx):
    raw = signed(event("operator", operator(), province="66"))
    result = process_batch([inbound(raw, province="66")], ctx, {})
    assert result.counts[("accepted", "66")] == 1


def test_a_refused_register_does_not_stop_the_batch(ctx):
    bad = signed(event("operator", operator(name="第二家"), province="CJ"))
    good = signed(event("operator", operator()))
    result = process_batch([inbound(bad, province="CJ", offset=0), inbound(good, offset=1)], ctx, {})
    assert result.counts == {("rejected", "CJ"): 1, ("accepted", "44"): 1}


def test_without_a_register_list_every_party_publishes_anything():
    open_ctx = StageContext(CODEC, TOPICS, registered(KEYS), frozenset(PARTIES))
    raw = signed(event("operator", operator(), province="CJ"))
    assert process_batch([inbound(raw, province="CJ")], open_ctx, {}).counts == {("accepted", "CJ"): 1}


CORPS_USCC = "91660100MA7800000" + uscc.calc_check_digit("91660100MA7800000")


def test_a_case_involving_an_operator_the_corps_registered_goes_to_the_corps_not_xinjiang(ctx):
    unknown = signed(event("case", case(involved_plate=None, involved_operator_uscc=CORPS_USCC)))
    result = process_batch([inbound(unknown)], ctx, {})
    assert result.counts == {("accepted", "44"): 1}  # the code is valid: not refused
    (routed,) = [o for o in result.outputs if o.topic.startswith("t.xprov.")]
    assert routed.topic == TOPICS.province_inbound("66") and headers(routed)[th.ROUTED_TO] == b"66"
    assert headers(routed)[th.ROUTED_REASON] == b"involved_operator_uscc"
    assert headers(routed)[th.ROUTED_REGION] == b"660100"


def test_the_corps_publishes_an_operator_of_its_own_registration_region(ctx):
    raw = signed(event("operator", operator(uscc=CORPS_USCC, region_code="660100",
                                            permit_no="兵交运管许可石字660100000001"), province="66"))
    result = process_batch([inbound(raw, province="66")], ctx, {})
    assert result.counts == {("accepted", "66"): 1}
