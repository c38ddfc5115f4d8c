"""The faust app: one agent over every ``prov.<P>.changes`` topic, running ``process_batch``.

Commit order per batch: outputs are sent and their delivery awaited, accepted event ids
are written to the ``seen_event_ids`` table (its changelog goes to the source event's
partition, so the table stays co-partitioned with the inputs), then the events are acked.
Faust flushes the producer (changelog included) before it commits acked offsets. A
batch that cannot be written ends the process before its offsets can be committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Iterator, MutableMapping, Sequence

import faust

from deploy.settings import Settings
from schemas.codec import EventCodec
from schemas.registry import make_registry

from . import metrics
from .errors import WorkerError
from .pipeline import Inbound, StageContext, process_batch

SEEN_TABLE = "seen_event_ids"
EXIT_BATCH_FAILED = 70  # EX_SOFTWARE
BATCH_WITHIN_SECONDS = 0.2

log = logging.getLogger(__name__)


class BatchSeen(MutableMapping[str, int]):
    """The ``seen`` table as ``process_batch`` sees it: stored ids plus this batch's own."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.pending: dict[str, int] = {}

    def __contains__(self, key: object) -> bool:
        return key in self.pending or key in self._table

    def __getitem__(self, key: str) -> int:
        return self.pending[key] if key in self.pending else self._table[key]

    def __setitem__(self, key: str, value: int) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        raise WorkerError("event ids are never forgotten within a batch")

    def __iter__(self) -> Iterator[str]:
        yield from self.pending
        yield from (k for k in self._table if k not in self.pending)

    def __len__(self) -> int:
        return len(self.pending) + sum(1 for k in self._table if k not in self.pending)


def stage_context(settings: Settings) -> StageContext:
    try:
        keys = {p: settings.province_key(p) for p in settings.provinces}
        codec = EventCodec(make_registry(settings.schema_registry_url or None))
    except Exception as exc:
        raise WorkerError(f"cannot prepare the stream stage: {exc}") from exc
    return StageContext(codec, settings.topics, keys, frozenset(settings.provinces), frozenset())


def create_app(settings: Settings) -> faust.App:
    """The stream worker's faust app, wired to ``settings``."""
    if not settings.bootstrap_servers:
        raise WorkerError("the stream worker needs Kafka bootstrap servers (ROADX_BOOTSTRAP_SERVERS)")
    names = settings.topics
    ctx = stage_context(settings)
    app = faust.App(
        names.streams_group,
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0,
        store="memory://",
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str((settings.data_dir / "streams").absolute()),
    )
    seen = app.Table(
        SEEN_TABLE,
        partitions=settings.partitions,
        key_type=str,  # serialized as JSON in the changelog
        value_type=int,
    )
    source = app.topic(
        *(names.province_changes(p) for p in settings.provinces),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )

    @app.agent(source, name="check_and_route")
    async def check_and_route(stream: faust.StreamT) -> None:
        # take_events restores this flag when it is closed (on stop); left True, the stream
        # would then ack events it drains without running them through the stage.
        stream.enable_acks = False
        async for events in stream.take_events(settings.stream_batch_size, within=BATCH_WITHIN_SECONDS):
            await write_batch(app, seen, ctx, events)

    return app


async def write_batch(app: faust.App, table: Any, ctx: StageContext, events: Sequence[faust.EventT]) -> None:
    """Run ``handle_batch`` to its end even if the agent is cancelled meanwhile (a stopping
    worker acks and commits the batch's events, so its output must be written first)."""
    task = asyncio.ensure_future(handle_batch(app, table, ctx, events))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await _finish(task)
        raise
    except Exception as exc:
        exit_without_commit(exc)


async def _finish(task: asyncio.Future) -> None:
    try:
        await task
    except Exception as exc:
        exit_without_commit(exc)


async def handle_batch(app: faust.App, table: Any, ctx: StageContext, events: Sequence[faust.EventT]) -> None:
    """Process one batch and write its output; returns once every output is delivered."""
    batch = [
        Inbound(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
        for e in events
    ]
    seen = BatchSeen(table)
    result = process_batch(batch, ctx, seen)
    producer = app.producer
    deliveries = [
        await producer.send(out.topic, out.key, out.value, partition=None, timestamp=None, headers=out.headers)
        for out in result.outputs
    ]
    await asyncio.gather(*deliveries)
    for index, event_id in result.accepted:
        remember(table, batch[index].partition, event_id, seen.pending[event_id])
    metrics.observe(result)


def exit_without_commit(exc: BaseException) -> None:
    """End the process at once: faust acks a batch even when its body fails, so the only
    way to keep its offsets uncommitted is to stop before the next commit. The embedded
    supervisor then stops the stack; a restarted worker reprocesses the batch (at-least-once)."""
    log.critical("a stream batch could not be written, exiting without committing it: %r", exc)
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)


def remember(table: Any, partition: int, event_id: str, value: int) -> None:
    """Store an accepted event id in the partition of the event that carried it."""
    table.send_changelog(partition, event_id, value)
    table.data[event_id] = value
