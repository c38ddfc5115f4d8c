"""The daily file adapter: one file → signed change events through the durable spool.

Order of a file, for one (province, entity):

1. copy the file into the adapter's state (``adapters/inflight``), fingerprinting it
   (SHA-256 of the content); a fingerprint already done is skipped: the same file twice
   is processed once;
2. parse it, write the error report beside the input, diff it with the last snapshot;
3. record the file as started (its base ``seq`` and ``ts_ms``, the file's mtime);
4. encode and sign the changes in chunks; each chunk goes into the spool together with
   the count spooled so far (the spool's checkpoint), then to the broker;
5. when every event is acknowledged, apply the changes to the snapshot and mark the file
   done in one transaction; only then is the next snapshot compared against it.

Every file is a submission (``producers.submissions``): its events name it in
``source.submission`` (derived from the fingerprint, so a resend has the same id); each
chunk's (seq, digest) pairs and events are kept in the spool with the chunk; once all are
spooled, the manifest is signed with the province's SM2 key and sent, through the spool,
after the broker acknowledged the events. ``check_receipts`` takes the hub's receipts
(``producers.receipts``): a verified one is written beside the file as
``<file>.receipt.json``; a submission without one ``receipt_seconds`` after its manifest is
sent once more (events and the same manifest), then reported missing. ``await_receipts``
waits for those of given files; the drop folder checks them each cycle instead.

A run killed at any step resumes the started file from its kept copy: the diff is
rebuilt identically, chunks already spooled are not spooled again, unacknowledged ones
are resent. ``event_id`` is derived from (province, fingerprint, entity key, op), so a
resend carries the same id and the stream stage drops repeats.

Metrics (``producers.metrics``, adapter ``files``): events count as read when built and
spooled, as sent when the broker acknowledged them; the spool depth follows both.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import uuid
import datetime as dt
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Mapping

from schemas.codec import EventCodec
from schemas import provenance
from schemas.contract import ENTITY_TYPES, change_event
from schemas.errors import EncodeError
from schemas.identifiers import china_today
from schemas.registry import make_registry
from schemas.settings import Settings

from .. import metrics
from .daily_file import ParsedFile, move_aside, parse_daily_file, report_path, write_error_report
from ..errors import AdapterBusyError, EventEncodeError, FileAdapterError, FileRejected
from ..publisher import SpoolPublisher
from ..receipts import ReceiptDesk, ReceiptOutcome
from ..submissions import SubmissionBook, file_submission
from .receipt_files import settle, write_receipt
from .snapshot import Change, FileState, SnapshotStore, diff_snapshot, diff_upserts
from ..spool import Spool
from .tabular import ReadLimits

SYSTEM = "file-adapter"
METRICS_LABEL = "files"
EVENT_NAMESPACE = uuid.UUID("7d0c3b0e-4f5a-5e8e-9a31-2f1d6c0b9e44")
MASS_DELETE_MINIMUM = 20  # snapshots smaller than this are never guarded
Progress = Callable[[str, int, int | None], None]  # (phase "read" | "sent", done, total)


@dataclass(frozen=True)
class FileAdapterOptions:
    incremental: bool = False
    mapping: Mapping[str, str | None] = field(default_factory=dict)
    limits: ReadLimits = ReadLimits()
    chunk: int = 2000
    max_pending: int = 100_000  # spool bound: wait for the broker beyond this many unacknowledged events
    delivery_timeout_s: float = 120.0
    max_delete_share: float | None = 0.5  # refuse a snapshot deleting more than this share; None: no guard
    uscc_allow: frozenset[str] = frozenset()  # early pilot USCCs valid in law that fail the checksum
    today: Callable[[], date] = china_today  # birth dates after this day are row errors
    receipt_seconds: float = 30.0  # wait this long for a receipt before sending the file once more


@dataclass
class FileResult:
    path: Path
    status: str  # loaded | duplicate | rejected
    rows: int = 0
    bad_rows: int = 0
    normalised: int = 0  # identifiers rewritten into canonical form (noted in the report)
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    events: int = 0
    encoding: str = ""
    error_report: Path | None = None
    reason: str | None = None
    moved_to: Path | None = None
    resumed: bool = False
    submission: str | None = None  # None: the file gave no events, there is nothing to receipt
    receipt: Path | None = None  # <file>.receipt.json once a verified receipt came
    receipt_status: str | None = None  # the receipt's status: accepted | mismatch | refused | unannounced
    resent: int = 0  # times the submission was sent again for want of a receipt
    receipt_problem: str | None = None  # a refused receipt, or none after the resend

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def file_event(province: str, entity: str, state: FileState, seq: int, change: Change, snapshot: bool,
               submission: str | None = None) -> dict:
    """The envelope of one change (unsigned); the same inputs always give the same event."""
    event_id = uuid.uuid5(EVENT_NAMESPACE, f"{province}|{state.fingerprint}|{change.key}|{change.op}")
    return change_event(event_id=str(event_id), op=change.op, entity_type=entity, before=change.before,
                        after=change.after, province=province, system=SYSTEM, table=state.name, seq=seq,
                        ts_ms=state.ts_ms, snapshot=snapshot, key=change.key, submission=submission)


class FileAdapter:
    """Loads daily files of one province and entity; one process at a time holds them."""

    def __init__(self, settings: Settings, province: str, entity: str,
                 options: FileAdapterOptions = FileAdapterOptions(), progress: Progress | None = None) -> None:
        if province not in settings.provinces:
            raise FileAdapterError(f"unknown province {province!r}: use one of {', '.join(settings.provinces)}")
        if entity not in ENTITY_TYPES:
            raise FileAdapterError(f"unknown entity {entity!r}: use one of {', '.join(ENTITY_TYPES)}")
        refusal = settings.parties().refusal(province, entity)
        if refusal is not None:  # before anything is read: the hub would refuse every event of it
            raise FileAdapterError(f"register_not_allowed: {refusal}")
        self.settings, self.province, self.entity, self.options = settings, province, entity, options
        self._progress = progress or (lambda _phase, _done, _total: None)
        state_dir = settings.data_dir / "adapters"
        self.inflight_dir = state_dir / "inflight" / f"{province}.{entity}"
        self.inflight_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(state_dir / f"files.{province}.{entity}.lock")
        try:
            self.store = SnapshotStore(state_dir / f"files.{province}.{entity}.db")
            self.spool = Spool(settings.spool_dir / f"files.{province}.{entity}.db")
        except BaseException:
            os.close(self._lock)
            raise
        self._codec = EventCodec(make_registry(settings.schema_registry_url or None))
        self._key = settings.province_key(province)
        self._topic = settings.topics.province_changes(province)
        self.book = SubmissionBook(self.spool, province, settings.topics.province_manifests(province), keep_events=True)
        self._publisher: SpoolPublisher | None = None
        self._desk: ReceiptDesk | None = None
        metrics.spool_depth(province, METRICS_LABEL, self.spool.depth())

    def process(self, path: Path) -> FileResult:
        """Finish any interrupted file, then load ``path``; a rejected file is moved aside."""
        self.resume()
        path = Path(path)
        copy, fingerprint, mtime_ms = self._take_copy(path)
        known = self.store.file(fingerprint)
        if known is not None:
            copy.unlink()
            return FileResult(path, "duplicate", reason=f"same content as {known.name}, already processed")
        try:
            parsed = self._parse(copy)
            changes = self._diff(parsed)
        except FileRejected as exc:
            copy.unlink()
            return FileResult(path, "rejected", reason=str(exc), moved_to=move_aside(path, exc))
        result = self._counts(FileResult(path, "loaded", rows=parsed.rows, encoding=parsed.encoding), parsed, changes)
        if parsed.failures or parsed.notes:
            result.error_report = write_error_report(path, parsed.failures + parsed.notes)
        else:
            report_path(path).unlink(missing_ok=True)
        kept = copy.replace(self.inflight_dir / f"{fingerprint}{path.suffix.lower()}")
        state = self.store.begin(fingerprint, path.name, mtime_ms, kept)
        result.submission = self._emit(state, changes, path)
        return result

    def resume(self) -> list[FileResult]:
        """Send what the spool still holds, then finish every file a crash interrupted."""
        if self.spool.depth():
            self._drain()
        results = []
        for state in self.store.unfinished():
            copy = Path(state.copy)
            if not copy.exists():
                raise FileAdapterError(f"interrupted file {state.name} cannot be resumed: its kept copy {copy} is gone")
            parsed = self._parse(copy)
            changes = self._diff(parsed, guard=False)
            place = self._placed(state.fingerprint)
            result = self._counts(FileResult(place or Path(state.name), "loaded", rows=parsed.rows,
                                             encoding=parsed.encoding, resumed=True), parsed, changes)
            result.submission = self._emit(state, changes, place)
            results.append(result)
        return results

    def relocate(self, submission: str, path: Path) -> None:
        """The file of ``submission`` moved to ``path``: its receipt goes beside it there."""
        self.book.relocate(submission, str(path))

    def check_receipts(self, timeout: float = 0.0) -> list[ReceiptOutcome]:
        """Take the receipts that came (waiting up to ``timeout`` for the first), writing each verified
        one beside its file; send once more, and send, a submission whose receipt is overdue."""
        if self.options.receipt_seconds <= 0:
            return []
        outcomes = self._ensure_desk().check(timeout)
        for outcome in outcomes:
            if outcome.outcome == "received" and outcome.place and outcome.receipt is not None:
                write_receipt(Path(outcome.place), outcome.receipt)
        if any(outcome.outcome == "resent" for outcome in outcomes):
            self._drain()
        return outcomes

    def await_receipts(self, results: list[FileResult], poll_s: float = 0.5) -> list[FileResult]:
        """Wait until each loaded file of ``results`` has a verified receipt or is reported without
        one (after its resend); the results say which."""
        return settle(self, results, poll_s)

    def close(self) -> None:
        try:
            if self._desk is not None:
                self._desk.close()
            if self._publisher is not None:
                self._publisher.close()
        finally:
            self.spool.close()
            self.store.close()
            os.close(self._lock)

    def __enter__(self) -> "FileAdapter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take_copy(self, path: Path) -> tuple[Path, str, int]:
        """Copy the file into the adapter's state while hashing it: (copy, fingerprint, mtime ms)."""
        incoming = self.inflight_dir / f"incoming{path.suffix.lower()}"
        digest = hashlib.sha256()
        try:
            mtime_ms = path.stat().st_mtime_ns // 1_000_000
            with open(path, "rb") as src, open(incoming, "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
        except OSError as exc:
            raise FileAdapterError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return incoming, digest.hexdigest(), mtime_ms

    def _parse(self, copy: Path) -> ParsedFile:
        return parse_daily_file(copy, self.entity, self.options.mapping, self.options.limits,
                                self.options.uscc_allow, lambda rows: self._progress("read", rows, None),
                                self.options.today())

    def _diff(self, parsed: ParsedFile, guard: bool = True) -> list[Change]:
        previous = self.store.records()
        if self.options.incremental:
            return diff_upserts(previous, parsed.current)
        changes = diff_snapshot(previous, parsed.current, parsed.bad_keys)
        deletes = sum(1 for c in changes if c.op == "d")
        share = self.options.max_delete_share
        if guard and share is not None and len(previous) >= MASS_DELETE_MINIMUM and deletes > share * len(previous):
            raise FileRejected("mass_delete", f"this snapshot would delete {deletes} of {len(previous)} "
                               f"{self.entity} records (more than {share:.0%}); if that is right, load it "
                               f"with --allow-mass-delete")
        return changes

    def _counts(self, result: FileResult, parsed: ParsedFile, changes: list[Change]) -> FileResult:
        result.bad_rows = len(parsed.failures)
        result.normalised = len(parsed.notes)
        result.creates = sum(1 for c in changes if c.op == "c")
        result.updates = sum(1 for c in changes if c.op == "u")
        result.deletes = sum(1 for c in changes if c.op == "d")
        result.events = len(changes)
        return result

    def _emit(self, state: FileState, changes: list[Change], place: Path | None) -> str | None:
        """Spool the changes not spooled yet and the file's manifest, send them, and commit the file
        once all are acknowledged; returns the file's submission id (None when it gave no events)."""
        start = self._spooled(state.fingerprint)
        publisher = self._ensure_publisher()
        snapshot = not self.options.incremental
        encode, topic, key, chunk = self._codec.encode, self._topic, self._key, self.options.chunk
        submission = file_submission(self.province, self.entity, state.fingerprint)
        total = len(changes)
        for first in range(start, total, chunk):
            entries, digests = [], []
            for index in range(first, min(first + chunk, total)):
                change = changes[index]
                seq = state.base_seq + index + 1
                event = file_event(self.province, self.entity, state, seq, change, snapshot, submission)
                try:
                    value = encode(event, key)
                except EncodeError as exc:
                    raise EventEncodeError(f"{state.name} row {change.row} ({change.key}): {exc}") from exc
                entries.append((topic, change.key.encode("utf-8"), value))
                digests.append((seq, provenance.event_digest(value)))
            done = first + len(entries)
            position = {"file": state.fingerprint, "spooled": done, "path": str(place) if place else None}
            self.spool.append(entries, checkpoint=json.dumps(position),
                              statements=[self.book.part(submission, first, digests, entries)])
            metrics.events_read(self.province, METRICS_LABEL, len(entries))
            metrics.spool_depth(self.province, METRICS_LABEL, self.spool.depth())
            publisher.send()
            publisher.commit_delivered()
            self._progress("spooled", done, total)
            if self.spool.depth() > self.options.max_pending:
                self._drain()
        if total:
            self._close_submission(submission, place)
        self._drain()
        self.store.commit(state, changes, int(time.time() * 1000))
        Path(state.copy).unlink(missing_ok=True)
        self._progress("sent", total, total)
        return submission if total else None

    def _close_submission(self, submission: str, place: Path | None) -> None:
        """Sign the file's manifest over every event it spooled, and hold it until they are acknowledged."""
        if self.book.get(submission) is not None:
            return  # closed before a crash: the same manifest is sent
        party = self.settings.party_key(self.province)
        manifest = provenance.sign_manifest(party=self.province, key_id=party.key_id, private=party.private,
                                            submission_id=submission,
                                            seqs_and_digests=self.book.seqs_and_digests(submission),
                                            created=dt.datetime.now(dt.timezone.utc))
        self.spool.write([self.book.close(manifest, str(place) if place else None)])

    def _placed(self, fingerprint: str) -> Path | None:
        """Where the file an interrupted run was loading lay, as its spool checkpoint says."""
        checkpoint = self.spool.checkpoint()
        position = json.loads(checkpoint) if checkpoint else {}
        return Path(position["path"]) if position.get("file") == fingerprint and position.get("path") else None

    def _spooled(self, fingerprint: str) -> int:
        checkpoint = self.spool.checkpoint()
        if not checkpoint:
            return 0
        position = json.loads(checkpoint)
        return int(position["spooled"]) if position.get("file") == fingerprint else 0

    def _drain(self) -> int:
        """Send every pending entry and wait for the broker; raises ``PublishError`` when it does not answer."""
        return self._ensure_publisher().drain()

    def _ensure_publisher(self) -> SpoolPublisher:
        if self._publisher is None:
            timeout_ms = int(self.options.delivery_timeout_s * 1000)
            conf = self.settings.kafka_conf(**{"message.timeout.ms": timeout_ms})
            self._publisher = SpoolPublisher(self.spool, conf, flush_timeout=self.options.delivery_timeout_s + 30,
                                             on_acked=self._acked, book=self.book)
        return self._publisher

    def _ensure_desk(self) -> ReceiptDesk:
        if self._desk is None:
            settings = self.settings
            self._desk = ReceiptDesk(
                settings.kafka_conf(), settings.topics.province_receipts(self.province),
                f"{settings.topic_prefix}roadx-files-{self.province}-{self.entity}-receipts", self.province,
                settings.party_keys(self.province).hub_public, self.book, METRICS_LABEL, self.options.receipt_seconds)
        return self._desk

    def _acked(self, n: int) -> None:
        metrics.events_sent(self.province, METRICS_LABEL, n)
        metrics.spool_depth(self.province, METRICS_LABEL, self.spool.depth())


def _lock(path: Path) -> int:
    """An exclusive lock held while the adapter runs; a second adapter fails at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise AdapterBusyError(f"another file adapter is running for this province and entity ({path})") from exc
    return fd
