"""Exactly-once outputs when a worker dies mid-batch: what a partition's next owner is handed.

A batch is written in order (outputs, then state changes, then offsets), so a worker killed
between the first two leaves outputs on the broker that no state records. Two marks in each
source partition's changelog let the partition's next owner find them:

- ``out.done:<P>:<k>`` — the last offset of source partition ``prov.<P>.changes[k]`` whose
  outputs and state changes are all written. It is the last message of a batch's state write
  to that changelog partition, so it is never ahead of the state it stands for.
- ``out.since:<P>:<k>`` — for each output topic this partition has written to, the offset of
  each of its partitions from which the outputs of any later source offset lie. Offsets only
  grow, so an old mark stays true: it is written before an output first goes to a topic it
  does not name, and advanced every ``SINCE_REFRESH_SECONDS`` after the done mark (same
  changelog partition, so never ahead of it); a quiet partition's every ``IDLE_REFRESH_SECONDS``.
  The positions come from this worker's own deliveries and, every ``POSITIONS_REFRESH_SECONDS``,
  from the broker (where other workers' outputs end).

Every output carries ``roadx.origin`` = ``<source topic>:<partition>:<offset>:<n>``, the n-th
output of that source message to that topic, the same each time the message is processed.
The label names no output topic (a message's first output to ``national.changes`` and its
first routed copy both end in ``:0``), so an output written is the pair (output topic,
label): a worker killed mid-flush may have written one and not the other.
The next owner skips source messages up to the done mark, reads the outputs from the since
mark on, keeps the (topic, origin) pairs of later offsets of its partitions
(``Handover.written``), and leaves exactly those outputs out when it processes their
messages again. A case routed late (``streams.waiting``) comes from no source message: its
label is ``late/<P>/<k>/<target>/<stage>/<case key>`` (``late_label``), which the next owner
keeps the same way until it has routed its partitions' waiting cases again.

A worker that stops answering yet keeps writing after its partitions were given to another
(a zombie) is not fenced: that takes transactions, which the embedded broker does not isolate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from schemas.kafka import read_to_end, reader_conf, watermarks
from schemas.topics import ORIGIN, TopicNames

from .errors import StateError, WorkerError
from .pipeline import Inbound, Outbound

log = logging.getLogger(__name__)

DONE, SINCE = "out.done:", "out.since:"
SINCE_REFRESH_SECONDS = 5.0
IDLE_REFRESH_SECONDS = 60.0
POSITIONS_REFRESH_SECONDS = 60.0
READ_BACK_SECONDS = 300.0

Scope = tuple[str, int]  # (province, source partition)
Positions = dict[str, list[int]]  # output topic -> offset per partition
Written = tuple[str, str]  # (output topic, origin label) of an output on the broker


def done_key(scope: Scope) -> str:
    return f"{DONE}{scope[0]}:{scope[1]}"


def since_key(scope: Scope) -> str:
    return f"{SINCE}{scope[0]}:{scope[1]}"


def origin_label(message: Inbound, n: int) -> str:
    return f"{message.topic}:{message.partition}:{message.offset}:{n}"


LATE = "late/"


def late_label(scope: Scope, target: str, stage: str, case_key: str) -> str:
    """The origin label of a case routed late to ``target`` at ``stage``: one per delivery there is."""
    return f"{LATE}{scope[0]}/{scope[1]}/{target}/{stage}/{case_key}"


def late_scope(label: str) -> Scope | None:
    """The source partition of a late route's label; None for any other label."""
    if not label.startswith(LATE):
        return None
    province, _, rest = label[len(LATE):].partition("/")
    partition, sep, _ = rest.partition("/")
    return (province, int(partition)) if sep and partition.isdigit() else None


def parse_origin(label: str) -> tuple[str, int, int] | None:
    """(source topic, partition, offset) of an origin label; None for one that is not."""
    topic, sep, rest = label.rpartition(":")  # drop n
    topic, sep2, offset = topic.rpartition(":")
    topic, sep3, partition = topic.rpartition(":")
    if not (sep and sep2 and sep3 and rest.isdigit() and offset.isdigit() and partition.isdigit()):
        return None
    return topic, int(partition), int(offset)


class Send(NamedTuple):
    """An output to write, with its origin label and the source partition it belongs to."""

    out: Outbound
    label: str
    scope: Scope


def label_outputs(batch: Sequence[Inbound], outputs: Iterable[Outbound],
                  province_of: Callable[[str], str | None]) -> list[Send]:
    """Each output with its origin label; an output whose message is not from a province topic has none."""
    sends = []
    counts: dict[tuple[int, str], int] = {}
    provinces: dict[str, str] = {}  # source topic -> its province ("" for none), asked once per batch
    for out in outputs:
        origin = out.origin
        if not 0 <= origin < len(batch):
            raise WorkerError(f"an output to {out.topic!r} names no message of its batch (origin {origin})")
        message = batch[origin]
        n = counts.get((origin, out.topic), 0)
        counts[(origin, out.topic)] = n + 1
        province = provinces.get(message.topic)
        if province is None:
            province = provinces[message.topic] = province_of(message.topic) or ""
        sends.append(Send(out, origin_label(message, n), (province, message.partition)))
    return sends


def not_done(consumed: Sequence[Inbound], done: Mapping[Scope, int],
             province_of: Callable[[str], str | None]) -> list[Inbound]:
    """The messages past their partition's done mark (the rest were written in full before)."""
    fresh = []
    for message in consumed:
        province = province_of(message.topic)
        if province is None or message.offset > done.get((province, message.partition), -1):
            fresh.append(message)
    return fresh


def written_origins(outputs: Iterable[Written], done: Mapping[Scope, int],
                    province_of: Callable[[str], str | None]) -> dict[Scope, set[Written]]:
    """Of the (output topic, origin label) pairs read back, those of a source offset past the
    done mark of an owned partition (``done`` holds exactly the owned ones)."""
    written: dict[Scope, set[Written]] = {}
    for output in outputs:
        parsed = parse_origin(output[1])
        if parsed is None:
            continue
        topic, partition, offset = parsed
        province = province_of(topic)
        scope = (province or "", partition)
        if province is not None and scope in done and offset > done[scope]:
            written.setdefault(scope, set()).add(output)
    return written


def last_offsets(batch: Sequence[Inbound], province_of: Callable[[str], str | None]) -> dict[Scope, int]:
    last: dict[Scope, int] = {}
    for message in batch:
        province = province_of(message.topic)
        if province is not None:
            scope = (province, message.partition)
            last[scope] = max(last.get(scope, -1), message.offset)
    return last


@dataclass
class Handover:
    """The marks of the partitions a worker owns, and the outputs already written for them."""

    topics: TopicNames
    positions: "OutputPositions"
    done: dict[Scope, int] = field(default_factory=dict)
    since: dict[Scope, Positions] = field(default_factory=dict)
    since_at: dict[Scope, float] = field(default_factory=dict)
    written: dict[Scope, set[Written]] = field(default_factory=dict)
    late_found: bool = False  # whether ``written`` holds late routes (``late_label``)
    clock: Callable[[], float] = time.monotonic

    def province_of(self, topic: str) -> str | None:
        return self.topics.province_of_changes_topic(topic)

    def take(self, scope: Scope, done: Any, since: Any) -> None:
        """Take over ``scope`` with the marks its changelog holds."""
        self.done[scope] = done if isinstance(done, int) else -1
        self.since[scope] = {t: list(v) for t, v in since.items()} if isinstance(since, dict) else {}
        self.since_at[scope] = self.clock()

    def found(self, outputs: Iterable[Written], scopes: Iterable[Scope]) -> int:
        """Remember the read-back outputs that belong to ``scopes`` past their done marks, and
        their late routes; returns how many."""
        done = {scope: self.done.get(scope, -1) for scope in scopes}
        outputs = list(outputs)
        count = 0
        for scope, origins in written_origins(outputs, done, self.province_of).items():
            self.written.setdefault(scope, set()).update(origins)
            count += len(origins)
        for topic, label in outputs:
            scope = late_scope(label)
            if scope in done:
                self.written.setdefault(scope, set()).add((topic, label))
                self.late_found = True
                count += 1
        return count

    def forget_late(self) -> None:
        """Drop the late routes read back, once the waiting cases of the partitions taken were routed again."""
        if not self.late_found:
            return
        self.late_found = False
        for scope in list(self.written):
            kept = {w for w in self.written[scope] if late_scope(w[1]) is None}
            if kept:
                self.written[scope] = kept
            else:
                del self.written[scope]

    def drop(self, scope: Scope) -> None:
        for held in (self.done, self.since, self.since_at, self.written):
            held.pop(scope, None)

    def to_send(self, sends: list[Send]) -> tuple[list[Send], list[Send]]:
        """The outputs not already written by a predecessor, and those that were (left out)."""
        if not self.written:
            return sends, []
        kept, left_out = [], []
        for send in sends:
            written = (send.out.topic, send.label) in self.written.get(send.scope, ())
            (left_out if written else kept).append(send)
        return kept, left_out

    def marks_before(self, sends: list[Send]) -> dict[Scope, Positions]:
        """Since marks to write before ``sends``: for each partition whose outputs go to a topic
        its mark does not name yet, the mark with that topic at its current position."""
        grown: dict[Scope, Positions] = {}
        for send in sends:
            if not send.scope[0]:
                continue  # not from a province topic: no partition to mark
            held = grown.get(send.scope) or self.since.get(send.scope, {})
            if send.out.topic not in held:
                grown[send.scope] = {**held, send.out.topic: self.positions.of(send.out.topic)}
        self.since.update(grown)
        return grown

    def marks_after(self, batch: Sequence[Inbound]) -> tuple[dict[Scope, int], dict[Scope, Positions]]:
        """Done marks of the partitions in ``batch``, and the since marks due to be advanced:
        those of the batch's partitions every ``SINCE_REFRESH_SECONDS``, and those of owned
        partitions the batch did not touch every ``IDLE_REFRESH_SECONDS`` (all their outputs are
        written, so a partition quiet for days does not make its next owner read days back)."""
        done = last_offsets(batch, self.province_of)
        advanced: dict[Scope, Positions] = {}
        now = self.clock()
        for scope, offset in done.items():
            self.done[scope] = offset
            written = self.written.get(scope)
            if written is not None and all(_offset_of(label) <= offset for _topic, label in written):
                del self.written[scope]
        for scope in self.done:
            due = SINCE_REFRESH_SECONDS if scope in done else IDLE_REFRESH_SECONDS
            if scope in self.written or now - self.since_at.get(scope, now) < due:
                continue
            since = self.since.get(scope, {})
            if since:
                advanced[scope] = {t: self.positions.of(t) for t in since}
                self.since[scope] = advanced[scope]
            self.since_at[scope] = now
        return done, advanced


def _offset_of(label: str) -> int:
    parsed = parse_origin(label)
    return parsed[2] if parsed else -1


class OutputPositions:
    """A lower bound of the next offset of every output partition: the broker's end when first
    asked (the embedded broker may report less than its end, never more), then the offsets
    its deliveries report. ``prime`` asks for many topics in one request, before consuming."""

    def __init__(self, admin: AdminClient) -> None:
        self._admin = admin
        self._known: dict[str, list[int]] = {}

    def prime(self, topics: Iterable[str]) -> None:
        wanted = [t for t in topics if t not in self._known]
        if wanted:
            self._known.update(self._ends(wanted))

    def refresh(self) -> None:
        """Move every known topic's positions up to where the broker says it ends now."""
        if self._known:
            for topic, ends in self._ends(list(self._known)).items():
                known = self._known[topic]
                self._known[topic] = [max(a, b) for a, b in zip(known, ends)] + ends[len(known):]

    def of(self, topic: str) -> list[int]:
        known = self._known.get(topic)
        if known is None:
            known = self._known[topic] = self._ends([topic])[topic]
        return list(known)

    def observe(self, topic: str, partition: int, offset: int) -> None:
        known = self._known.get(topic)
        if known is not None and partition < len(known) and offset + 1 > known[partition]:
            known[partition] = offset + 1

    def _ends(self, topics: list[str]) -> dict[str, list[int]]:
        try:
            meta = self._admin.list_topics(timeout=10).topics
            counts = {}
            for topic in topics:
                found = meta.get(topic)
                if found is None or found.error is not None or not found.partitions:
                    raise StateError(f"cannot find the output topic {topic!r}: {getattr(found, 'error', None)}")
                counts[topic] = len(found.partitions)
            wanted = {TopicPartition(t, p): OffsetSpec.latest() for t, n in counts.items() for p in range(n)}
            ends = {t: [0] * n for t, n in counts.items()}
            for tp, future in self._admin.list_offsets(wanted, request_timeout=10).items():
                ends[tp.topic][tp.partition] = max(future.result().offset, 0)
            return ends
        except (KafkaException, KafkaError) as exc:
            raise StateError(f"cannot read where the output topics {topics} end: {exc}") from exc


def read_back(conf: dict[str, Any], group: str, since: Mapping[Scope, Positions]) -> list[Written]:
    """(output topic, origin label) of every output at or after the since marks, read to the end
    (``schemas.kafka.read_to_end``: on past the end the broker reports)."""
    start: dict[tuple[str, int], int] = {}
    for positions in since.values():
        for topic, offsets in positions.items():
            for partition, offset in enumerate(offsets):
                tp = (topic, partition)
                start[tp] = min(start.get(tp, offset), offset)
    if not start:
        return []
    what = "read back the outputs already written"
    reader = Consumer(reader_conf(conf, f"{group}-handover"))
    labels: list[Written] = []
    try:
        highs = {tp: high for tp, (_low, high) in watermarks(reader, start, error=StateError, what=what).items()}
        reader.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
        for messages in read_to_end(reader, start, highs, error=StateError, what=what,
                                    total_seconds=READ_BACK_SECONDS):
            for m in messages:
                for name, value in m.headers() or ():
                    if name == ORIGIN and value is not None:
                        labels.append((m.topic(), value.decode("utf-8", "replace")))
                        break
        return labels
    except KafkaException as exc:
        raise StateError(f"cannot {what}: {exc}") from exc
    finally:
        reader.close()
