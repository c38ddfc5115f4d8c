"""The stream stage's durable state: a local RocksDB store backed by changelog topics.

Every state change is also written to a compacted changelog topic, ``state.<P>``
partition ``p`` for state that belongs to source topic ``prov.<P>.changes`` partition
``p`` (the partition its events arrive on). The local store is a cache of the changelogs:
when a worker is given a source partition it first replays that partition's changelog
from where its local copy stops (``restore_partition``), so a restarted worker, or one
that takes over a partition from another, starts from the state the last owner committed.

Keys are global (an event id or an entity key never occurs in two partitions), so one
RocksDB store holds every partition a worker owns or once owned.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import orjson
from rocksdict import Options, Rdict, WriteBatch

from schemas.kafka import restore_changelog
from schemas.settings import Settings

from .errors import StateError

_OFFSET_PREFIX = "~offset:"
MAX_WORKER_SLOTS = 64


class StateStore:
    """Key → JSON value, plus the changelog position each partition's copy is restored to."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=False)
        options.create_if_missing(True)
        try:
            self._db = Rdict(str(path), options)
        except Exception as exc:  # rocksdict raises plain Exception on a held lock or corruption
            raise StateError(f"cannot open the state store at {path}: {exc}") from exc
        self.path = path

    @classmethod
    def open_free_slot(cls, root: Path) -> "StateStore":
        """Open ``root/w<n>`` for the lowest ``n`` no other live worker holds.

        A restarted worker thus finds its own earlier copy and replays only the tail of
        each changelog; a second worker on the same machine gets its own copy.
        """
        last: StateError | None = None
        for slot in range(MAX_WORKER_SLOTS):
            try:
                return cls(root / f"w{slot}")
            except StateError as exc:
                last = exc
        raise StateError(f"no free state slot under {root}: {last}")

    def get(self, key: str) -> Any:
        raw = self._db.get(key)
        return None if raw is None else orjson.loads(raw)

    def apply(self, changes: dict[str, Any], positions: dict[tuple[str, int], int]) -> None:
        """Write ``changes`` (None deletes) and the changelog positions they reached, atomically."""
        self.apply_encoded({key: encode_change(value) for key, value in changes.items()}, positions)

    def apply_encoded(self, changes: dict[str, bytes | None], positions: dict[tuple[str, int], int]) -> None:
        """``apply`` for values already in their changelog encoding (``encode_change``): the one write."""
        batch = WriteBatch(raw_mode=False)
        for key, raw in changes.items():
            if raw is None:
                batch.delete(key)
            else:
                batch.put(key, raw)
        for (province, partition), offset in positions.items():
            batch.put(_offset_key(province, partition), str(offset))
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc

    def position(self, province: str, partition: int) -> int:
        """The changelog offset this copy of ``(province, partition)`` is restored up to (exclusive)."""
        raw = self._db.get(_offset_key(province, partition))
        return int(raw) if raw is not None else 0

    def items_from(self, start: str) -> Iterator[tuple[str, Any]]:
        """(key, value) pairs in key order from ``start`` on (offset positions excluded)."""
        for key, raw in self._db.items(from_key=start):
            if key.startswith(_OFFSET_PREFIX):
                return
            yield key, orjson.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()


def _offset_key(province: str, partition: int) -> str:
    return f"{_OFFSET_PREFIX}{province}:{partition}"


def encode_change(value: Any) -> bytes | None:
    """A changelog value (None is a tombstone)."""
    return None if value is None else orjson.dumps(value)


def decode_change(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)



def restore_partition(settings: Settings, store: StateStore, province: str, partition: int) -> int:
    """Replay changelog ``state.<P>`` partition ``partition`` into ``store`` from the local
    position to its end (read on past the end the broker reports: ``schemas.kafka``);
    returns how many state changes were applied."""
    def apply(values: dict[str, bytes | None], position: int) -> None:
        store.apply_encoded(values, {(province, partition): position})

    return restore_changelog(settings.kafka_conf(), f"{settings.topics.streams_group}-restore",
                             settings.topics.stream_state(province), partition, store.position(province, partition),
                             apply, error=StateError)
