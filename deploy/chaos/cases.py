"""The target provinces' replies in a chaos run, and the check of the case workflows (pure).

While the line is broken on purpose, each province answers the cases routed to it as its
own systems would (``deploy.chaos.desk`` reads ``xprov.<Q>.inbound`` and sends through
``streams.cases.replies``). What it does with a routed (correlation id, target) is drawn
from the run's seed by ``plan_replies``: a receipt (for some sent again after the rest, the
same reply, which changes nothing), then most often an answer with an outcome (some after a
progress report), for
some a decline that re-routes the case to a province it does not involve (which then
replies to its new workflow too, never declining), for some only the receipt or a progress
report, and for some nothing (left open). The replies actually sent (``SentReply``) are the
truth of the run.

``check_cases`` compares that truth with what the line made of it: the workflows the store
shows (``CaseStore``: the ``case_workflows`` view and the ``case_replies`` table) and what
the case workflows wrote on the topics (``TopicSnapshot``: the replies forwarded to the
origins' inbound topics, the re-routings, the replies refused to ``national.dlq``). Every
routed (correlation id, target), and every re-routing a decline asked for, has one workflow
in the state its replies say; every reply sent reached its origin once; none was refused;
no reply moved a workflow twice and no workflow has a second answer or decline.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol, Sequence

from schemas.codes import ANSWER, DECLINE, PROGRESS, RECEIPT, REPLY_OUTCOMES
from schemas.topics import REDIRECTED, REPLY_KIND, ROUTED_CORRELATION_ID, ROUTED_FROM, ROUTED_REASON
from streams.cases.replies import receipt_id
from streams.cases.workflow import ANSWERED, DECLINED, IN_PROGRESS, RECEIVED, ROUTED

EXAMPLES = 5  # examples named in a problem


class CaseTopics(Protocol):
    """What the case workflows wrote on the topics (``deploy.chaos.check.TopicSnapshot``)."""

    replies: dict[str, int]  # reply id -> forwards to its origin's inbound topic
    rerouted: dict[tuple[str, str], int]  # (correlation id, new target) -> copies of the declined case
    refused: dict[str, int]  # rule -> replies refused to national.dlq

# The roadx.routed.reason the case workflows give a case a decline sent on to another province.
REPLY_NAMESPACE = uuid.UUID("5d6c1f0e-2b7a-4c3d-9e8f-a1b2c3d4e5f6")
CLOSING = (ANSWER, DECLINE)

# Shares of the routed (case, target) pairs, drawn per pair: left open, only acknowledged,
# acknowledged and reported in progress, declined (by the case's first target only, so a
# case is declined at most once), the rest answered.
OPEN_SHARE, RECEIPT_SHARE, PROGRESS_SHARE, DECLINE_SHARE = 0.10, 0.15, 0.10, 0.20
REPEAT_SHARE = 0.25  # receipts sent a second time (the same reply id)
PROGRESS_BEFORE_ANSWER = 0.3  # answers that follow a progress report


@dataclass(frozen=True)
class Routing:
    """A case on a target's inbound topic, as the target's system sees it."""

    correlation_id: str
    target: str
    origin: str
    case_key: str
    redirected: bool  # sent on by a decline, not routed by the stream stage

    @property
    def workflow(self) -> tuple[str, str]:
        return self.correlation_id, self.target


@dataclass(frozen=True)
class Step:
    """One reply a target sends, ``after`` seconds after it saw the case."""

    after: float
    kind: str
    reply_id: str
    outcome: str | None = None
    redirect_to: str | None = None


@dataclass(frozen=True)
class SentReply:
    correlation_id: str
    target: str  # the province replying
    kind: str
    reply_id: str
    outcome: str | None = None
    redirect_to: str | None = None

    @property
    def workflow(self) -> tuple[str, str]:
        return self.correlation_id, self.target


@dataclass(frozen=True)
class Expected:
    state: str
    outcome: str | None = None
    redirect_to: str | None = None


def routing_of(target: str, headers: Mapping[str, str], key: bytes | None) -> Routing | None:
    """The routed case a message on ``target``'s inbound topic is, or None (a reply forwarded
    to ``target`` as an origin, or a message without a correlation id)."""
    if REPLY_KIND in headers or not headers.get(ROUTED_CORRELATION_ID) or key is None:
        return None
    return Routing(headers[ROUTED_CORRELATION_ID], target, headers.get(ROUTED_FROM, ""),
                   key.decode("utf-8", "replace"), headers.get(ROUTED_REASON) == REDIRECTED)


def redirect_candidates(provinces: Sequence[str], origin: str, case_targets: Iterable[str]) -> list[str]:
    """Provinces a case may be declined to: of the exchange, neither its origin nor one it was routed to."""
    involved = {origin, *case_targets}
    return [p for p in provinces if p not in involved]


def plan_replies(seed: int, routing: Routing, case_targets: Sequence[str], candidates: Sequence[str]) -> list[Step]:
    """What ``routing.target`` sends for the case, in order; the same for the same seed and case.

    ``case_targets`` are the provinces the stream stage routes the case to (only the first of
    them may decline it, so a case is declined once at most) and ``candidates`` the provinces a
    decline may send it to (none: a decline is an answer instead).
    """
    rng = random.Random(f"{seed}/{routing.correlation_id}/{routing.target}")
    draw = rng.random()
    receipt_at = round(rng.uniform(0.0, 2.0), 2)
    closing_at = round(receipt_at + rng.uniform(0.5, 5.0), 2)
    repeat = rng.random() < REPEAT_SHARE
    outcome = REPLY_OUTCOMES[int(rng.random() * len(REPLY_OUTCOMES))]
    redirect = candidates[int(rng.random() * len(candidates))] if candidates else None
    with_progress = rng.random() < PROGRESS_BEFORE_ANSWER

    def step(after: float, kind: str, **extra: str | None) -> Step:
        return Step(after, kind, _reply_id(seed, routing, kind), **extra)

    if draw < OPEN_SHARE:
        return []
    steps = [Step(receipt_at, RECEIPT, receipt_id(routing.correlation_id, routing.target))]
    if repeat:  # the same receipt again, after the rest: it changes nothing
        steps.append(Step(round(closing_at + 0.5, 2), RECEIPT, steps[0].reply_id))
    progress = step(round((receipt_at + closing_at) / 2, 2), PROGRESS)
    first_target = not routing.redirected and min(case_targets, default=routing.target) == routing.target
    if draw < OPEN_SHARE + RECEIPT_SHARE:
        then = []
    elif draw < OPEN_SHARE + RECEIPT_SHARE + PROGRESS_SHARE:
        then = [progress]
    elif draw < OPEN_SHARE + RECEIPT_SHARE + PROGRESS_SHARE + DECLINE_SHARE and first_target and redirect:
        then = [step(closing_at, DECLINE, redirect_to=redirect)]
    else:
        then = [*([progress] if with_progress else []), step(closing_at, ANSWER, outcome=outcome)]
    return sorted([*steps, *then], key=lambda s: s.after)


def _reply_id(seed: int, routing: Routing, kind: str) -> str:
    return str(uuid.uuid5(REPLY_NAMESPACE, f"{seed}/{routing.correlation_id}/{routing.target}/{kind}"))


def expected_of(sent: Iterable[SentReply]) -> Expected:
    """The state a workflow's replies put it in: the furthest of them, a closing one's details."""
    kinds = {r.kind: r for r in sent}
    if ANSWER in kinds:
        return Expected(ANSWERED, outcome=kinds[ANSWER].outcome)
    if DECLINE in kinds:
        return Expected(DECLINED, redirect_to=kinds[DECLINE].redirect_to)
    if PROGRESS in kinds:
        return Expected(IN_PROGRESS)
    return Expected(RECEIVED if RECEIPT in kinds else ROUTED)


@dataclass
class CaseTruth:
    routed: frozenset[tuple[str, str]]  # (correlation id, target) the stream stage must route
    sent: list[SentReply] = field(default_factory=list)  # every reply sent, repeats included, in order

    def workflows(self) -> dict[tuple[str, str], Expected]:
        """Every workflow there must be (the routed ones and the re-routings asked for) and its state."""
        replies: dict[tuple[str, str], list[SentReply]] = {pair: [] for pair in self.routed}
        for reply in self.sent:
            replies.setdefault(reply.workflow, []).append(reply)
            if reply.kind == DECLINE and reply.redirect_to:
                replies.setdefault((reply.correlation_id, reply.redirect_to), [])
        return {pair: expected_of(sent) for pair, sent in replies.items()}

    @property
    def rerouted(self) -> set[tuple[str, str]]:
        return {(r.correlation_id, r.redirect_to) for r in self.sent if r.kind == DECLINE and r.redirect_to}


@dataclass(frozen=True)
class StoredWorkflow:
    state: str
    outcome: str | None = None
    redirect_to: str | None = None


@dataclass
class CaseStore:
    """The case workflows as the store shows them."""

    workflows: dict[tuple[str, str], StoredWorkflow] = field(default_factory=dict)  # case_workflows
    replies: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # case_replies: id -> (cid, from, kind)


@dataclass
class CaseResult:
    workflows: int  # expected: routed and re-routed
    states: dict[str, int]  # expected workflows per state
    rerouted: int  # declines that sent their case on
    replies_sent: int  # distinct reply ids
    repeats_sent: int  # the same reply sent again
    missing: int  # expected workflows the store does not show
    unexpected: int  # workflows the store shows that nobody routed or re-routed
    state_differ: int  # shown in another state, outcome or re-routing than the replies say
    replies_lost: int  # sent, and not stored as forwarded to the origin (nor on its inbound topic)
    closing_not_one: int  # closed workflows without exactly one answer or decline stored, open ones with any
    # From the topics; None when they were not read.
    replies_refused: int | None = None  # replies on national.dlq
    second_transitions: int | None = None  # extra forwards of one reply id, extra re-routings of one workflow
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_cases(truth: CaseTruth, store: CaseStore, topics: CaseTopics | None = None) -> CaseResult:
    """Missing, unexpected and differing workflows, lost, refused and doubled replies against the truth.

    Without ``topics`` (while the run waits for the store to settle), only the store's side.
    """
    expected = truth.workflows()
    sent_ids = {r.reply_id: r for r in truth.sent}
    missing = sorted(expected.keys() - store.workflows.keys())
    unexpected = sorted(store.workflows.keys() - expected.keys())
    differ = []
    for pair in sorted(expected.keys() & store.workflows.keys()):
        want, got = expected[pair], store.workflows[pair]
        if (want.state, want.outcome, want.redirect_to) != (got.state, got.outcome, got.redirect_to):
            differ.append(f"{pair}: {got.state}/{got.outcome}/{got.redirect_to}, expected "
                          f"{want.state}/{want.outcome}/{want.redirect_to}")
    lost = sorted(i for i in sent_ids if i not in store.replies)
    closing = Counter((cid, sender) for cid, sender, kind in store.replies.values() if kind in CLOSING)
    closing_wrong = sorted((pair, closing.get(pair, 0)) for pair, want in expected.items()
                           if closing.get(pair, 0) != (want.state in (ANSWERED, DECLINED)))
    result = CaseResult(
        workflows=len(expected), states=dict(sorted(Counter(w.state for w in expected.values()).items())),
        rerouted=len(truth.rerouted), replies_sent=len(sent_ids), repeats_sent=len(truth.sent) - len(sent_ids),
        missing=len(missing), unexpected=len(unexpected), state_differ=len(differ), replies_lost=len(lost),
        closing_not_one=len(closing_wrong))
    problems = result.problems
    if missing:
        problems.append(f"{len(missing)} case workflows missing from the store, e.g. {missing[:EXAMPLES]}")
    if unexpected:
        problems.append(f"{len(unexpected)} case workflows nobody routed, e.g. {unexpected[:EXAMPLES]}")
    if differ:
        problems.append(f"{len(differ)} case workflows in another state than their replies say, "
                        f"e.g. {differ[:EXAMPLES]}")
    if lost:
        problems.append(f"{len(lost)} replies sent never reached the origin's store, "
                        f"e.g. {[_named(sent_ids[i]) for i in lost[:EXAMPLES]]}")
    if closing_wrong:
        problems.append(f"{len(closing_wrong)} case workflows whose answers and declines stored are not the one "
                        f"(or none) sent, e.g. {closing_wrong[:EXAMPLES]}")
    if topics is not None:
        _check_topics(sent_ids, set(lost), topics, result)
    return result


def _check_topics(sent_ids: Mapping[str, SentReply], lost: set[str], topics: CaseTopics,
                  result: CaseResult) -> None:
    not_forwarded = sorted(i for i in sent_ids if i not in topics.replies)
    forwarded_twice = {i: n for i, n in topics.replies.items() if n > 1}
    rerouted_twice = {pair: n for pair, n in topics.rerouted.items() if n > 1}
    result.replies_lost = len(lost | set(not_forwarded))
    result.replies_refused = sum(topics.refused.values())
    result.second_transitions = (sum(n - 1 for n in forwarded_twice.values())
                                 + sum(n - 1 for n in rerouted_twice.values()))
    problems = result.problems
    if not_forwarded:
        problems.append(f"{len(not_forwarded)} replies sent are not on their origin's inbound topic, "
                        f"e.g. {[_named(sent_ids[i]) for i in not_forwarded[:EXAMPLES]]}")
    if result.replies_refused:
        problems.append(f"{result.replies_refused} replies refused to national.dlq, by rule: "
                        f"{dict(sorted(topics.refused.items()))}")
    if forwarded_twice:
        shown = [(_named(sent_ids[i]) if i in sent_ids else i, n) for i, n in sorted(forwarded_twice.items())]
        problems.append(f"{len(forwarded_twice)} replies moved a workflow more than once (forwarded to the origin "
                        f"{sum(forwarded_twice.values())} times), e.g. {shown[:EXAMPLES]}")
    if rerouted_twice:
        problems.append(f"{len(rerouted_twice)} declined cases sent on more than once, "
                        f"e.g. {sorted(rerouted_twice.items())[:EXAMPLES]}")


def _named(reply: SentReply) -> str:
    return f"{reply.kind} {reply.reply_id} of {reply.correlation_id} by {reply.target}"
