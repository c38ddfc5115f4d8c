"""Exactly-once decision: what to do with an incoming offset range of one topic-partition.

The sink writes each (table, topic, partition) in offset order and commits Kafka offsets
only after the insert, so what the store holds for a (table, topic, partition) is always
a prefix of the partition: every row up to the highest stored offset. Given that offset,
an incoming range ``[first, last]`` (a retried batch, a replay by a new consumer group,
a redelivery after a crash) is:

    stored max      incoming [first, last]     decision
    ----------      ----------------------     ------------------------------------
    none            any                        INSERT all
    M < first       any                        INSERT all
    M >= last       any                        SKIP (every offset is stored)
    first <= M < last                          TRIM: insert only offsets > M

The same idea as the ClickHouse Kafka connector's state machine (one highest offset per
topic-partition), kept here as a pure function. The writer drops a row the decision would
skip only once the store confirms it holds that very row (see ``writer.decided``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    INSERT = "insert"
    SKIP = "skip"
    TRIM = "trim"


@dataclass(frozen=True)
class Decision:
    action: Action
    keep_from: int | None  # first offset to insert; None when skipping

    def keeps(self, offset: int) -> bool:
        return self.keep_from is not None and offset >= self.keep_from


def decide(first: int, last: int, stored_max: int | None) -> Decision:
    """Insert, skip or trim the incoming offsets ``[first, last]`` given the highest stored offset."""
    if first < 0 or last < first:
        raise ValueError(f"offset range [{first}, {last}] is not a range of offsets")
    if stored_max is None or stored_max < first:
        return Decision(Action.INSERT, first)
    if stored_max >= last:
        return Decision(Action.SKIP, None)
    return Decision(Action.TRIM, stored_max + 1)
