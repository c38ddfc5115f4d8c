"""Submission ids, the packed parts a spool keeps of a submission, and distinct events (no broker)."""

from __future__ import annotations

import pytest

from producers.errors import SubmissionError
from producers.submissions import (db_submission, distinct_events, file_submission, pack_digests, pack_events,
                                   synthetic_submission, unpack_digests, unpack_events)
from schemas import provenance

FINGERPRINT = "ab" * 32


def test_a_files_submission_comes_from_its_fingerprint_so_a_resend_has_the_same_id():
    first = file_submission("44", "vehicle", FINGERPRINT)
    assert first == file_submission("44", "vehicle", FINGERPRINT) == f"44/file/vehicle/{FINGERPRINT}"
    assert first != file_submission("44", "operator", FINGERPRINT) != file_submission("11", "vehicle", FINGERPRINT)
    assert provenance.SUBMISSION_ID.fullmatch(first)


def test_every_kind_of_id_matches_the_contracts_pattern_even_from_awkward_names():
    ids = [db_submission("44", "db-44-车辆_表 (main)-0a1b2c3d4e", 1001),
           db_submission("CJ", "x" * 300, 7),
           synthetic_submission("65", 11, "9f8e7d6c", 3)]
    assert all(provenance.SUBMISSION_ID.fullmatch(i) for i in ids), ids
    assert ids[0].startswith("44/db/db-44-") and ids[0].endswith("/1001")
    assert db_submission("44", "source", 1) != db_submission("44", "source", 2)


def test_an_id_the_contract_would_refuse_is_refused_here():
    with pytest.raises(SubmissionError):
        file_submission("44", "vehicle", "f" * 200)  # longer than 128 characters


def test_digests_and_events_round_trip_through_their_packed_form():
    pairs = [(1, bytes(range(32))), (2**40, b"\xff" * 32)]
    assert unpack_digests(pack_digests(pairs)) == pairs
    entries = [("prov.44.changes", b"vehicle:\xe7\xb2\xa4B1:2", b"\x00value"), ("t", None, b""), ("t", b"", b"v")]
    assert unpack_events(pack_events(entries)) == entries


def test_a_cut_part_is_refused_rather_than_read_short():
    with pytest.raises(SubmissionError):
        unpack_digests(pack_digests([(1, b"\x01" * 32)])[:-1])
    with pytest.raises(SubmissionError):
        unpack_events(pack_events([("t", b"k", b"value")])[:-2])


def test_the_same_bytes_twice_in_a_submission_are_one_event_at_its_first_seq():
    a, b = provenance.event_digest(b"a"), provenance.event_digest(b"b")
    assert distinct_events([(1, a), (2, b), (1, a)]) == [(1, a), (2, b)]
