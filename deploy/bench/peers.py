"""The stream stage as a peer framework runs it: ``PeerStage``, the part faust and Quix Streams share.

The bench's peers (``deploy.bench.peer_child``) run the worker's own pure stage,
``streams.pipeline.process_batch``, over the same ``prov.*`` topics as the worker, each with
its framework's state, changelogs and commits instead of the worker's. ``PeerStage.run`` takes
a batch and a ``read(key)`` of the framework's state; it returns what the framework must do:
the outputs, renamed from the source topics' prefix to the peer's own (so the worker's outputs
and each peer's can be compared, ``deploy.bench.outputs``), the state the batch wrote, each
write with the index of the message that made it (a framework keeps state by source
partition), and the registry entries it set (a table every instance reads whole). The stage
sees the state through the worker's own view (``streams.changes.StateView``): the framework's
state overlaid with the batch's writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from schemas.settings import Settings
from streams.changes import StateView
from streams.pipeline import OWNER, Inbound, Outbound, StageContext, process_batch
from streams.state import encode_change

Read = Callable[[str], Any]


@dataclass(frozen=True)
class StageRun:
    outputs: list[Outbound]  # on the peer's own topics
    changes: list[tuple[int, str, Any]]  # (index in the batch, key, value; None deletes)
    registry: list[tuple[str, Any]]  # (key without OWNER, value) of the shared registry


class _Reader:
    """What ``StateView`` reads through: the framework's state, the registry under ``reg:``."""

    def __init__(self, read: Read, read_registry: Read) -> None:
        self._read, self._registry = read, read_registry

    def get(self, key: str) -> Any:
        if key.startswith(OWNER):
            return self._registry(key[len(OWNER):])
        return self._read(key)


class PeerStage:
    """The stage over one source prefix, writing to ``out_prefix``."""

    def __init__(self, ctx: StageContext, out_prefix: str) -> None:
        self.ctx = ctx
        self.source_prefix = ctx.topics.prefix
        self.out_prefix = out_prefix

    @classmethod
    def from_settings(cls, settings: Settings, out_prefix: str) -> "PeerStage":
        from streams.runner import stage_context

        return cls(stage_context(settings), out_prefix)

    def topic(self, name: str) -> str:
        """``name`` (a topic on the source prefix) on the peer's own prefix."""
        if not name.startswith(self.source_prefix):
            raise ValueError(f"{name!r} is not on the prefix {self.source_prefix!r}")
        return self.out_prefix + name[len(self.source_prefix):]

    def output_topics(self) -> list[str]:
        """Every topic the stage writes, on the peer's prefix, and the registry topic."""
        names = self.ctx.topics
        return [self.topic(name) for name in (
            names.national_changes, names.national_quality, names.national_dlq, names.national_submissions,
            names.ownership, *(names.province_inbound(p) for p in sorted(self.ctx.provinces)))]

    @property
    def registry_topic(self) -> str:
        """Where a peer without a global table writes the registry entries (the worker's ``roadx-registry``)."""
        return self.topic(self.ctx.topics.ownership)

    def run(self, batch: Sequence[Inbound], read: Read, read_registry: Read) -> StageRun:
        result = process_batch(batch, self.ctx, StateView(_Reader(read, read_registry)), now_ms=int(time.time() * 1000))
        outputs = [Outbound(self.topic(o.topic), o.key, o.value, o.headers, o.origin) for o in result.outputs]
        return StageRun(outputs, result.changes, result.ownership)

    def registry_outputs(self, run: StageRun) -> list[Outbound]:
        """The registry entries of ``run`` as messages of the registry topic, as the worker writes them."""
        return [Outbound(self.registry_topic, key.encode("utf-8"), encode_change(value), [], -1)
                for key, value in run.registry]
