"""Submissions: every batch an adapter sends, closed by a signed manifest and answered by a receipt.

A submission is a file (the file adapter), one poll batch of a database (the database
adapter) or one chunk of a synthetic province. Each of its events names it in
``source.submission``; its manifest (``schemas.provenance.sign_manifest``, signed with the
party's SM2 key) holds the SM3 Merkle root of the digests of the events' framed, signed bytes
exactly as they were spooled, so the digest of each event is taken once, when it is encoded.

The ``SubmissionBook`` keeps every submission in the adapter's spool file, so it moves with
the events it names:

- ``submission_parts``: the (seq, digest) of each event, one row per spooled chunk, written
  in the same transaction as the chunk; with ``keep_events`` also the events themselves
  (topic, key, value) so that the submission can be sent again when no receipt comes;
- ``submissions``: the signed manifest and its state::

      held ──(every event up to after_entry acknowledged: release)──► sent ──► receipted
                ▲                                                       │
                └────────────(no receipt in time: resend, once)─────────┤
                                                                        └──► missing (still accepts a late receipt)

A manifest is *released* into the spool's entries (topic ``prov.<P>.manifests``, key the
submission id) only once no entry spooled before it is still waiting for the broker: so the
broker has acknowledged the events before it sees their manifest, and a crash anywhere
leaves the manifest either held or pending in the spool, never lost.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from schemas import provenance

from .errors import SubmissionError
from .spool import Spool, Statement

HELD, SENT, RECEIPTED, MISSING = "held", "sent", "receipted", "missing"
STATES = (HELD, SENT, RECEIPTED, MISSING)
_UNSAFE = re.compile(r"[^0-9A-Za-z.-]+")
_SEQ_DIGEST = struct.Struct(">q32s")
_LENGTHS = struct.Struct(">HII")  # topic, key (0xFFFFFFFF: none), value

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submission_parts (
    submission TEXT    NOT NULL,
    part       INTEGER NOT NULL,
    digests    BLOB    NOT NULL,
    events     BLOB,
    PRIMARY KEY (submission, part)
);
CREATE TABLE IF NOT EXISTS submissions (
    submission     TEXT PRIMARY KEY,
    state          TEXT    NOT NULL,
    manifest       BLOB    NOT NULL,
    after_entry    INTEGER NOT NULL,
    manifest_entry INTEGER,
    released_ms    INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    place          TEXT,
    receipt        BLOB,
    status         TEXT,
    problem        TEXT
);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions (state);
"""


# -- ids -------------------------------------------------------------------------------------
def _token(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def _checked(submission: str) -> str:
    if not provenance.SUBMISSION_ID.fullmatch(submission):
        raise SubmissionError(f"{submission!r} is not a submission id")
    return submission


def file_submission(province: str, entity: str, fingerprint: str) -> str:
    """A file's submission: the same content always has the same id, so a resend has it too."""
    return _checked(f"{_token(province)}/file/{_token(entity)}/{_token(fingerprint)}")


def db_submission(province: str, source: str, first_seq: int) -> str:
    """A database poll batch's submission: its source and the ``source.seq`` it starts at."""
    return _checked(f"{_token(province)}/db/{_token(source)[:80]}/{first_seq}")


def synthetic_submission(province: str, seed: int, run: str, chunk: int) -> str:
    """A synthetic chunk's submission: the seed, the run and the province's chunk number in it."""
    return _checked(f"{_token(province)}/synthetic/{seed}/{_token(run)}/{chunk}")


# -- parts -----------------------------------------------------------------------------------
def pack_digests(seqs_and_digests: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(_SEQ_DIGEST.pack(seq, digest) for seq, digest in seqs_and_digests)


def unpack_digests(blob: bytes) -> list[tuple[int, bytes]]:
    if len(blob) % _SEQ_DIGEST.size:
        raise SubmissionError(f"a submission part of {len(blob)} bytes is not whole (seq, digest) pairs")
    return list(_SEQ_DIGEST.iter_unpack(blob))


def pack_events(entries: Iterable[tuple[str, bytes | None, bytes]]) -> bytes:
    out = bytearray()
    for topic, key, value in entries:
        name = topic.encode("utf-8")
        out += _LENGTHS.pack(len(name), 0xFFFFFFFF if key is None else len(key), len(value))
        out += name + (key or b"") + value
    return bytes(out)


def unpack_events(blob: bytes) -> list[tuple[str, bytes | None, bytes]]:
    entries, at = [], 0
    while at < len(blob):
        if at + _LENGTHS.size > len(blob):
            raise SubmissionError("a kept submission part ends inside an entry")
        topic_len, key_len, value_len = _LENGTHS.unpack_from(blob, at)
        at += _LENGTHS.size
        topic = blob[at:at + topic_len].decode("utf-8")
        at += topic_len
        key = None
        if key_len != 0xFFFFFFFF:
            key, at = blob[at:at + key_len], at + key_len
        value, at = blob[at:at + value_len], at + value_len
        if len(value) != value_len:
            raise SubmissionError("a kept submission part ends inside an entry")
        entries.append((topic, key, value))
    return entries


def distinct_events(seqs_and_digests: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Each event once: the same bytes sent twice in a submission (a duplicate of the same event) is one event."""
    seen: dict[bytes, int] = {}
    for seq, digest in seqs_and_digests:
        seen.setdefault(digest, seq)
    return [(seq, digest) for digest, seq in seen.items()]


# -- the book --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    submission: str
    state: str
    manifest: dict[str, Any]
    attempts: int
    released_ms: int | None
    place: str | None
    status: str | None
    problem: str | None


class SubmissionBook:
    """The submissions of one spool (one party): parts, manifests, their release and receipts."""

    def __init__(self, spool: Spool, party: str, manifest_topic: str, keep_events: bool = False,
                 clock: Any = time.time) -> None:
        self.spool, self.party, self.topic, self.keep_events = spool, party, manifest_topic, keep_events
        self._clock = clock
        spool.add_tables(_SCHEMA)
        self._held = self._count(HELD)

    # writing, in the caller's spool transaction
    def part(self, submission: str, part: int, seqs_and_digests: Sequence[tuple[int, bytes]],
             entries: Sequence[tuple[str, bytes | None, bytes]] = ()) -> Statement:
        """The statement that keeps one chunk's (seq, digest) pairs (and with ``keep_events`` its entries)."""
        events = pack_events(entries) if self.keep_events else None
        return ("INSERT OR REPLACE INTO submission_parts (submission, part, digests, events) VALUES (?, ?, ?, ?)",
                [(submission, part, pack_digests(seqs_and_digests), events)])

    def close(self, manifest: dict[str, Any], place: str | None = None) -> Statement:
        """The statement that holds a signed manifest until every entry spooled so far is acknowledged
        (nothing when the submission is closed already)."""
        self._held += 1
        return ("INSERT INTO submissions (submission, state, manifest, after_entry, place) VALUES "
                "(?, 'held', ?, coalesce((SELECT max(id) FROM entries), 0), ?) ON CONFLICT (submission) DO NOTHING",
                [(manifest["submission_id"], provenance.document_bytes(manifest), place)])

    def seqs_and_digests(self, submission: str) -> list[tuple[int, bytes]]:
        rows = self.spool.select("SELECT digests FROM submission_parts WHERE submission = ? ORDER BY part",
                                 (submission,))
        return [pair for (blob,) in rows for pair in unpack_digests(blob)]

    def get(self, submission: str) -> Submission | None:
        rows = self.spool.select("SELECT submission, state, manifest, attempts, released_ms, place, status, problem "
                                 "FROM submissions WHERE submission = ?", (submission,))
        return _row(rows[0]) if rows else None

    def waiting(self) -> list[Submission]:
        """Submissions with no verified receipt yet (held, sent or missing)."""
        rows = self.spool.select("SELECT submission, state, manifest, attempts, released_ms, place, status, problem "
                                 "FROM submissions WHERE state != 'receipted' ORDER BY rowid")
        return [_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        found = dict(self.spool.select("SELECT state, count(*) FROM submissions GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    # moving on
    def release_statements(self) -> list[Statement]:
        """Statements releasing, in the caller's transaction after its acknowledgements, the manifests
        of the submissions whose events are now all acknowledged (none while no manifest is held)."""
        if self._held <= 0:
            return []
        now = int(self._clock() * 1000)
        return [
            ("UPDATE submissions SET state = 'releasing' WHERE state = 'held' AND after_entry < "
             "coalesce((SELECT min(id) FROM entries), 1 << 62)", [()]),
            ("INSERT INTO entries (topic, key, value) SELECT ?, CAST(submission AS BLOB), manifest FROM submissions "
             "WHERE state = 'releasing' ORDER BY rowid", [(self.topic,)]),
            ("UPDATE submissions SET state = 'sent', released_ms = ?, manifest_entry = (SELECT max(id) FROM entries "
             "WHERE topic = ? AND key = CAST(submissions.submission AS BLOB)) WHERE state = 'releasing'",
             [(now, self.topic)])]

    def released(self) -> None:
        """The caller ran ``release_statements``: count the manifests still held again."""
        if self._held > 0:
            self._held = self._count(HELD)

    def release_ready(self) -> int:
        """Put into the spool the manifests of submissions whose events the broker has all acknowledged."""
        if self._held <= 0:
            return 0
        first = self.spool.first_pending()
        rows = self.spool.select(
            "SELECT submission, manifest FROM submissions WHERE state = 'held' AND after_entry < ? ORDER BY rowid",
            (first if first is not None else 1 << 62,))
        if not rows:
            return 0
        now = int(self._clock() * 1000)
        statements: list[Statement] = []
        for submission, manifest in rows:
            statements.append(("INSERT INTO entries (topic, key, value) VALUES (?, ?, ?)",
                               [(self.topic, submission.encode("utf-8"), manifest)]))
            statements.append(("UPDATE submissions SET state = 'sent', released_ms = ?, "
                               "manifest_entry = last_insert_rowid() WHERE submission = ?", [(now, submission)]))
        self.spool.write(statements)
        self._held = self._count(HELD)
        return len(rows)

    def manifest_acknowledged(self, submission: str) -> bool:
        rows = self.spool.select("SELECT manifest_entry FROM submissions WHERE submission = ?", (submission,))
        if not rows or rows[0][0] is None:
            return False
        return not self.spool.select("SELECT 1 FROM entries WHERE id = ?", (rows[0][0],))

    def resend(self, submission: str) -> int:
        """Spool the submission's kept events again and hold its same manifest until they are
        acknowledged; returns how many events."""
        rows = self.spool.select("SELECT events FROM submission_parts WHERE submission = ? ORDER BY part",
                                 (submission,))
        if not rows or any(events is None for (events,) in rows):
            raise SubmissionError(f"submission {submission}: its events were not kept, it cannot be sent again")
        entries = [entry for (events,) in rows for entry in unpack_events(events)]
        self.spool.append(entries, statements=[(
            "UPDATE submissions SET state = 'held', attempts = attempts + 1, "
            "after_entry = coalesce((SELECT max(id) FROM entries), 0) WHERE submission = ?", [(submission,)])])
        self._held = self._count(HELD)
        return len(entries)

    def missing(self, submission: str, problem: str) -> None:
        self.spool.write([("UPDATE submissions SET state = 'missing', problem = ? WHERE submission = ?",
                           [(problem, submission)])])

    def note(self, submission: str, problem: str) -> None:
        self.spool.write([("UPDATE submissions SET problem = ? WHERE submission = ?", [(problem, submission)])])

    def relocate(self, submission: str, place: str) -> None:
        self.spool.write([("UPDATE submissions SET place = ? WHERE submission = ?", [(place, submission)])])

    def receipted(self, submission: str, receipt: dict[str, Any], problem: str | None = None) -> None:
        """Keep a verified receipt; the kept events and digests of the submission are no longer needed."""
        self.spool.write([
            ("UPDATE submissions SET state = 'receipted', receipt = ?, status = ?, problem = ? WHERE submission = ?",
             [(provenance.document_bytes(receipt), receipt["status"], problem, submission)]),
            ("DELETE FROM submission_parts WHERE submission = ?", [(submission,)])])

    def receipt(self, submission: str) -> bytes | None:
        rows = self.spool.select("SELECT receipt FROM submissions WHERE submission = ?", (submission,))
        return rows[0][0] if rows else None

    def _count(self, state: str) -> int:
        return int(self.spool.select("SELECT count(*) FROM submissions WHERE state = ?", (state,))[0][0])


def _row(row: tuple) -> Submission:
    submission, state, manifest, attempts, released_ms, place, status, problem = row
    return Submission(submission, state, provenance.parse_manifest(manifest), int(attempts), released_ms, place,
                      status, problem)
