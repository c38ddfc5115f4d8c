"""The hub's submission check as pure decisions: which manifest is trusted, when a receipt is
due, what a repeat or a reuse gets, and what the evidence log is given."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from schemas import evidence, provenance, sm2
from schemas.errors import ProvenanceError
from schemas.provenance import ACCEPTED, REJECTED, TalliedEvent
from sinks import submissions as sub

NOW = dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc)
KEY, OTHER, HUB = sm2.generate(), sm2.generate(), sm2.generate()
KEY_ID = "44-0000abcd"
WAIT = 300.0


def public_key(party, key_id, at):
    registered = {"44-0000abcd": ("44", KEY), "11-0000abcd": ("11", OTHER), "44-dead0000": ("44", None)}
    if key_id not in registered:
        raise ProvenanceError("unknown_key", f"key {key_id!r} is not registered at the hub")
    owner, key = registered[key_id]
    if owner != party:
        raise ProvenanceError("other_party_key", f"key {key_id} belongs to party {owner}, not {party}")
    if key is None:
        raise ProvenanceError("revoked_key", f"key {key_id} of {party} was revoked")
    return key.public_key()


def tallied(n=3, submission="f1"):
    return [TalliedEvent(f"{submission}-{i}", i + 1, sm2.sm3(f"{submission}{i}".encode()), ACCEPTED) for i in range(n)]


def manifest(events, party="44", key_id=KEY_ID, signer=KEY, submission="f1"):
    return provenance.sign_manifest(party=party, key_id=key_id, private=signer, submission_id=submission,
                                    seqs_and_digests=[(e.seq, e.digest) for e in events], created=NOW)


def message(document, party="44", key="f1", offset=7, received=NOW):
    text = document if isinstance(document, str) else provenance.document_bytes(document).decode()
    return sub.ManifestMessage(party, key, text, f"t.prov.{party}.manifests:0:{offset}", received)


def checked(msg):
    return sub.check_manifest(msg, public_key, NOW)


def test_a_good_manifest_is_trusted():
    found = checked(message(manifest(tallied())))
    assert found.refusal == "" and found.submission_id == "f1" and found.loggable


@pytest.mark.parametrize("document, party, rule", [
    (manifest(tallied(), signer=OTHER), "44", "bad_signature"),
    (manifest(tallied(), key_id="44-99999999"), "44", "unknown_key"),
    (manifest(tallied(), key_id="11-0000abcd", signer=OTHER), "44", "other_party_key"),
    (manifest(tallied(), key_id="44-dead0000"), "44", "revoked_key"),
    (manifest(tallied()), "11", "wrong_party"),
    ("{not json", "44", "malformed_manifest"),
])
def test_a_manifest_that_cannot_be_trusted_is_refused_with_its_rule(document, party, rule):
    found = checked(message(document, party=party))
    assert found.refusal.startswith(rule + ": ")
    decided = sub.answer(message(document, party=party), found, None, tallied(), NOW, WAIT)
    assert decided.action == sub.RECEIPT and decided.decision.status == "refused"
    assert decided.findings[0][0] == rule


def test_the_checker_does_the_sm2_arithmetic_of_a_manifest_once_and_still_refuses_what_is_not_signed():
    calls = []

    def counted(document, public):
        calls.append(document["submission_id"])
        return provenance.signature_valid(document, public)

    verified = sub.VerifiedSignatures(counted)
    good, forged = manifest(tallied()), manifest(tallied(), signer=OTHER)
    tampered = {**good, "count": good["count"] + 1}  # the signature of another document
    for _check in range(3):  # a manifest waits for its events through many checks
        assert sub.check_manifest(message(good), public_key, NOW, verified).refusal == ""
        assert sub.check_manifest(message(forged), public_key, NOW, verified).refusal.startswith("bad_signature: ")
        assert sub.check_manifest(message(tampered), public_key, NOW, verified).refusal.startswith("bad_signature: ")
    assert len(calls) == 3  # each once
    # the key's standing is asked at every check: revoked since, the same manifest is refused for it
    revoked = manifest(tallied(), key_id="44-dead0000")
    assert sub.check_manifest(message(revoked), public_key, NOW, verified).refusal.startswith("revoked_key: ")


def test_the_checker_keeps_only_the_most_recent_verifications():
    calls = []

    def counted(document, public):
        calls.append(document["submission_id"])
        return True

    verified = sub.VerifiedSignatures(counted, limit=2)
    first, second, third = (manifest(tallied(submission=s), submission=s) for s in ("f1", "f2", "f3"))
    public = KEY.public_key()
    for document in (first, second, first, third, first, second):
        verified(document, public)
    assert calls == ["f1", "f2", "f3", "f2"]  # f1 was used again before f3 came: f2 went first


def test_a_wrong_party_or_malformed_manifest_is_not_logged_as_a_manifest():
    assert not checked(message(manifest(tallied()), party="11")).loggable
    malformed = checked(message("[]", key="../bad key"))
    assert not malformed.loggable and malformed.submission_id == "unnamed-0-7"


def test_a_trusted_manifest_waits_for_its_events_then_is_answered():
    events = tallied(3)
    msg = message(manifest(events))
    assert sub.answer(msg, checked(msg), None, events[:2], NOW, WAIT).action == sub.WAIT
    complete = sub.answer(msg, checked(msg), None, events, NOW, WAIT)
    assert complete.action == sub.RECEIPT and complete.decision.status == "accepted" and complete.findings == ()
    late = sub.answer(msg, checked(msg), None, events[:2], NOW + dt.timedelta(seconds=WAIT), WAIT)
    assert late.decision.status == "mismatch" and late.findings[0][0] == "events_missing"


def test_a_manifest_is_decided_now_when_refused_receipted_complete_or_waited_out():
    msg = message(manifest(tallied(3)))
    trusted, refused = checked(msg), checked(message(manifest(tallied(3), signer=OTHER)))
    receipted = sub.Receipted("{}", "d", "accepted")
    assert not sub.decides_now(msg, trusted, None, 2, NOW, WAIT)
    assert sub.decides_now(msg, trusted, None, 3, NOW, WAIT)
    assert sub.decides_now(msg, trusted, None, 0, NOW + dt.timedelta(seconds=WAIT), WAIT)
    assert sub.decides_now(msg, refused, None, 0, NOW, WAIT)
    assert sub.decides_now(msg, trusted, receipted, 0, NOW, WAIT)
    assert sub.decides_now(message("{not json"), checked(message("{not json")), None, 0, NOW, WAIT)


def test_counts_include_rejected_events():
    events = [*tallied(2), TalliedEvent("bad", 3, sm2.sm3(b"bad"), REJECTED)]
    msg = message(manifest(events))
    decision = sub.answer(msg, checked(msg), None, events, NOW, WAIT).decision
    assert (decision.status, decision.accepted, decision.rejected) == ("accepted", 2, 1)


def receipt_text(answer):
    return sub.sign(answer, NOW, "hub-1", HUB)


def test_the_same_manifest_again_gets_the_stored_receipt_and_another_is_refused_as_reuse():
    events = tallied()
    first = message(manifest(events))
    text = receipt_text(sub.answer(first, checked(first), None, events, NOW, WAIT))
    stored = sub.receipted_from([text])
    again = message(manifest(events), offset=9)  # a new signature: SM2 signs anew, the manifest differs
    original = message(first.document, offset=8)
    repeat = sub.answer(original, checked(original), stored, events, NOW, WAIT)
    assert repeat.action == sub.REPEAT and repeat.resend == text and repeat.findings[0][0] == sub.REPEATED
    reused = sub.answer(again, checked(again), stored, events, NOW, WAIT)
    assert reused.decision.status == "refused" and reused.findings[0][0] == sub.REUSED


def test_events_without_a_manifest_are_unannounced_after_the_wait():
    assert not sub.unannounced_due(NOW, NOW + dt.timedelta(seconds=WAIT - 1), WAIT)
    assert sub.unannounced_due(NOW, NOW + dt.timedelta(seconds=WAIT), WAIT)
    decided = sub.unannounced("44", "f2", tallied(2, "f2"))
    assert decided.decision.status == "unannounced" and decided.findings[0][0] == sub.UNANNOUNCED
    text = receipt_text(decided)
    assert json.loads(text)["manifest_digest"] == ""


def test_an_answer_logs_manifest_then_receipt_and_the_chain_verifies():
    events = tallied()
    msg = message(manifest(events))
    good = sub.answer(msg, checked(msg), None, events, NOW, WAIT)
    entries = sub.evidence_entries(None, good, receipt_text(good), NOW)
    forged_msg = message(manifest(tallied(2, "f2"), signer=OTHER, submission="f2"), key="f2")
    forged = sub.answer(forged_msg, checked(forged_msg), None, [], NOW, WAIT)
    entries += sub.evidence_entries(entries[-1], forged, receipt_text(forged), NOW)
    wrong_msg = message(manifest(tallied(1, "f3"), submission="f3"), party="11", key="f3")
    wrong = sub.answer(wrong_msg, checked(wrong_msg), None, [], NOW, WAIT)
    entries += sub.evidence_entries(entries[-1], wrong, receipt_text(wrong), NOW)
    assert [(e["index"], e["kind"], e["submission_id"]) for e in entries] == [
        (0, "manifest", "f1"), (1, "receipt", "f1"), (2, "manifest", "f2"), (3, "receipt", "f2"), (4, "receipt", "f3")]
    assert evidence.verify(entries, public_key, HUB.public_key()) == []
    assert json.loads(sub.entry_value(entries[1]))["hash"] == entries[1]["hash"]
