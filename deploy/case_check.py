"""The demo's provinces answer their cases: each province acknowledges every case routed to it
and answers every other one, as its own systems would (``streams.cases.replies``); then the
store must show every workflow received and those answered answered (``case_workflows``:
the replies went through the case workflows to the originating provinces, and the sink).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from schemas.codes import ANSWER, RECEIPT
from schemas.settings import Settings
from sinks.store_client import store_client
from streams.cases.replies import ProvinceReplies, receipt_id

from .errors import StackError
from .stack import StackInfo

ANSWER_EVERY = 2  # every second case routed to a province is answered, the rest only acknowledged


@dataclass
class CaseCheck:
    workflows: int = 0  # (case, target province) pairs routed
    replies_sent: int = 0
    received: int = 0  # as the store shows them at the end
    answered: int = 0
    expected_answered: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def answer_cases(settings: Settings, info: StackInfo, timeout: float = 180) -> CaseCheck:
    """Acknowledge every routed case and answer every other one; wait until the store shows it."""
    started = time.monotonic()
    result = CaseCheck()
    client = store_client(settings, info.store_http)
    try:
        db = settings.clickhouse_database
        routed = client.query(f"SELECT correlation_id, target_province, any(entity_key) FROM {db}.routed_cases FINAL "
                              f"WHERE correlation_id != '' GROUP BY correlation_id, target_province "
                              f"ORDER BY correlation_id, target_province").result_rows
        by_target: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for correlation_id, target, case_key in routed:
            by_target[str(target)].append((str(correlation_id), str(case_key)))
        result.workflows = len(routed)
        for target, cases in sorted(by_target.items()):
            replies = ProvinceReplies(settings, target)
            for n, (correlation_id, case_key) in enumerate(cases):
                replies.send(RECEIPT, correlation_id, case_key, reply_id=receipt_id(correlation_id, target))
                result.replies_sent += 1
                if n % ANSWER_EVERY == 0:
                    replies.send(ANSWER, correlation_id, case_key, outcome="action_taken",
                                 note="handled in the demo")
                    result.replies_sent += 1
                    result.expected_answered += 1
            replies.close()
        while True:
            received, answered = client.query(
                f"SELECT countIf(state != 'routed'), countIf(state = 'answered') FROM {db}.case_workflows").result_rows[0]
            result.received, result.answered = int(received), int(answered)
            if result.received >= result.workflows and result.answered >= result.expected_answered:
                break
            if time.monotonic() - started > timeout:
                raise StackError(f"after {timeout:.0f}s the store shows {result.received:,} of {result.workflows:,} "
                                 f"cases received and {result.answered:,} of {result.expected_answered:,} answered")
            time.sleep(0.5)
    finally:
        client.close()
    result.seconds = round(time.monotonic() - started, 1)
    if result.received != result.workflows or result.answered != result.expected_answered:
        result.problems.append(f"the store shows {result.received} received of {result.workflows} and "
                               f"{result.answered} answered of {result.expected_answered}")
    return result
