"""What a run of the stream stage wrote, in a form two runs can be compared by: ``Written``.

The bench's peers run the same stage as the worker over the same topics, each writing to its
own topic prefix; ``written`` reduces the messages on one prefix to sets, one a kind of output,
of what does not depend on the clock, the batches or the order the partitions were read in:

    changes    national.changes: key, value (the event's bytes as received), the stage's headers
    dlq        national.dlq: key, value, headers (rule, reason, origin)
    routed     xprov.<Q>.inbound: Q, key, value, headers (reasons, stage, region, correlation)
    findings   national.quality: every field of the finding except ``detected_ms`` (the clock);
               findings of rules about an unregistered reference (``unknown_operator``,
               ``unknown_holder``: a rule with ``refers_to``) are counted apart, not compared,
               as they depend on which partition was read first
    tallies    national.submissions: one (party, submission, event id, seq, digest, outcome) per
               event tallied, whichever batch's tally held it

Headers are the stage's own: the worker's origin label (``roadx.origin``, from its commit
order) is left out. The sets drop a message written twice (at-least-once); ``messages`` counts
them all.

One thing depends on the order the partitions are read in: an entity whose events arrive on two
provinces' topics (a vehicle that moved, a practitioner working away) has one state, and which
province's event comes first decides what is stale, unchanged or routed. No two runs read the
topics in the same order, so the outputs of those entities (``Crossing``: their keys, and the
digests of their events for the tallies) are counted apart (``crossing``), not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from schemas.topics import ORIGIN, TopicNames

KINDS = ("changes", "dlq", "routed", "findings", "tallies")

Message = tuple[str, bytes | None, bytes | None, Iterable[tuple[str, bytes]] | None]  # topic, key, value, headers


@dataclass(frozen=True)
class Crossing:
    """Entities whose events arrive on more than one province's topic: their keys, their events' digests."""

    keys: frozenset[bytes] = frozenset()
    digests: frozenset[bytes] = frozenset()


def crossing(messages: Iterable[tuple[str, bytes | None, bytes | None]], digest: Any) -> Crossing:
    """The ``Crossing`` of source ``messages`` (topic, key, value); ``digest`` is the tallies' digest of a value."""
    topics: dict[bytes | None, set[str]] = {}
    values: dict[bytes | None, list[bytes]] = {}
    for topic, key, value in messages:
        topics.setdefault(key, set()).add(topic)
        if value is not None:
            values.setdefault(key, []).append(value)
    keys = frozenset(key for key, seen in topics.items() if len(seen) > 1 and key is not None)
    return Crossing(keys, frozenset(digest(value) for key in keys for value in values.get(key, ())))


@dataclass
class Written:
    sets: dict[str, set] = field(default_factory=lambda: {kind: set() for kind in KINDS})
    messages: int = 0
    provisional: int = 0  # reference findings, not compared
    crossing: int = 0  # outputs of entities read from two provinces' topics, not compared

    def count(self) -> int:
        return sum(len(items) for items in self.sets.values())


def written(messages: Iterable[Message], topics: TopicNames, provinces: Iterable[str], decode_finding: Any,
            decode_tally: Any, provisional_rules: frozenset[str], apart: Crossing = Crossing()) -> Written:
    """The outputs among ``messages`` (on ``topics``' prefix), reduced as the module docstring says;
    those of the entities ``apart`` counted, not kept."""
    inbound = {topics.province_inbound(p): p for p in provinces}
    out = Written()
    for topic, key, value, headers in messages:
        if key in apart.keys and topic != topics.national_submissions:
            out.messages += 1
            out.crossing += 1
            continue
        kept = tuple((name, data) for name, data in (headers or ()) if name != ORIGIN)
        if topic == topics.national_changes:
            kind, item = "changes", (key, value, kept)
        elif topic == topics.national_dlq:
            kind, item = "dlq", (key, value, kept)
        elif topic in inbound:
            kind, item = "routed", (inbound[topic], key, value, kept)
        elif topic == topics.national_quality:
            finding = decode_finding(value)
            if finding["rule"] in provisional_rules:
                out.messages += 1
                out.provisional += 1
                continue
            kind, item = "findings", tuple(sorted((k, v) for k, v in finding.items() if k != "detected_ms"))
        elif topic == topics.national_submissions:
            out.messages += 1
            for entry in _tally_entries(decode_tally(value)):
                if entry[4] in apart.digests:
                    out.crossing += 1
                else:
                    out.sets["tallies"].add(entry)
            continue
        else:
            continue
        out.messages += 1
        out.sets[kind].add(item)
    return out


def _tally_entries(tally: Mapping[str, Any]) -> list[tuple]:
    ids, digests = tally["event_ids"], tally["digests"]
    size = len(digests) // len(ids) if ids else 0
    return [(tally["party"], tally["submission_id"], event_id, seq, digests[i * size:(i + 1) * size], outcome)
            for i, (event_id, seq, outcome) in enumerate(zip(ids, tally["seqs"], tally["outcomes"]))]


def differences(expected: Written, got: Written) -> dict[str, tuple[int, int]]:
    """Per kind that differs: (items expected but not written, items written but not expected)."""
    out = {}
    for kind in KINDS:
        missing = len(expected.sets[kind] - got.sets[kind])
        extra = len(got.sets[kind] - expected.sets[kind])
        if missing or extra:
            out[kind] = (missing, extra)
    return out


def verdict(expected: Written, got: Written) -> str:
    """One line: the same outputs (how many compared), or where they differ."""
    diff = differences(expected, got)
    sizes = ", ".join(f"{kind} {len(expected.sets[kind]):,}" for kind in KINDS)
    if not diff:
        return (f"same outputs as the worker ({sizes}; not compared: {got.provisional:,} reference findings, "
                f"{got.crossing:,} outputs of entities on two provinces' topics)")
    where = "; ".join(f"{kind}: {missing:,} missing, {extra:,} extra" for kind, (missing, extra) in diff.items())
    return f"outputs DIFFER from the worker's ({where}; compared {sizes})"


def read_crossing(bootstrap: str, sources: Iterable[str]) -> Crossing:
    """The ``Crossing`` of the source topics, read from the broker."""
    from schemas.kafka import read_topics
    from schemas.provenance import event_digest

    from ..errors import StackError

    sources = list(sources)
    messages = ((m.topic(), m.key(), m.value())
                for batch in read_topics({"bootstrap.servers": bootstrap}, "roadx-bench-sources", sources,
                                         error=StackError, what="read the source topics")
                for m in batch if m.error() is None)
    return crossing(messages, event_digest)


def read_written(bootstrap: str, names: TopicNames, provinces: Iterable[str], apart: Crossing = Crossing()) -> Written:
    """What the stage wrote on ``names``' prefix, read from the broker (the topics must not be growing)."""
    from schemas.codec import FindingCodec, SubmissionTallyCodec
    from schemas.kafka import read_topics
    from schemas.registry import make_registry
    from streams.rules import RULES

    from ..errors import StackError

    provinces = list(provinces)
    registry = make_registry(None)
    topics = [names.national_changes, names.national_dlq, names.national_quality, names.national_submissions,
              *(names.province_inbound(p) for p in provinces)]
    messages = ((m.topic(), m.key(), m.value(), m.headers())
                for batch in read_topics({"bootstrap.servers": bootstrap}, "roadx-bench-outputs", topics,
                                         error=StackError, what=f"read the outputs on {names.prefix!r}")
                for m in batch if m.error() is None)
    return written(messages, names, provinces, FindingCodec(registry).decode, SubmissionTallyCodec(registry).decode,
                   frozenset(rule.code for rule in RULES if rule.refers_to), apart)
