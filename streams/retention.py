"""Forgetting accepted event ids once the deduplication retention has passed.

An accepted event id is remembered as ``seen:<event_id>`` → ``[accepted_ms, province,
partition]``: when it was accepted and the source partition (so the changelog partition)
its state belongs to. ``SeenSweep`` walks the ``seen:`` keys a chunk at a time (two keys
per consumed event), in key order, wrapping around at the end; each chunk yields the ids accepted before the cutoff
in partitions this worker owns, which the runner deletes with a changelog tombstone in
the same write as a batch. An id is thus forgotten between ``retention`` and
``retention`` + one full sweep after it was accepted.

After an id is forgotten, a resend of the same event is still not applied twice: its
content equals the entity's last version (dropped as unchanged) or its ``source.seq`` is
older than the entity's (flagged stale).
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Iterable, Iterator

SEEN = "seen:"
KEYS_PER_EVENT = 2  # seen keys visited per consumed event: a full sweep takes at most half as many events as ids held

Scope = tuple[str, int]  # (province, source partition)


def seen_value(accepted_ms: int, province: str, partition: int) -> list[Any]:
    """The stored value of an accepted event id."""
    return [accepted_ms, province, partition]


def seen_scope(value: Any) -> tuple[int, Scope] | None:
    """(accepted_ms, scope) of a stored ``seen:`` value, or None for a value without a scope."""
    if isinstance(value, list) and len(value) == 3:
        accepted_ms, province, partition = value
        if isinstance(accepted_ms, int) and isinstance(province, str) and isinstance(partition, int):
            return accepted_ms, (province, partition)
    return None


def expired(entries: Iterable[tuple[str, Any]], cutoff_ms: int, owned: Collection[Scope]) -> list[tuple[str, Scope]]:
    """The ``seen:`` keys among ``entries`` accepted before ``cutoff_ms`` in an ``owned`` partition.

    Keys of partitions another worker owns are left to that worker; values without a
    scope (written before scopes were recorded) are left alone.
    """
    out = []
    for key, value in entries:
        parsed = seen_scope(value)
        if parsed is None:
            continue
        accepted_ms, scope = parsed
        if accepted_ms < cutoff_ms and scope in owned:
            out.append((key, scope))
    return out


class SeenSweep:
    """A cursor over the ``seen:`` keys that resumes where the last chunk stopped."""

    def __init__(self, retention_ms: int) -> None:
        if retention_ms <= 0:
            raise ValueError(f"the retention must be positive, got {retention_ms} ms")
        self.retention_ms = retention_ms
        self.cursor = SEEN

    def next_chunk(self, read_from: Callable[[str], Iterator[tuple[str, Any]]], now_ms: int,
                   owned: Collection[Scope], size: int) -> list[tuple[str, Scope]]:
        """Expired keys among the next ``size`` ``seen:`` entries from ``read_from(cursor)``."""
        size = max(size, 1)
        entries: list[tuple[str, Any]] = []
        for key, value in read_from(self.cursor):
            if not key.startswith(SEEN):
                break
            if key == self.cursor and entries == [] and self.cursor != SEEN:
                continue  # the last key of the previous chunk
            entries.append((key, value))
            if len(entries) >= size:
                break
        self.cursor = entries[-1][0] if len(entries) >= size else SEEN
        return expired(entries, now_ms - self.retention_ms, owned)
