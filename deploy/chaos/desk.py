"""The target provinces' desks in a chaos run: they read the cases routed to them and reply.

``ProvinceDesks`` reads every ``xprov.<Q>.inbound`` from its beginning (assigned, never
committing), takes each (correlation id, target) the first time it shows — routed by the
stream stage or sent on by a decline — plans that target's replies from the run's seed
(``deploy.chaos.cases.plan_replies``) and sends each when it is due, signed as the target
on ``prov.<Q>.replies`` (``streams.cases.replies.ProvinceReplies``, as ``roadx cases`` and
the demo send them). ``tend`` does a little of that each time the run looks round; what
was sent is the run's truth (``sent``, also one JSON line each in ``logs/replies-sent.jsonl``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from schemas.codes import DECLINE
from schemas.kafka import reader_conf
from schemas.settings import Settings
from sinks.rows import header_map
from streams.cases.replies import ProvinceReplies
from streams.errors import StreamError

from ..errors import DeployError
from .cases import Routing, SentReply, Step, plan_replies, redirect_candidates, routing_of

READ_BATCH = 500
DECLINE_REASON = "the parties of this case are registered with us no longer"


class ProvinceDesks:
    def __init__(self, settings: Settings, seed: int, case_targets: Mapping[str, frozenset[str]],
                 log_path: Path) -> None:
        """``case_targets``: the provinces the stream stage routes each case to (by correlation id)."""
        self.settings, self.seed, self.case_targets = settings, seed, case_targets
        self.seen: dict[tuple[str, str], Routing] = {}
        self.sent: list[SentReply] = []
        self._due: list[tuple[float, Routing, Step]] = []  # sorted by time
        self._senders: dict[str, ProvinceReplies] = {}
        self._log = open(log_path, "a", encoding="utf-8")
        self._target_of = {settings.topics.province_inbound(p): p for p in settings.provinces}
        self._reader = Consumer(reader_conf(settings.kafka_conf(), f"{settings.topics.cases_group}-chaos-desks"))
        try:
            metadata = self._reader.list_topics(timeout=10).topics
            self._reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic in self._target_of
                                 for p in sorted(metadata[topic].partitions)])
        except (KafkaException, KeyError) as exc:
            self.close()
            raise DeployError(f"the provinces' desks cannot read the inbound topics: {exc}") from exc

    @property
    def idle(self) -> bool:
        """Nothing planned is left to send."""
        return not self._due

    def tend(self) -> None:
        """Take in the cases routed since the last look, and send the replies now due."""
        now = time.monotonic()
        for m in self._reader.consume(READ_BATCH, 0.05):
            if m.error() is not None or m.topic() not in self._target_of:
                continue
            routing = routing_of(self._target_of[m.topic()], header_map(m.headers()), m.key())
            if routing is None or routing.workflow in self.seen:
                continue
            self.seen[routing.workflow] = routing
            self._plan(routing, now)
        while self._due and self._due[0][0] <= now:
            _at, routing, step = self._due.pop(0)
            self._send(routing, step)
        for sender in self._senders.values():
            sender.producer.poll(0)

    def _plan(self, routing: Routing, now: float) -> None:
        targets = sorted(self.case_targets.get(routing.correlation_id, ()))
        steps = plan_replies(self.seed, routing, targets,
                             redirect_candidates(self.settings.provinces, routing.origin, targets))
        self._due = sorted([*self._due, *((now + step.after, routing, step) for step in steps)],
                           key=lambda due: due[0])

    def _send(self, routing: Routing, step: Step) -> None:
        sender = self._senders.get(routing.target)
        if sender is None:
            sender = self._senders[routing.target] = ProvinceReplies(self.settings, routing.target)
        sender.send(step.kind, routing.correlation_id, routing.case_key, outcome=step.outcome,
                    reason=DECLINE_REASON if step.kind == DECLINE else None, redirect_to=step.redirect_to,
                    note="sent by the chaos run", reply_id=step.reply_id)
        sent = SentReply(routing.correlation_id, routing.target, step.kind, step.reply_id, step.outcome,
                         step.redirect_to)
        self.sent.append(sent)
        self._log.write(json.dumps({**asdict(sent), "case_key": routing.case_key, "at": time.time()},
                                   ensure_ascii=False) + "\n")
        self._log.flush()

    def flush(self, timeout: float = 60) -> None:
        """Send what is still planned now, and wait until the broker has every reply."""
        for _at, routing, step in self._due:
            self._send(routing, step)
        self._due = []
        try:
            for sender in self._senders.values():
                sender.close(timeout)
        except StreamError as exc:
            raise DeployError(str(exc)) from exc

    def close(self) -> None:
        """Let go of the reader and the provinces' producers (before the broker stops)."""
        self._senders.clear()
        self._reader.close()
        self._log.close()
