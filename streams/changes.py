"""What one batch reads and writes of the worker's state.

``process_batch`` (``streams.pipeline``) sees the state through a ``StateView``: the local
store overlaid with the batch's own writes. ``state_changes`` then binds each write to the
changelog partition it belongs to (that of the source partition of the message that made
it) and collects the ownership entries the batch set, for the commit order
(``streams.commit``) to write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, MutableMapping, Sequence

from schemas.settings import Settings

from .errors import WorkerError
from .pipeline import BatchResult, Inbound
from .state import StateStore


class StateView(MutableMapping[str, Any]):
    """The state as ``process_batch`` sees it: the store, overlaid with this batch's writes."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self.pending:
            value = self.pending[key]
        else:
            value = self._store.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``Mapping.get``, without raising ``KeyError`` for the many keys not there."""
        value = self.pending[key] if key in self.pending else self._store.get(key)
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        self.pending[key] = None

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self.pending.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self.pending.values() if v is not None)


@dataclass
class StateChanges:
    """State changes of one batch, each bound to the changelog partition it belongs to,
    and the ownership entries it set (``streams.ownership``)."""

    values: dict[str, Any] = field(default_factory=dict)
    scopes: dict[str, tuple[str, int]] = field(default_factory=dict)
    ownership: dict[str, Any] = field(default_factory=dict)

    def put(self, scope: tuple[str, int], key: str, value: Any) -> None:
        self.values[key] = value
        self.scopes[key] = scope


def state_changes(batch: Sequence[Inbound], result: BatchResult, settings: Settings) -> StateChanges:
    """Bind what the batch wrote to the source partition of the message that wrote it."""
    changes = StateChanges()
    province_of = settings.topics.province_of_changes_topic
    for index, key, value in result.changes:
        message = batch[index]
        province = province_of(message.topic)
        if province is None:
            raise WorkerError(f"accepted an event from {message.topic!r}, which is not a province topic")
        changes.put((province, message.partition), key, value)
    for key, value in result.ownership:
        changes.ownership[key] = value
    return changes
