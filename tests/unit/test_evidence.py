"""The evidence log: a hash chain of signed manifests and receipts, re-checked offline."""

from __future__ import annotations

import datetime as dt

import pytest

from schemas import evidence, provenance, sm2
from schemas.errors import ProvenanceError
from schemas.provenance import ACCEPTED, TalliedEvent

NOW = dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc)
PARTY_KEY, HUB_KEY = sm2.generate(), sm2.generate()
KEY_ID = "44-0000abcd"


def party_key(party, key_id, at):
    if (party, key_id) != ("44", KEY_ID):
        raise ProvenanceError("unknown_key", f"key {key_id!r} is not registered")
    return PARTY_KEY.public_key()


def submission(submission_id, refuse=False, signer=PARTY_KEY):
    tallied = [TalliedEvent(f"{submission_id}-{i}", i, sm2.sm3(f"{submission_id} {i}".encode()), ACCEPTED)
               for i in range(3)]
    manifest = provenance.sign_manifest(party="44", key_id=KEY_ID, private=signer, submission_id=submission_id,
                                        seqs_and_digests=[(e.seq, e.digest) for e in tallied], created=NOW)
    decision = provenance.decide(manifest, tallied, refusal="bad_signature: forged" if refuse else "")
    receipt = provenance.sign_receipt(party="44", submission_id=submission_id, manifest=manifest, decision=decision,
                                      at=NOW, hub_key_id="hub-1", hub_private=HUB_KEY)
    return provenance.document_bytes(manifest).decode(), provenance.document_bytes(receipt).decode()


def log(*submissions):
    entries, head = [], None
    for submission_id, (manifest, receipt) in submissions:
        for kind, text in (("manifest", manifest), ("receipt", receipt)):
            head = evidence.append(head, kind, "44", submission_id, provenance.now_text(NOW), text)
            entries.append(head)
    return entries


def check(entries, **kw):
    return evidence.verify(entries, party_key, HUB_KEY.public_key(), **kw)


@pytest.fixture
def entries():
    return log(("f1", submission("f1")), ("f2", submission("f2")), ("f3", submission("f3")))


def test_an_untouched_log_verifies(entries):
    assert check(entries) == []
    assert [e["index"] for e in entries] == list(range(6)) and entries[0]["prev"] == evidence.GENESIS


def test_an_altered_entry_is_found_and_named(entries):
    changed = [dict(e) for e in entries]
    changed[3]["document"] = changed[3]["document"].replace('"accepted":3', '"accepted":2')
    problems = check(changed)
    assert [(p.index, p.rule) for p in problems] == [(3, "altered_entry"), (3, "bad_signature")]
    assert str(problems[0]).startswith("entry 3: altered_entry")


def test_an_entry_rehashed_after_an_edit_still_breaks_the_next_link(entries):
    changed = [dict(e) for e in entries]
    e = changed[2]
    e["submission_id"] = "f9"
    e["hash"] = evidence.entry_hash(e["prev"], e["index"], e["kind"], e["party"], e["submission_id"], e["at"],
                                    e["document"])
    assert [(p.index, p.rule) for p in check(changed)] == [(3, "broken_chain")]


def test_a_removed_entry_is_found_at_the_entry_after_it(entries):
    problems = check(entries[:2] + entries[3:])
    assert (3, "missing_or_reordered") in [(p.index, p.rule) for p in problems]
    assert (3, "broken_chain") in [(p.index, p.rule) for p in problems]


def test_reordered_entries_are_found(entries):
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    rules = {(p.index, p.rule) for p in check(swapped)}
    assert {(2, "missing_or_reordered"), (1, "missing_or_reordered"), (2, "broken_chain")} <= rules


def test_a_manifest_not_signed_by_its_party_is_a_problem_unless_the_hub_refused_it():
    forged = sm2.generate()
    accepted_forgery = log(("f1", (submission("f1", signer=forged)[0], submission("f1")[1])))
    assert [(p.index, p.rule) for p in check(accepted_forgery)] == [(0, "bad_signature")]
    refused = log(("f1", submission("f1", refuse=True, signer=forged)))
    assert check(refused) == []


def test_a_slice_verifies_from_the_entry_before_it(entries):
    assert check(entries[2:], first_index=2, first_prev=entries[1]["hash"]) == []
    assert [p.rule for p in check(entries[2:], first_index=2, first_prev=entries[0]["hash"])] == ["broken_chain"]


def test_an_entry_of_an_unknown_kind_is_refused():
    with pytest.raises(ProvenanceError):
        evidence.append(None, "note", "44", "f1", provenance.now_text(NOW), "{}")


def test_two_forged_manifests_for_one_submission_both_refused_are_no_problem_but_an_unrefused_forgery_is():
    forger = sm2.generate()
    first, second = submission("f9", refuse=True, signer=forger), submission("f9", refuse=True, signer=forger)
    assert check(log(("f9", first), ("f9", second))) == []
    forged_manifest, _ = submission("f8", signer=forger)
    _, honest_receipt = submission("f8")
    problems = check(log(("f8", (forged_manifest, honest_receipt))))
    assert [(p.index, p.rule) for p in problems] == [(0, "bad_signature")]
