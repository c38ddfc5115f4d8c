"""What a chaos run must have stored, and the check of a store snapshot against it (pure).

``build_truth`` replays the synthetic generator (deterministic by seed) and keeps what a
correct line makes of its events: the ids of the valid events (each must be in
``change_log`` exactly once, as physical rows), the (case event, target province) pairs
that must be in ``routed_cases`` once, the provinces each case (by correlation id) is
routed to, one case workflow each, and the final register of every province, i.e. the
latest version of each live entity, masked as the store masks it, which the
``current_*`` views must show. ``check`` compares a ``StoreSnapshot`` with it, and with a
``TopicSnapshot`` the messages on ``national.changes`` and the inbound topics, where a
doubled message would be hidden from the store by the sink's own dedup. The case
workflows are checked against the replies sent by ``deploy.chaos.cases``; ``format_report``
prints both.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from producers.synthetic import Generated, SyntheticProvinces
from schemas.identifiers import PROVINCE_OF_PLATE_CHAR
from sinks.ddl import VIEWS
from schemas.pii import PiiMasker
from sinks.rows import to_json
from streams.routing import correlation_id

from ..errors import DeployError
from .cases import EXAMPLES, CaseResult, CaseStore
from .receipts import ReceiptResult

VIEW_OF_TYPE = {entity_type: view for view, (entity_type, _columns) in VIEWS.items()}
# View columns that describe the stored version rather than the entity itself.
VERSION_COLUMNS = frozenset({"entity_key", "last_op", "seq", "ts"})


@dataclass
class Truth:
    produced: int
    valid: int
    duplicates: int
    invalid: int
    valid_ids: frozenset[str]
    routed: frozenset[tuple[str, str]]  # (event_id, target province)
    current: dict[str, dict[str, dict[str, Any]]]  # view -> masked entity key -> expected columns
    cases: dict[str, frozenset[str]] = field(default_factory=dict)  # correlation id -> provinces routed to

    @property
    def workflows(self) -> frozenset[tuple[str, str]]:
        """The (correlation id, target) pairs the stream stage routes: one case workflow each."""
        return frozenset((cid, target) for cid, targets in self.cases.items() for target in targets)


@dataclass
class StoreSnapshot:
    change_log: dict[str, int]  # event_id -> physical rows
    routed: dict[tuple[str, str], int]  # (event_id, target province) -> physical rows
    current: dict[str, dict[str, dict[str, Any]]]  # view -> entity key -> row (column -> value)
    cases: CaseStore | None = None  # the case workflows (deploy.chaos.cases)


@dataclass
class TopicSnapshot:
    changes: dict[str, int]  # event_id -> messages on national.changes
    routed: dict[tuple[str, str], int]  # (event_id, target province) -> messages on xprov.<target>.inbound
    undecodable: dict[str, int] = field(default_factory=dict)  # topic -> messages that are not change events
    # What the case workflows wrote (deploy.chaos.cases): forwards of each reply id to its origin's
    # inbound topic, copies of each declined case sent on to (correlation id, new target), and the
    # replies refused to national.dlq per rule.
    replies: dict[str, int] = field(default_factory=dict)
    rerouted: dict[tuple[str, str], int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    routed_late: int = 0  # routed copies whose case waited for a register to hold its ship (``streams.waiting``)


@dataclass
class CheckResult:
    produced: int
    valid: int
    stored: int  # distinct valid event ids in change_log
    lost: int
    doubled: int
    unexpected: int  # event ids in change_log that are not valid events
    current_rows: int
    current_differ: int
    routed_expected: int
    routed_missing: int
    routed_doubled: int
    routed_unexpected: int
    # From the topics; None when they were not read.
    doubled_on_topic: int | None = None  # extra messages on national.changes beyond one per event
    routed_doubled_on_topic: int | None = None  # extra messages on the inbound topics beyond one per routed case
    undecodable_on_topic: int | None = None  # messages on those topics that are not change events
    routed_late_on_topic: int | None = None  # routed copies sent once the ship their case names was registered
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def case_targets(event: Mapping[str, Any], ship_party: Mapping[str, str]) -> set[str]:
    """Parties other than the source that a valid case event must be delivered to; ``ship_party``
    maps each ship registered so far to the party that registered it."""
    if event["entity_type"] != "case":
        return set()
    record = event["after"] if event["after"] is not None else event["before"]
    targets = set()
    if record.get("involved_plate"):
        targets.add(PROVINCE_OF_PLATE_CHAR[record["involved_plate"][0]])
    if record.get("involved_operator_uscc"):
        targets.add(record["involved_operator_uscc"][2:4])
    if record.get("involved_id_number"):
        targets.add(record["involved_id_number"][:2])
    if record.get("involved_ship_id"):  # generated after its ship, which may reach the line after it
        targets.add(ship_party[record["involved_ship_id"]])
    targets.discard(event["source"]["province"])
    return targets


def truth_from_events(items: Iterable[Generated], masker: PiiMasker) -> Truth:
    """Replay generated items: valid ids, routes and the final registers as the store shows them."""
    kinds: Counter = Counter()
    valid_ids: set[str] = set()
    routed: set[tuple[str, str]] = set()
    cases: dict[str, set[str]] = {}
    latest: dict[str, dict[str, tuple[dict, str]]] = {view: {} for view in VIEWS}
    ship_party: dict[str, str] = {}
    for item in items:
        kinds[item.kind] += 1
        if item.kind != "valid":
            continue
        event = item.event
        valid_ids.add(event["event_id"])
        if event["entity_type"] == "ship" and event["after"] is not None:
            ship_party[event["after"]["ship_id"]] = item.province
        targets = case_targets(event, ship_party)
        routed.update((event["event_id"], target) for target in targets)
        if targets:
            cases.setdefault(correlation_id(event["source"]["province"], event["entity_key"]), set()).update(targets)
        register = latest[VIEW_OF_TYPE[event["entity_type"]]]
        if event["op"] == "d":
            register.pop(event["entity_key"], None)
        else:
            register[event["entity_key"]] = (event["after"], item.province)
    current = {
        view: {masker.entity_key(key): {**json.loads(to_json(masker.record(after))), "province": province}
               for key, (after, province) in register.items()}
        for view, register in latest.items()
    }
    return Truth(produced=sum(kinds.values()), valid=kinds["valid"], duplicates=kinds["duplicate"],
                 invalid=kinds["invalid"], valid_ids=frozenset(valid_ids), routed=frozenset(routed), current=current,
                 cases={cid: frozenset(targets) for cid, targets in cases.items()})


def build_truth(provinces: Sequence[str], seed: int, events: int, masker: PiiMasker, duplicate_rate: float = 0.02,
                invalid_rate: float = 0.01) -> Truth:
    """The truth of a synthetic run; raises ``DeployError`` if the route mirror disagrees with the generator."""
    generator = SyntheticProvinces(provinces, seed, duplicate_rate, invalid_rate)
    truth = truth_from_events(generator.events(events), masker)
    mirrored = Counter(target for _event_id, target in truth.routed)
    expected = {q: n for q, n in generator.expected.routed.items() if n}
    if dict(mirrored) != expected:
        raise DeployError(f"routes replayed from the events {dict(mirrored)} differ from the generator's {expected}")
    return truth


def normalise(value: Any) -> Any:
    """A store value in the form the truth's JSON has: dates ISO, timestamps epoch ms, arrays lists."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return round(value.timestamp() * 1000)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [normalise(v) for v in value]
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def row_differences(expected: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    """Columns of a current-state row that differ from the expected entity (a missing text reads as '')."""
    out = []
    for column, value in row.items():
        if column in VERSION_COLUMNS:
            continue
        want, got = expected.get(column), normalise(value)
        if want == got or (want is None and got == ""):
            continue
        out.append(f"{column}: stored {got!r}, expected {want!r}")
    return out


def check(truth: Truth, snapshot: StoreSnapshot, topics: TopicSnapshot | None = None) -> CheckResult:
    """Lost, doubled, unexpected, differing and misrouted counts of a snapshot against the truth.

    With ``topics``, also the messages doubled on ``national.changes`` and the inbound topics.
    Events missing from the topics are not counted again: they are lost, and the store shows it.
    """
    stored_ids = set(snapshot.change_log)
    lost = sorted(truth.valid_ids - stored_ids)
    unexpected = sorted(stored_ids - truth.valid_ids)
    doubled = {i: n for i, n in snapshot.change_log.items() if n > 1}
    differ: list[str] = []
    for view, entities in truth.current.items():
        rows = snapshot.current.get(view, {})
        for key in sorted(entities.keys() - rows.keys()):
            differ.append(f"{view} {key}: missing")
        for key in sorted(rows.keys() - entities.keys()):
            differ.append(f"{view} {key}: not in the register")
        for key in sorted(entities.keys() & rows.keys()):
            diffs = row_differences(entities[key], rows[key])
            if diffs:
                differ.append(f"{view} {key}: " + "; ".join(diffs))
    routed_keys = set(snapshot.routed)
    routed_missing = sorted(truth.routed - routed_keys)
    routed_unexpected = sorted(routed_keys - truth.routed)
    routed_doubled = {k: n for k, n in snapshot.routed.items() if n > 1}
    result = CheckResult(
        produced=truth.produced, valid=truth.valid, stored=len(stored_ids & truth.valid_ids), lost=len(lost),
        doubled=sum(n - 1 for n in doubled.values()), unexpected=len(unexpected),
        current_rows=sum(len(rows) for rows in snapshot.current.values()), current_differ=len(differ),
        routed_expected=len(truth.routed), routed_missing=len(routed_missing),
        routed_doubled=sum(n - 1 for n in routed_doubled.values()), routed_unexpected=len(routed_unexpected),
    )
    problems = result.problems
    if lost:
        problems.append(f"{len(lost)} valid events are not in change_log, e.g. {lost[:EXAMPLES]}")
    if doubled:
        problems.append(f"{result.doubled} extra change_log rows for {len(doubled)} events, "
                        f"e.g. {sorted(doubled.items())[:EXAMPLES]}")
    if unexpected:
        problems.append(f"{len(unexpected)} events in change_log are not valid events, e.g. {unexpected[:EXAMPLES]}")
    if differ:
        problems.append(f"{len(differ)} current-state rows differ from the registers, e.g. {differ[:EXAMPLES]}")
    if routed_missing:
        problems.append(f"{len(routed_missing)} routed cases missing, e.g. {routed_missing[:EXAMPLES]}")
    if routed_doubled:
        problems.append(f"{result.routed_doubled} extra routed_cases rows, "
                        f"e.g. {sorted(routed_doubled.items())[:EXAMPLES]}")
    if routed_unexpected:
        problems.append(f"{len(routed_unexpected)} routed cases not expected, e.g. {routed_unexpected[:EXAMPLES]}")
    if topics is not None:
        check_topics(topics, result)
    return result


def check_topics(topics: TopicSnapshot, result: CheckResult) -> None:
    """Fill ``result``'s topic counts from ``topics`` and add a problem for each kind of double."""
    doubled = {i: n for i, n in topics.changes.items() if n > 1}
    routed_doubled = {k: n for k, n in topics.routed.items() if n > 1}
    result.doubled_on_topic = sum(n - 1 for n in doubled.values())
    result.routed_doubled_on_topic = sum(n - 1 for n in routed_doubled.values())
    result.undecodable_on_topic = sum(topics.undecodable.values())
    result.routed_late_on_topic = topics.routed_late
    if doubled:
        result.problems.append(f"{result.doubled_on_topic} extra messages on national.changes for {len(doubled)} "
                               f"events, e.g. {sorted(doubled.items())[:EXAMPLES]}")
    if routed_doubled:
        result.problems.append(f"{result.routed_doubled_on_topic} extra messages on the inbound topics for "
                               f"{len(routed_doubled)} routed cases, e.g. {sorted(routed_doubled.items())[:EXAMPLES]}")
    if result.undecodable_on_topic:
        where = {t: n for t, n in sorted(topics.undecodable.items()) if n}
        result.problems.append(f"{result.undecodable_on_topic} messages on the output topics are not change "
                               f"events: {where}")


@dataclass
class ChaosReport:
    check: CheckResult
    kills: dict[str, int]  # target -> kills survived (killed and started again)
    outages: int
    outage_seconds: float
    crashes: dict[str, int]  # target -> exits nobody asked for (restarted)
    seconds: float
    problems: list[str] = field(default_factory=list)  # of the run itself (a stall, a part that stayed down)
    cases: CaseResult | None = None  # the case workflows against the replies sent (deploy.chaos.cases)
    receipts: ReceiptResult | None = None  # the hub's receipts against the events sent (deploy.chaos.receipts)

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.problems and (self.cases is None or self.cases.ok) \
            and (self.receipts is None or self.receipts.ok)

    @property
    def exit_status(self) -> int:
        """0 when every check passed, else 1."""
        return 0 if self.ok else 1

    def as_dict(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def format_report(report: ChaosReport, rounds: int) -> str:
    c = report.check
    kills = ", ".join(f"{t} {n}" for t, n in sorted(report.kills.items())) or "none"
    rows: list[tuple[str, int | None, str]] = [
        ("events produced", c.produced, f"({c.valid:,} valid)"),
        ("lost", c.lost, ""),
        ("doubled in change_log", c.doubled, ""),
        ("doubled on national.changes", c.doubled_on_topic, ""),
        ("unexpected in log", c.unexpected, ""),
        ("current rows differing", c.current_differ, f"(of {c.current_rows:,})"),
        ("routed cases missing", c.routed_missing, f"(of {c.routed_expected:,})"),
        ("routed cases doubled", c.routed_doubled, ""),
        ("routed doubled on inbound topics", c.routed_doubled_on_topic, ""),
    ]
    if c.routed_late_on_topic:
        rows.append(("routed after waiting", c.routed_late_on_topic, "(copies of cases that reached the line "
                                                                      "before the ship they name)"))
    if c.undecodable_on_topic:
        rows.append(("undecodable on output topics", c.undecodable_on_topic, ""))
    if report.cases is not None:
        rows += case_rows(report.cases)
    if report.receipts is not None:
        r = report.receipts
        rows += [("submissions", r.submissions, f"({r.receipted:,} with exactly one receipt of the hub; "
                                                f"{r.receipts_sent_again:,} receipts sent again as the same bytes)"),
                 ("submissions without one receipt", r.submissions - r.receipted, ""),
                 ("receipts not the truth", r.counts_differ, "(status or counts)")]
    rows += [
        ("kills survived", sum(report.kills.values()), f"({kills})"),
        ("outages survived", report.outages, f"({report.outage_seconds:.1f}s broker unreachable)"),
    ]
    width = max(len(label) for label, _n, _note in rows)
    lines = [f"roadx chaos — {rounds} rounds, {report.seconds:.0f}s"]
    for label, n, note in rows:
        count = f"{n:>9,}" if n is not None else f"{'not read':>9}"
        lines.append(f"  {label:<{width}} {count}  {note}".rstrip())
    if report.crashes:
        crashes = ", ".join(f"{t} {n}" for t, n in sorted(report.crashes.items()))
        lines.append(f"  unplanned exits (restarted): {crashes}")
    lines.append("PASSED: nothing lost, nothing doubled" if report.ok else "FAILED:")
    lines += [f"  - {p}" for p in (*report.problems, *c.problems, *(report.cases.problems if report.cases else ()),
                                   *(report.receipts.problems if report.receipts else ()))]
    return "\n".join(lines)


def case_rows(c: CaseResult) -> list[tuple[str, int | None, str]]:
    """The summary's rows of the case workflows' check."""
    states = ", ".join(f"{'no reply' if state == 'routed' else state.replace('_', ' ')} {n:,}"
                       for state, n in c.states.items())
    return [
        ("case workflows", c.workflows, f"({states}; {c.rerouted:,} re-routed by a decline)"),
        ("workflows missing", c.missing, ""),
        ("workflows unexpected", c.unexpected, ""),
        ("workflow states differing", c.state_differ, ""),
        ("replies lost", c.replies_lost, f"(of {c.replies_sent:,} sent, and {c.repeats_sent:,} sent again)"),
        ("replies refused to national.dlq", c.replies_refused, ""),
        ("second transitions", c.second_transitions, ""),
        ("closings not exactly one", c.closing_not_one, "(answers or declines per workflow)"),
    ]
