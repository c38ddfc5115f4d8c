"""A routed case's workflow at one target province, as pure decisions.

One workflow per (correlation id, target): the case was routed to the target, which
acknowledges it (a receipt 回执, sent by its subscriber), may report it in progress, and ends
it with an answer (what it did) or a decline (not ours, with a reason; naming the province it
belongs to re-routes it there as a new workflow).

    routed ──receipt──► received ──progress──► in_progress ──answer──► answered
       │                   │                         │
       └───────────────────┴─────────decline─────────┴──────────────► declined (→ re-routed)

Every reply is decided by ``apply_reply``: a transition, an idempotent repeat (the same
reply again, or a receipt or progress for a workflow already past it — say a subscriber's
automatic receipt that arrives after a quick answer: nothing changes), or a refusal with its
rule (an unknown workflow, a reply from a province that is not the target, a second answer or
decline to a closed workflow, an unknown kind, a decline without a reason). An answer or a decline before the receipt is read as the receipt as well: the
target plainly had the case. Never a second transition for one reply.

Deadlines (``schemas.deadlines.Deadlines``, optionally per routing reason) are checked by
``overdue``: each missed deadline of a workflow is reported once, its flag kept in the state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemas.codes import ANSWER, DECLINE, PROGRESS, RECEIPT, REPLY_KINDS as KINDS, REPLY_OUTCOMES as OUTCOMES

from schemas.deadlines import Deadlines

ROUTED, RECEIVED, IN_PROGRESS, ANSWERED, DECLINED = "routed", "received", "in_progress", "answered", "declined"
STATES = (ROUTED, RECEIVED, IN_PROGRESS, ANSWERED, DECLINED)
OPEN = (ROUTED, RECEIVED, IN_PROGRESS)

# The state a reply moves an open workflow to.
_TARGET_STATE = {RECEIPT: RECEIVED, PROGRESS: IN_PROGRESS, ANSWER: ANSWERED, DECLINE: DECLINED}
_ORDER = {ROUTED: 0, RECEIVED: 1, IN_PROGRESS: 2, ANSWERED: 3, DECLINED: 3}


@dataclass(frozen=True)
class Workflow:
    correlation_id: str
    case_key: str
    origin: str  # the province that routed the case
    target: str  # the province that must act on it
    reasons: tuple[str, ...]
    region: str  # the responsible county or city (6-digit region code)
    routed_at: float
    state: str = ROUTED
    stages: tuple[str, ...] = ()  # every stage of the case routed to the target, in order
    received_at: float | None = None
    answered_at: float | None = None
    outcome: str | None = None
    reason: str | None = None  # of a decline
    redirect_to: str | None = None  # a decline's province the case belongs to
    replies: tuple[str, ...] = ()  # ids of the replies applied, for idempotence
    alerted: tuple[str, ...] = ()  # deadlines already reported: "receipt", "answer"

    @property
    def key(self) -> str:
        return workflow_key(self.correlation_id, self.target)

    @property
    def closed(self) -> bool:
        return self.state not in OPEN


@dataclass(frozen=True)
class Reply:
    reply_id: str
    correlation_id: str
    from_province: str
    kind: str
    at: float
    outcome: str | None = None
    reason: str | None = None
    redirect_to: str | None = None


@dataclass(frozen=True)
class Decision:
    """What a reply did: ``workflow`` after it (None when refused), whether it moved the
    workflow, the refusal's ``rule``, and a re-routing (the new target) for a decline."""

    workflow: Workflow | None
    moved: bool = False
    rule: str | None = None
    detail: str = ""
    reroute_to: str | None = None

    @property
    def refused(self) -> bool:
        return self.rule is not None


def workflow_key(correlation_id: str, target: str) -> str:
    return f"{correlation_id}/{target}"


def route(held: Workflow | None, new: Workflow, stage: str) -> Workflow:
    """A case routed to a target: a new workflow, or a later stage added to the one held."""
    if held is None:
        return replace(new, stages=(stage,))
    if stage in held.stages:
        return held
    return replace(held, stages=(*held.stages, stage))


def apply_reply(held: Workflow | None, reply: Reply, provinces: frozenset[str],
                targets: tuple[str, ...] = ()) -> Decision:
    """Decide one reply against the workflow it names (None: none at the replying province;
    ``targets`` are the provinces the case was routed to, if it was routed at all)."""
    if held is None and targets:
        return Decision(None, rule="not_the_target",
                        detail=f"case {reply.correlation_id} was routed to {', '.join(targets)}, "
                               f"not {reply.from_province}")
    if held is None:
        return Decision(None, rule="unknown_correlation", detail=f"no case {reply.correlation_id} was routed")
    if reply.from_province != held.target:
        return Decision(None, rule="not_the_target",
                        detail=f"case {held.correlation_id} was routed to {held.target}, not {reply.from_province}")
    if reply.reply_id in held.replies:
        return Decision(held)  # the same reply again
    if reply.kind not in KINDS:
        return Decision(None, rule="unknown_reply_kind", detail=f"kind {reply.kind!r}: one of {', '.join(KINDS)}")
    problem = _incomplete(reply, held, provinces)
    if problem:
        return Decision(None, rule=problem[0], detail=problem[1])
    target_state = _TARGET_STATE[reply.kind]
    if held.closed and reply.kind in (ANSWER, DECLINE):
        return Decision(None, rule="workflow_closed",
                        detail=f"case {held.correlation_id} at {held.target} is already {held.state}")
    if _ORDER[target_state] <= _ORDER[held.state]:
        return Decision(replace(held, replies=(*held.replies, reply.reply_id)))  # already past it
    after = replace(held, state=target_state, replies=(*held.replies, reply.reply_id),
                    received_at=held.received_at if held.received_at is not None else reply.at)
    if reply.kind == ANSWER:
        after = replace(after, answered_at=reply.at, outcome=reply.outcome)
    elif reply.kind == DECLINE:
        after = replace(after, answered_at=reply.at, reason=reply.reason, redirect_to=reply.redirect_to)
    return Decision(after, moved=True, reroute_to=reply.redirect_to if reply.kind == DECLINE else None)


def _incomplete(reply: Reply, held: Workflow, provinces: frozenset[str]) -> tuple[str, str] | None:
    if reply.kind == ANSWER and reply.outcome not in OUTCOMES:
        return "bad_outcome", f"an answer's outcome is one of {', '.join(OUTCOMES)}, not {reply.outcome!r}"
    if reply.kind == DECLINE:
        if not (reply.reason or "").strip():
            return "decline_without_reason", "a decline says why the case is not the province's"
        if reply.redirect_to is not None and (reply.redirect_to not in provinces
                                              or reply.redirect_to in (held.target, held.origin)):
            return "bad_redirect", (f"a declined case goes on to another province of the exchange, "
                                    f"not {reply.redirect_to!r}")
    return None


def overdue(held: Workflow, now: float, deadlines: Deadlines) -> tuple[Workflow, list[str]]:
    """The deadlines ``held`` has missed at ``now`` and not reported yet ("receipt", "answer"),
    and the workflow with them marked reported."""
    if held.closed:
        return held, []
    receipt, answer = deadlines.for_reasons(held.reasons)
    missed = []
    if held.state == ROUTED and now > held.routed_at + receipt and "receipt" not in held.alerted:
        missed.append("receipt")
    if now > held.routed_at + answer and "answer" not in held.alerted:
        missed.append("answer")
    if not missed:
        return held, []
    return replace(held, alerted=(*held.alerted, *missed)), missed
