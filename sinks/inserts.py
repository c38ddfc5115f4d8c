"""What one insert into the store holds: a group of rows with its offset range and token.

A ``TableInsert`` is one table's rows from one topic-partition; a ``CombinedInsert`` is
several groups of one table sent as one insert (one part in the store, all or nothing).
Each carries a deterministic ``insert_deduplication_token`` built from its offset ranges,
so an insert retried with the same rows is dropped by the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence


@dataclass
class TableInsert:
    """Rows for one table from one topic-partition, with their offset range.

    ``messages`` (when given) are the Kafka messages the rows came from, same order, so a
    refused row can become a dead letter carrying its raw bytes.
    """

    table: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    rows: list[tuple] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)

    @property
    def token(self) -> str:
        return dedup_token(self.table, self.topic, self.partition, self.first_offset, self.last_offset)

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.first_offset}-{self.last_offset}"


@dataclass
class CombinedInsert:
    """The groups of one table written as one insert: one part, stored all or nothing."""

    table: str
    groups: list[TableInsert]
    rows: list[tuple] = field(init=False)

    def __post_init__(self) -> None:
        if not self.groups or any(g.table != self.table for g in self.groups):
            raise ValueError(f"a combined insert needs groups of {self.table} only")
        self.rows = [row for group in self.groups for row in group.rows]

    @property
    def token(self) -> str:
        if len(self.groups) == 1:
            return self.groups[0].token
        return combined_token(self.table, [(g.topic, g.partition, g.first_offset, g.last_offset) for g in self.groups])

    @property
    def where(self) -> str:
        return ", ".join(group.where for group in self.groups)


def combined_token(table: str, ranges: Sequence[tuple[str, int, int, int]]) -> str:
    """The insert-deduplication token of one table's rows from several (topic, partition, first, last) ranges."""
    named = "\n".join(f"{topic}/{partition}/{first}-{last}" for topic, partition, first, last in sorted(ranges))
    return f"roadx-sink/{table}/{len(ranges)}-ranges/{hashlib.sha256(named.encode('utf-8')).hexdigest()}"


def dedup_token(table: str, topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """The insert-deduplication token of one table's rows from one offset range."""
    return f"roadx-sink/{table}/{topic}/{partition}/{first_offset}-{last_offset}"


def keep_rows(insert: TableInsert, offsets: Sequence[int], wanted: Callable[[int, int], bool]) -> TableInsert | None:
    """The group narrowed to rows ``wanted(index, offset)``; ``None`` when none is left."""
    kept = [i for i, offset in enumerate(offsets) if wanted(i, offset)]
    if not kept:
        return None
    kept_offsets = [offsets[i] for i in kept]
    messages = [insert.messages[i] for i in kept] if insert.messages else []
    return replace(insert, first_offset=min(kept_offsets), last_offset=max(kept_offsets),
                   rows=[insert.rows[i] for i in kept], messages=messages)
