"""The stream stage as a pure function over a batch: no Kafka; its one clock is
``StageContext.today`` (the day birth dates are compared with), which tests set.

Per message, in order: decode → provenance (source topic, known party, signature, a register
the party may publish, ``register_not_allowed``) → dedup (``event_id`` seen before) → shape →
data-quality rules (``streams.rules``) → content dedup (same content as the entity's last
version) and staleness (older ``source.seq``) → forward to ``national.changes``, route cases
to ``xprov.<Q>.inbound``, notify both provinces of a move. A message failing provenance, shape or an ``error``
rule goes to the DLQ with its raw bytes and origin; every rule that fires is also
published to ``national.quality``; the rest of the batch flows on. Accepted events
forward their original bytes, so signatures stay verifiable downstream. The messages in and
out, the provenance checks and the dead letter are ``streams.messages``'.

State is a key-value mapping read and written through ``state``: ``entity:<entity key>``
(seq, content hash, stage, case routes, and the event ids it accepted within the
deduplication retention, ``streams.retention``: one record an accepted event), ``reg:<key>``
(which province's register holds an entity, shared by every worker) and, for a case naming an
entity no register holds yet, ``wait:<registry key>|<case key>`` (``streams.waiting``).
``BatchResult.changes`` and ``.ownership`` list what the batch wrote, for the runner to make durable.

An event naming its submission (``source.submission``) is tallied for the hub's submission
check: its id, seq, SM3 digest of the bytes as received and outcome. A stale event counts as
accepted (it is kept in the log), an unchanged one as duplicate (it adds nothing); an event
that does not decode names no submission and is not tallied. Each (party, submission, source
partition) of a batch becomes one ``roadx.SubmissionTally`` on ``national.submissions``
whose origin is the submission's last message of that partition in the batch, so the commit
order and the handover treat it like any output: a batch processed again after a crash
writes the same tally, or one holding a subset of the events already written (never fewer).
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Mapping, MutableMapping, Sequence

import orjson

from schemas import codes
from schemas import topics as topic_headers
from schemas.codec import EventCodec, FindingCodec, SubmissionTallyCodec
from schemas.identifiers import china_today
from schemas.provenance import LETTER_OF_OUTCOME, event_digest
from schemas.settings import DEDUP_RETENTION_HOURS
from schemas.topics import TopicNames

from . import routing, rules
from .errors import Rejection
from .messages import (HEADER_MAX_BYTES, PROVENANCE_RULES, Inbound, Outbound, check_provenance, dead_letter, decode,
                       unexpected)
from .messages import clip as _clip
from .retention import SEEN, remember, remembered
from .validation import describe, subject_record, validate_shape

# Origin of a forwarded event on national.changes.
SOURCE_TOPIC = "roadx.source.topic"
SOURCE_PARTITION = "roadx.source.partition"
SOURCE_OFFSET = "roadx.source.offset"

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
UNCHANGED, STALE = "unchanged", "stale"
ENTITY, OWNER = "entity:", "reg:"  # OWNER: which province's register holds an entity
WAITING = "waiting"  # the field of a case's state listing the registry keys it waits on (``streams.waiting``)
UNKNOWN_PROVINCE = "unknown"


@dataclass(frozen=True)
class StageContext:
    codec: EventCodec
    topics: TopicNames
    province_keys: Mapping[str, tuple[bytes, ...]]  # each province's registered event secrets usable now
    provinces: frozenset[str]
    findings: FindingCodec | None = None  # None: a FindingCodec on the events' registry
    uscc_allow: frozenset[str] = frozenset()  # early pilot USCCs valid in law that fail the checksum
    today: Callable[[], date] = china_today  # the rules' day, read once per batch
    tallies: SubmissionTallyCodec | None = None  # None: a SubmissionTallyCodec on the events' registry
    registers: Mapping[str, frozenset[str]] | None = None  # each party's registers (schemas.parties); None: any
    dedup_retention_ms: int = int(DEDUP_RETENTION_HOURS * 3_600_000)  # how long an entity remembers an accepted id

    def __post_init__(self) -> None:
        if self.findings is None:
            object.__setattr__(self, "findings", FindingCodec(self.codec.registry))
        if self.tallies is None:
            object.__setattr__(self, "tallies", SubmissionTallyCodec(self.codec.registry))


@dataclass
class BatchResult:
    """What a batch produced.

    ``counts`` is keyed (outcome, province of the source topic); ``rejects`` is keyed
    (rule, province); ``routed`` is keyed (source, target); ``findings`` is keyed
    (province, dimension, severity). ``accepted`` lists (index in the batch, event_id) of
    every accepted event, in order. ``changes`` lists (index, key, value) of the state the
    batch wrote for the partition of message ``index``; ``ownership`` lists (key, value)
    written to the shared ownership table (None clears an entry). ``tallies`` maps (party,
    submission, source partition) to [index of its last message, and its events' ids, seqs, digests and
    outcome letters]. ``forgotten`` counts the event ids the batch's writes dropped after the retention.
    """

    outputs: list[Outbound] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    routed: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)
    accepted: list[tuple[int, str]] = field(default_factory=list)
    findings: Counter = field(default_factory=Counter)
    changes: list[tuple[int, str, Any]] = field(default_factory=list)
    ownership: list[tuple[str, Any]] = field(default_factory=list)
    tallies: dict[tuple[str, str, int], list[Any]] = field(default_factory=dict)
    forgotten: int = 0  # accepted event ids dropped from their entities' state after the retention


def process_batch(batch: Sequence[Inbound], ctx: StageContext, state: MutableMapping[str, Any],
                  now_ms: int = 0) -> BatchResult:
    """Run every message of ``batch`` through the stage; never raises for bad input.

    ``state`` is read and written (see the module docstring); only accepted events
    write, so a rejected event sent again is rejected again. ``now_ms`` stamps findings;
    ``ctx.today`` is read once for the batch's rules.
    """
    result = BatchResult()
    today = ctx.today()
    for index, message in enumerate(batch):
        _Message(index, message, ctx, state, result, now_ms, today).run()
    if result.tallies:
        result.outputs.extend(tally_outputs(batch, result.tallies, ctx, now_ms))
    return result


def tally_outputs(batch: Sequence[Inbound], tallies: Mapping[tuple[str, str, int], list[Any]], ctx: StageContext,
                  now_ms: int) -> list[Outbound]:
    """One ``roadx.SubmissionTally`` per (party, submission, source partition), keyed ``<party>/<submission>``."""
    outputs = []
    for (party, submission, partition), (last, ids, seqs, digests, outcomes) in tallies.items():
        message = batch[last]
        record = {"tally_id": f"{message.topic}:{partition}:{message.offset}", "party": party,
                  "submission_id": submission, "source_partition": partition, "event_ids": ids, "seqs": seqs,
                  "digests": b"".join(digests), "outcomes": "".join(outcomes), "tallied_at": now_ms}
        outputs.append(Outbound(ctx.topics.national_submissions, _clip(f"{party}/{submission}".encode("utf-8")),
                                ctx.tallies.encode(record), [], last))
    return outputs


def event_findings(event: Mapping[str, Any], registered: Callable[[str], str | None], last: Any,
                   uscc_allow: frozenset[str] = frozenset(), today: date | None = None) -> list[rules.Finding]:
    """The data-quality findings the stage makes on a decoded event whose shape passed
    (``validate_shape``), errors first; none for a delete. ``registered`` and ``last`` are
    what ``rules.Facts`` reads: the registry's entry of a key, the entity's last accepted state."""
    if event["op"] == "d":
        return []
    facts = rules.Facts(registered, last, event["source"]["province"], uscc_allow=uscc_allow, today=today)
    return rules.evaluate(event["entity_type"], subject_record(event), facts)


def rejecting_rule(findings: Sequence[rules.Finding]) -> str | None:
    """The rule an event with these findings goes to the DLQ under (its first error), or None: accepted."""
    return next((f.rule.code for f in findings if f.rule.severity == rules.ERROR), None)


class _Message:
    """One message's trip through the stage."""

    def __init__(self, index: int, message: Inbound, ctx: StageContext, state: MutableMapping[str, Any],
                 result: BatchResult, now_ms: int, today: date) -> None:
        self.index, self.message, self.ctx, self.state, self.result = index, message, ctx, state, result
        self.now_ms, self.today = now_ms, today
        self.province = ctx.topics.province_of_changes_topic(message.topic) or UNKNOWN_PROVINCE
        self.event: dict[str, Any] | None = None
        self.event_id: str | None = None  # the event's id as text, once read
        self.last: Any = None  # the entity's state before this event
        self.home: str | None = None  # the home province of another province's filing of a practitioner
        self.state_key = ""  # where the entity's state is kept

    def run(self) -> None:
        result, province = self.result, self.province
        try:
            self.event = event = decode(self.message, self.ctx.codec)
            check_provenance(self.message, event, province, self.ctx.province_keys, self.ctx.provinces,
                             self.ctx.registers)
            self.event_id = event_id = str(event["event_id"])
            self.home = routing.away_filing_home(event, province)
            self.state_key = self._entity_state_key(event)
            self.last = self.state.get(self.state_key)
            if remembered(self.last, event_id):
                result.counts[(DUPLICATE, province)] += 1
                self._tally(DUPLICATE)
                return
            validate_shape(event)
            findings = self._rules(event)
        except Exception as exc:  # bad input never stops the batch
            rejection = exc if isinstance(exc, Rejection) else unexpected(self.message, exc)
            self._reject(rejection, [])
            return
        errors = [f for f in findings if f.rule.severity == rules.ERROR]
        if errors:
            text = "; ".join(f.text for f in errors)
            self._reject(Rejection(rejecting_rule(findings), f"{describe(event)}: {text}"), findings)
            return
        self._publish_findings(findings)
        self._accept(event, event_id)

    def _rules(self, event: Mapping[str, Any]) -> list[rules.Finding]:
        if event["op"] == "d":
            return []
        return event_findings(event, self._owner, self.last, self.ctx.uscc_allow, self.today)

    def _entity_state_key(self, event: Mapping[str, Any]) -> str:
        """Where the entity's last accepted version is kept: another province's filing of a
        practitioner working away has its own, so its source's seq is compared with its own."""
        if self.home is not None:
            return f"{ENTITY}{event['entity_key']}@{self.province}"
        return ENTITY + event["entity_key"]

    def _owner(self, key: str) -> str | None:
        """The registry's entry for ``key`` (``routing.owner_entry``), or None."""
        return self.state.get(OWNER + key)

    def _tally(self, outcome: str) -> None:
        """Note the event's outcome for its submission's tally (none when it names no submission)."""
        event, value = self.event, self.message.value
        if not event or value is None:
            return
        source = event["source"]
        submission = source.get("submission")
        if not submission:
            return
        key = (self.province, submission[:HEADER_MAX_BYTES], self.message.partition)
        held = self.result.tallies.get(key)
        if held is None:
            held = self.result.tallies[key] = [0, [], [], [], []]
        held[0] = self.index
        held[1].append(self.event_id or str(event["event_id"]))
        held[2].append(source["seq"])
        held[3].append(event_digest(value))
        held[4].append(LETTER_OF_OUTCOME[outcome])

    def _reject(self, rejection: Rejection, findings: list[rules.Finding]) -> None:
        result, province = self.result, self.province
        self._tally(REJECTED)
        result.outputs.append(dead_letter(self.message, rejection, self.ctx.topics, self.event, self.index))
        result.counts[(REJECTED, province)] += 1
        result.rejects[(rejection.rule, province)] += 1
        if findings:
            self._publish_findings(findings)
        else:
            dimension = codes.PROVENANCE if rejection.rule in PROVENANCE_RULES else rules.CONFORMITY
            self._publish(rejection.rule, dimension, rules.ERROR, None, rejection.message)

    def _publish_findings(self, findings: list[rules.Finding]) -> None:
        for f in findings:
            self._publish(f.rule.code, f.rule.dimension, f.rule.severity, f.rule.field,
                          f"{describe(self.event or {})}: {f.text}", f.ref_key)

    def _publish(self, rule: str, dimension: str, severity: str, field_name: str | None, text: str,
                 ref_key: str | None = None) -> None:
        event, message = self.event or {}, self.message
        event_id = str(event["event_id"]) if event.get("event_id") is not None else None
        origin = _text_clip(event_id) or f"{message.topic}:{message.partition}:{message.offset}"
        finding = {
            "finding_id": f"{origin}/{rule}" + (f"/{field_name}" if field_name else ""),
            "rule": rule, "dimension": dimension, "severity": severity, "province": self.province,
            "entity_type": event.get("entity_type"), "entity_key": _text_clip(event.get("entity_key")),
            "event_id": _text_clip(event_id),
            "field": field_name, "message": text[:2000], "source_topic": message.topic,
            "source_partition": message.partition, "source_offset": message.offset,
            "event_ts_ms": _epoch_ms(event["ts_ms"]) if event.get("ts_ms") is not None else None,
            "detected_ms": self.now_ms, "ref_key": _text_clip(ref_key),
        }
        key = _clip((event.get("entity_key") or origin).encode("utf-8"))
        self.result.outputs.append(Outbound(self.ctx.topics.national_quality, key, self.ctx.findings.encode(finding), [],
                                           self.index))
        self.result.findings[(self.province, dimension, severity)] += 1

    def _write(self, key: str, value: Any) -> None:
        self.state[key] = value
        self.result.changes.append((self.index, key, value))

    def _accept(self, event: dict[str, Any], event_id: str) -> None:
        result, province, ctx = self.result, self.province, self.ctx
        entity_key = event["entity_key"]
        state_key, home = self.state_key, self.home
        last = self.last or {}
        seq = int(event["source"]["seq"])
        seen, forgotten = remember(last, event_id, self.now_ms, ctx.dedup_retention_ms)
        result.forgotten += forgotten
        result.accepted.append((self.index, event_id))
        content = None if event["op"] == "d" else content_hash(event["after"])
        if last and seq < last.get("seq", -1):
            result.counts[(STALE, province)] += 1
            self._tally(ACCEPTED)
            self._publish("stale_event", rules.RELATIONAL, rules.WARNING, None,
                          f"{describe(event)}: stale_event: source.seq {seq} is older than the last applied "
                          f"{last.get('seq')}; kept in the log, not applied")
            self._write(state_key, {**last, SEEN: seen})
            self._forward(event, stale=True)
            return
        if content is not None and content == last.get("hash") and not last.get("deleted"):
            result.counts[(UNCHANGED, province)] += 1
            self._tally(DUPLICATE)
            self._write(state_key, {**last, SEEN: seen})
            return
        result.counts[(ACCEPTED, province)] += 1
        self._tally(ACCEPTED)
        entity = {"seq": seq, "hash": content, "deleted": event["op"] == "d", SEEN: seen}
        region = routing.registration_region(event)
        if home is not None:  # another province's filing: its home is told, nothing changes hands
            stage, entity["routes"] = routing.away_filing_routes(event, home, last.get("routes"))
            if stage is not None and home in ctx.provinces:
                self._route(event, home, [routing.WORKING_AWAY], routing.correlation_id(province, entity_key), stage,
                            region)
            self._write(state_key, entity)
            self._forward(event, stale=False)
            return
        for target in routing.move_targets(event, province, self._owner, ctx.provinces):
            where = region if target == province else (self._owner(entity_key) or "").partition("/")[2]
            self._route(event, target, ["moved"], routing.correlation_id(province, entity_key), "moved", where)
        if event["entity_type"] == "case":
            entity["stage"] = (subject_record(event) or {}).get("stage")
            routes = routing.case_routes(event, province, ctx.provinces, self._owner, last.get("routes"))
            entity["routes"] = routes.delivered
            stage = routing.case_stage(event)
            for target, (reasons, responsible) in routes.deliver.items():
                self._route(event, target, reasons, routing.correlation_id(province, entity_key), stage, responsible)
            self._wait(entity, last.get(WAITING) or [], routes.waiting, stage)
        for key, value in routing.ownership_entries(event, routing.owner_entry(province, region)):
            if self.state.get(OWNER + key) == value:
                continue  # the ownership table says so already: an update within the province changes nothing there
            self.state[OWNER + key] = value
            result.ownership.append((key, value))
        self._write(state_key, entity)
        self._forward(event, stale=False)

    def _wait(self, entity: dict[str, Any], before: Sequence[str], waiting: Mapping[str, str], stage: str) -> None:
        """Keep a waiting entry for each entity the case names that no register holds yet, holding
        the first version of each stage the case reached meanwhile (``streams.waiting`` delivers
        them once a register holds the entity), and clear those it no longer waits on."""
        case_key = (self.event or {})["entity_key"]
        for registry in before:
            if registry not in waiting:
                self._write(routing.wait_key(registry, case_key), None)
        for registry, field_name in waiting.items():
            key = routing.wait_key(registry, case_key)
            held = self.state.get(key) or {}
            stages = list(held.get("stages") or [])
            if stage in (s for s, _value in stages):
                continue  # this stage's first version waits already, as it would have been delivered
            stages.append([stage, base64.b64encode(self.message.value or b"").decode()])
            self._write(key, {"registry": registry, "case": case_key, "field": field_name, "source": self.province,
                              "partition": self.message.partition, "stages": stages})
        if waiting:
            entity[WAITING] = sorted(waiting)

    def _forward(self, event: Mapping[str, Any], stale: bool) -> None:
        message = self.message
        headers = [
            (SOURCE_TOPIC, message.topic.encode("utf-8")),
            (SOURCE_PARTITION, str(message.partition).encode("ascii")),
            (SOURCE_OFFSET, str(message.offset).encode("ascii")),
        ]
        if stale:
            headers.append((topic_headers.STALE, b"true"))
        self.result.outputs.append(
            Outbound(self.ctx.topics.national_changes, event["entity_key"].encode("utf-8"), message.value, headers,
                     self.index))

    def _route(self, event: Mapping[str, Any], target: str, reasons: list[str], correlation: str, stage: str,
               region: str) -> None:
        self.result.outputs.append(routed_copy(self.ctx.topics, self.province, target, event["entity_key"],
                                               self.message.value, reasons, correlation, stage, region, self.index))
        self.result.routed[(self.province, target)] += 1


def routed_copy(topics: TopicNames, source: str, target: str, case_key: str, value: bytes | None,
                reasons: Sequence[str], correlation: str, stage: str, region: str, origin: int = -1) -> Outbound:
    """A case's copy on ``xprov.<target>.inbound``: its bytes as sent, and why and where it goes in headers."""
    return Outbound(
        topics.province_inbound(target),
        case_key.encode("utf-8"),
        value,
        [
            (topic_headers.ROUTED_FROM, source.encode("ascii")),
            (topic_headers.ROUTED_TO, target.encode("ascii")),
            (topic_headers.ROUTED_REASON, ",".join(reasons).encode("ascii")),
            (topic_headers.ROUTED_CORRELATION_ID, correlation.encode("ascii")),
            (topic_headers.ROUTED_STAGE, stage.encode("utf-8")),
            (topic_headers.ROUTED_REGION, region.encode("ascii")),
        ],
        origin,
    )


def _text_clip(text: str | None, limit: int = HEADER_MAX_BYTES) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit]


def content_hash(record: Mapping[str, Any]) -> str:
    """A digest of a record's content: equal for equal records, whatever the event.

    The digest is of the record's compact JSON with sorted keys (dates and times in ISO 8601,
    bytes in hex), the same text ``json.dumps(..., sort_keys=True, ensure_ascii=False,
    separators=(",", ":"))`` writes, so digests stored by earlier versions still compare.
    """
    text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=_json_value)
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot hash a {type(value).__name__}")


def _epoch_ms(ts: Any) -> int:
    return int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)
