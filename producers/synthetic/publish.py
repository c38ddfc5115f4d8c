"""Publish synthetic provinces: generate, encode and sign, spool per province, drain to Kafka.

Each province writes to its own spool ``<spool_dir>/<P>.db`` and topic
``prov.<P>.changes``; messages are keyed by entity key and signed with the province's
key. An event that refers to another party's entity the line can only learn from that party (a
case naming a navigation administration's ship: ``Generated.after``) is buffered only once that
entity's event is spooled and sent (when that party still holds it, its chunk closes early); and,
given ``settle``, its chunk is sent only once the caller says the line has taken in that party's
events sent before it: the line learns who registered a ship only from the ship's own event, in
whatever order it reads the parties' topics. A duplicate is the same event encoded again, which
gives the same bytes.
Entries left pending in a spool by an earlier interrupted run are sent first and
counted apart (``resent_earlier``): nothing spooled is lost. With ``resume=True`` a
restarted run also continues after each province's checkpoint ``{"seed", "generated"}``:
the generator is deterministic by seed, so it regenerates and skips what the spool
already holds (``skipped``) instead of spooling it again as new work. ``Pacer`` keeps
generation to a rate (events per second); a set ``stop`` ends the run after the chunk in hand.

Each province's chunk is a submission (``producers.submissions``): its events name it in
``source.submission`` (province, seed, a token of the run, the chunk's number); its manifest,
signed with the province's SM2 key over the digests of the events as spooled, is held in the
spool with the chunk and sent once the broker acknowledged them. A duplicate sent within the
chunk of its original is the same bytes, one event of the manifest; in a later chunk it is
that chunk's event (the hub counts it duplicate). Receipts are not awaited here: the demo,
chaos and bench read them where they check the hub. ``manifests=False`` sends the events
alone, naming no submission (the line as it was before manifests, for comparison).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from schemas import provenance
from schemas.codec import EventCodec
from schemas.errors import EncodeError
from schemas.registry import make_registry
from schemas.settings import Settings

from .. import metrics
from ..errors import EventEncodeError, GeneratorConfigError
from .generator import SyntheticProvinces
from ..publisher import SpoolPublisher, make_producer
from ..spool import Spool
from ..submissions import SubmissionBook, distinct_events, synthetic_submission

Progress = Callable[[int, int], None]
LATE_CHUNKS = 2  # a chunk waiting for what it refers to fills up to this many chunks, then waits
ADAPTER = "synthetic"


@dataclass
class SyntheticReport:
    produced: int
    valid: int
    duplicates: int
    invalid: int
    per_province: dict[str, int]
    expected_routed: dict[str, int]
    cross_province_cases: int = 0
    resent_earlier: int = 0
    skipped: int = 0  # regenerated on resume, already in the spool from an earlier run
    per_province_kind: dict[str, dict[str, int]] = field(default_factory=dict)


def publish_synthetic(settings: Settings, total: int, seed: int, duplicate_rate: float = 0.02,
                      invalid_rate: float = 0.01, progress: Progress | None = None, *,
                      cross_province_case_share: float = 0.15, chunk: int = 2000, resume: bool = False,
                      on_spooled: Callable[[int], None] | None = None,
                      stop: threading.Event | None = None, manifests: bool = True,
                      seal: bool = False, settle: Callable[[str], Callable[[bool], bool]] | None = None
                      ) -> SyntheticReport:
    """Generate ``total`` events for ``settings.provinces`` and publish them; returns the counts.

    ``resume``: skip, per province, the events up to its spool checkpoint (same seed only).
    ``on_spooled(generated)`` is called after each spool append with how many events the
    generator has yielded so far (a pacing or progress hook). Once ``stop`` is set, generation
    ends after the chunk in hand, which is delivered; the events buffered but not spooled are
    generated again by a resumed run. ``seal``: each province seals the licences it issues with its
    own key (``SyntheticProvinces``: about a fifth of the generation rate; the demo seals, bench fills do not).
    ``settle(party)``: called once the party's events sent so far are delivered, when an event
    referring to one of them is buffered; it returns ``taken_in(block)``, asked before that event's
    chunk is sent, which says whether the line has taken them in (the demo: whether the stream
    worker has committed the party's topic up to where it ended when ``settle`` was called) and
    with ``block`` waits until it has. A chunk whose answer is no yet keeps filling, up to
    ``LATE_CHUNKS`` chunks, and is asked again every quarter chunk; then, and at the end, it waits.
    """
    if total < 0 or chunk < 1:
        raise GeneratorConfigError(f"total must not be negative and chunk must be positive, got {total} and {chunk}")
    seal_keys = {p: settings.party_key(p) for p in settings.provinces} if seal else None
    generator = SyntheticProvinces(settings.provinces, seed, duplicate_rate, invalid_rate, cross_province_case_share,
                                   seal_keys=seal_keys)
    codec = EventCodec(make_registry(settings.schema_registry_url or None))
    keys = {p: settings.province_key(p) for p in settings.provinces}
    topics = {p: settings.topics.province_changes(p) for p in settings.provinces}
    spools: dict[str, Spool] = {}
    run = uuid.uuid4().hex[:8]
    try:
        for province in settings.provinces:
            spools[province] = Spool(settings.spool_dir / f"{province}.db")
        spooled_upto = {p: resume_point(spool, seed, total) for p, spool in spools.items()} if resume else {}
        books = {p: SubmissionBook(spool, p, settings.topics.province_manifests(p)) for p, spool in spools.items()}
        party_keys = {p: settings.party_key(p) for p in settings.provinces} if manifests else {}
        producer = make_producer(settings.kafka_conf())
        publishers = {p: SpoolPublisher(spool, producer=producer, on_acked=_acked_counter(p, spool), book=books[p])
                      for p, spool in spools.items()}
        resent = sum(publisher.drain() for publisher in publishers.values())
        buffers: dict[str, list[tuple[str, bytes, bytes]]] = {p: [] for p in settings.provinces}
        digests: dict[str, list[tuple[int, bytes]]] = {p: [] for p in settings.provinces}
        chunks = {p: 0 for p in settings.provinces}
        unsettled: set[str] = set()  # parties that sent events since their last ``settle``
        settled: dict[str, Callable[[bool], bool]] = {}  # party → what its last ``settle`` returned
        waits: dict[str, dict[str, Callable[[bool], bool]]] = {p: {} for p in settings.provinces}  # before a chunk goes
        due = {p: chunk for p in settings.provinces}  # the buffer's length at which its chunk is tried next
        submissions = {p: synthetic_submission(p, seed, run, 0) if manifests else None for p in settings.provinces}
        acked = 0

        def closing(province: str) -> list:
            """The statement holding the chunk's signed manifest; the next chunk opens the next submission."""
            if not manifests:
                return []
            key = party_keys[province]
            manifest = provenance.sign_manifest(
                party=province, key_id=key.key_id, private=key.private, submission_id=str(submissions[province]),
                seqs_and_digests=distinct_events(digests[province]), created=dt.datetime.now(dt.timezone.utc))
            digests[province].clear()
            chunks[province] += 1
            submissions[province] = synthetic_submission(province, seed, run, chunks[province])
            return [books[province].close(manifest)]

        def spool_and_send(province: str, generated: int, late: bool = False) -> None:
            """Send the province's buffer; unless ``late``, not yet while what it refers to is not taken in."""
            nonlocal acked
            block = late or len(buffers[province]) >= LATE_CHUNKS * chunk
            if not all(taken_in(block) for taken_in in waits[province].values()):
                due[province] = len(buffers[province]) + max(chunk // 4, 1)
                return
            waits[province].clear()
            due[province] = chunk
            metrics.events_read(province, ADAPTER, len(buffers[province]))
            appended = spools[province].append_entries(
                buffers[province], checkpoint=json.dumps({"seed": seed, "generated": generated}),
                statements=closing(province))
            buffers[province].clear()
            unsettled.add(province)
            metrics.spool_depth(province, ADAPTER, spools[province].depth())
            if on_spooled is not None:
                on_spooled(generated)
            publishers[province].publish(appended)
            acked += publishers[province].commit_delivered()
            if progress is not None:
                progress(acked, total)

        encode = codec.encode
        generated = skipped = 0
        for item in generator.events(total):
            generated += 1
            province, event = item.province, item.event
            if generated <= spooled_upto.get(province, 0):
                skipped += 1
                continue
            if item.after is not None:  # what the event refers to goes first, when it is still held
                party, key = item.after[0], item.after[1].encode("utf-8")
                if any(held == key for _topic, held, _value in buffers[party]):
                    spool_and_send(party, generated)
                if settle is not None and party in unsettled:
                    producer.flush()
                    acked += publishers[party].commit_delivered()
                    settled[party] = settle(party)
                    unsettled.discard(party)
                if party in settled:
                    waits[province][party] = settled[party]
            # set on the generator's dict itself: a duplicate is encoded again, naming the submission it is sent in
            event["source"]["submission"] = submissions[province]
            try:
                value = encode(event, keys[province])
            except EncodeError as exc:
                raise EventEncodeError(f"province {province}, event {event.get('event_id')} "
                                       f"({event.get('entity_key')}): {exc}") from exc
            buffer = buffers[province]
            buffer.append((topics[province], event["entity_key"].encode("utf-8"), value))
            if manifests:
                digests[province].append((event["source"]["seq"], provenance.event_digest(value)))
            if len(buffer) >= due[province]:
                spool_and_send(province, generated)
                if stop is not None and stop.is_set():
                    break
        stopped = stop is not None and stop.is_set()
        for province, buffer in buffers.items():
            if buffer and not stopped:
                spool_and_send(province, generated, late=True)
        for publisher in publishers.values():
            acked += publisher.finish() if stopped else publisher.drain()
        if progress is not None:
            progress(acked, total)
    finally:
        for spool in spools.values():
            spool.close()
    expected = generator.expected
    return SyntheticReport(
        produced=acked, valid=expected.valid, duplicates=expected.duplicates, invalid=expected.invalid,
        per_province=dict(expected.per_province), expected_routed=dict(expected.routed),
        cross_province_cases=expected.cross_province_cases, resent_earlier=resent, skipped=skipped,
        per_province_kind={p: dict(k) for p, k in expected.per_province_kind.items()},
    )


def resume_point(spool: Spool, seed: int, total: int) -> int:
    """How many generated events a spool's checkpoint says are spooled already (0 without one)."""
    raw = spool.checkpoint()
    if raw is None:
        return 0
    try:
        point = json.loads(raw)
        recorded_seed, generated = point["seed"], point["generated"]
    except (ValueError, TypeError, KeyError) as exc:
        raise GeneratorConfigError(f"spool {spool.path}: checkpoint {raw!r} is not a synthetic checkpoint") from exc
    if recorded_seed != seed:
        raise GeneratorConfigError(f"spool {spool.path} was written with seed {recorded_seed}, not {seed}: "
                                   f"resume with the same seed or start from an empty spool")
    if not isinstance(generated, int) or not 0 <= generated <= total:
        raise GeneratorConfigError(f"spool {spool.path}: checkpoint says {generated!r} events were generated, "
                                   f"outside 0..{total}")
    return generated


def _acked_counter(province: str, spool: Spool) -> Callable[[int], None]:
    def acked(n: int) -> None:
        metrics.events_sent(province, ADAPTER, n)
        metrics.spool_depth(province, ADAPTER, spool.depth())
    return acked


class Pacer:
    """Sleeps so that generation after the first spooled count keeps to ``rate`` events/s (0: no pacing)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: tuple[float, int] | None = None

    def __call__(self, generated: int) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        if self._start is None:
            self._start = (now, generated)
            return
        started, first = self._start
        ahead = started + (generated - first) / self.rate - now
        if ahead > 0:
            self._sleep(ahead)
