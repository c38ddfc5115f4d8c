"""Signed submissions and the hub's decision: merkle roots, manifests, decide's statuses, receipts."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from schemas import provenance, sm2
from schemas.errors import ProvenanceError
from schemas.provenance import ACCEPTED, DUPLICATE, REJECTED, TalliedEvent

NOW = dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc)
PARTY_KEY = sm2.generate()
HUB_KEY = sm2.generate()


def digests(n):
    return [sm2.sm3(f"event {i}".encode()) for i in range(n)]


def events(n, outcome=ACCEPTED, first_seq=1):
    return [TalliedEvent(f"e{i}", first_seq + i, d, outcome) for i, d in enumerate(digests(n))]


def manifest_of(tallied, submission="f1"):
    return provenance.sign_manifest(party="44", key_id="44-0000abcd", private=PARTY_KEY, submission_id=submission,
                                    seqs_and_digests=[(e.seq, e.digest) for e in tallied], created=NOW)


def test_merkle_root_depends_on_every_digest_and_their_order():
    base = digests(5)
    root = provenance.merkle_root(base)
    assert provenance.merkle_root(list(base)) == root
    assert provenance.merkle_root(base[:4]) != root
    assert provenance.merkle_root([base[1], base[0], *base[2:]]) != root
    assert provenance.merkle_root([*base[:2], sm2.sm3(b"changed"), *base[3:]]) != root
    assert provenance.merkle_root([]) == sm2.sm3(b"")


def test_merkle_root_of_one_digest_is_its_leaf_hash_so_a_leaf_cannot_pass_for_a_node():
    one = digests(1)[0]
    assert provenance.merkle_root([one]) == sm2.sm3(b"\x00" + one)
    pair = digests(2)
    node = provenance.merkle_root(pair)
    assert provenance.merkle_root([node]) != node


def test_a_signed_manifest_parses_and_verifies_and_an_edited_one_does_not():
    manifest = manifest_of(events(3))
    parsed = provenance.parse_manifest(provenance.document_bytes(manifest))
    assert parsed == manifest and (parsed["seq_first"], parsed["seq_last"], parsed["count"]) == (1, 3, 3)
    assert provenance.signature_valid(parsed, PARTY_KEY.public_key())
    assert not provenance.signature_valid({**parsed, "count": 4}, PARTY_KEY.public_key())
    assert not provenance.signature_valid(parsed, sm2.generate().public_key())


@pytest.mark.parametrize("raw", [b"not json", b"[]", json.dumps({"party": "44"}).encode()])
def test_a_manifest_that_is_not_one_is_malformed(raw):
    with pytest.raises(ProvenanceError) as caught:
        provenance.parse_manifest(raw)
    assert caught.value.rule == "malformed_manifest"


def test_decide_accepts_exactly_the_events_named_counting_rejected_and_duplicates():
    tallied = [*events(3), TalliedEvent("e3", 4, sm2.sm3(b"event 3"), REJECTED)]
    resent = [TalliedEvent("e0", 1, tallied[0].digest, DUPLICATE), TalliedEvent("e9", 5, sm2.sm3(b"x"), DUPLICATE)]
    manifest = manifest_of([*tallied, resent[1]])
    decision = provenance.decide(manifest, [*tallied, *resent])
    assert (decision.status, decision.expected, decision.accepted, decision.rejected, decision.duplicate) == \
        ("accepted", 5, 3, 1, 1)
    assert decision.root == manifest["root"] and decision.findings == ()


def test_decide_names_missing_extra_and_altered_events():
    tallied = events(4)
    manifest = manifest_of(tallied)
    missing = provenance.decide(manifest, tallied[:2])
    assert missing.status == "mismatch" and missing.findings[0].startswith("events_missing: 2 of 4")
    extra = provenance.decide(manifest, [*tallied, TalliedEvent("x", 4, sm2.sm3(b"x"), ACCEPTED)])
    assert extra.status == "mismatch" and extra.findings[0].startswith("extra_events: 1")
    altered = provenance.decide(manifest, [*tallied[:3], TalliedEvent("e3", 4, sm2.sm3(b"edited"), ACCEPTED)])
    assert altered.status == "mismatch" and altered.findings[0].startswith("root_mismatch")
    outside = provenance.decide(manifest, [*tallied[:3], TalliedEvent("e3", 40, tallied[3].digest, ACCEPTED)])
    assert any(f.startswith("seq_out_of_range: 1 events outside 1..4") for f in outside.findings)


def test_decide_refuses_with_the_reason_and_says_when_no_manifest_came():
    refused = provenance.decide(manifest_of(events(2)), events(2), refusal="bad_signature: forged")
    assert refused.status == "refused" and refused.findings == ("bad_signature: forged",)
    none = provenance.decide(None, events(2))
    assert none.status == "unannounced" and none.expected == 0 and none.accepted == 2
    assert none.findings[0].startswith("no_manifest: 2 events")


def test_a_tally_read_twice_adds_nothing_and_complete_says_when_every_event_came():
    tallied = events(3)
    manifest = manifest_of(tallied)
    assert not provenance.complete(manifest, tallied[:2] * 2)
    assert provenance.complete(manifest, tallied)
    assert provenance.decide(manifest, tallied * 2).status == "accepted"


def test_a_receipt_is_signed_by_the_hub_names_its_manifest_and_parses():
    manifest = manifest_of(events(2))
    decision = provenance.decide(manifest, events(2))
    receipt = provenance.sign_receipt(party="44", submission_id="f1", manifest=manifest, decision=decision, at=NOW,
                                      hub_key_id="hub-1", hub_private=HUB_KEY)
    parsed = provenance.parse_receipt(provenance.document_bytes(receipt))
    assert parsed["manifest_digest"] == provenance.digest_of(manifest) and parsed["status"] == "accepted"
    assert provenance.signature_valid(parsed, HUB_KEY.public_key())
    assert not provenance.signature_valid({**parsed, "accepted": 3}, HUB_KEY.public_key())
    with pytest.raises(ProvenanceError):
        provenance.parse_receipt(provenance.document_bytes({**parsed, "status": "fine"}))
