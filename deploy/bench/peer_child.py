"""The bench's peers as processes: ``python -m deploy.bench.peer_child faust|quix --group G --out-prefix P``.

Each runs the worker's pure stage (``deploy.bench.peers.PeerStage``) over the ``prov.*`` topics
of the settings it is given (``ROADX_*``, as every roadx process), writing to the same topics
on ``--out-prefix``, with its framework's own state, changelogs and commits, until stopped;
the bench reads its progress from its group's committed offsets, as it does the worker's.

``faust``   faust-streaming as a faust engineer writes it: one agent over every province topic
            taking ``stream.take_events`` batches (run through the stage a source partition at
            a time), the stage's state (seen event ids, entity versions) in a RocksDB table
            with its changelog, co-partitioned with the source; the registry in a RocksDB
            global table; outputs sent with ``topic.send`` (lingering 5 ms, as the worker's
            producer); offsets committed by faust every second; no terminal spinner (it would
            turn the root logger to DEBUG).
``quix``    Quix Streams: an ``Application`` (at-least-once, commits every second) with one
            ``StreamingDataFrame`` a province topic, the stage run per message in a stateful
            ``apply`` on its RocksDB state and changelog (state is kept per message key, the
            entity key); outputs produced by ``to_topic`` to the topic each names. Quix has no
            global table: the registry is held in the process and written to the registry
            topic as the worker writes it (it is not read back at start: each run is fresh).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from schemas.settings import Settings, resolve
from streams.pipeline import Inbound

from ..collector import tune_collector
from .peers import PeerStage

COMMIT_SECONDS = 1.0
LINGER_SECONDS = 0.005  # the producers' linger, as the worker's (``linger.ms`` 5, librdkafka's default)
TAKE_WITHIN_SECONDS = 0.2


def run_faust(settings: Settings, app_id: str, out_prefix: str, state_dir: Path) -> None:
    import weakref

    import faust
    from faust.streams import _current_event as current_event

    stage = PeerStage.from_settings(settings, out_prefix)
    app = faust.App(
        app_id, broker=f"kafka://{settings.bootstrap_servers}", store="rocksdb://",
        topic_partitions=settings.partitions, broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0, broker_commit_interval=COMMIT_SECONDS, consumer_auto_offset_reset="earliest",
        producer_linger=LINGER_SECONDS, web_enabled=False, datadir=str(state_dir.absolute()),
    )
    json = faust.Schema(key_type=str, key_serializer="json", value_serializer="json")
    state = app.Table("stage-state", partitions=settings.partitions, schema=json)
    registry = app.GlobalTable("registry", partitions=settings.partitions, use_partitioner=True, schema=json)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    inbound = app.topic(*(settings.topics.province_changes(p) for p in settings.provinces), **raw)
    outbound = {name: app.topic(name, **raw) for name in stage.output_topics()}

    @app.agent(inbound)
    async def stream_stage(stream):
        async for events in stream.take_events(settings.stream_batch_size, within=TAKE_WITHIN_SECONDS):
            parts: dict[int, list] = {}
            for event in events:
                parts.setdefault(event.message.partition, []).append(event)
            for part in parts.values():
                # a table reads and writes the partition of the event at hand (faust's context variable; not
                # the stream's ``current_event``, which take_events reads to fill its next batch)
                current_event.set(weakref.ref(part[0]))
                batch = [Inbound(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                 e.message.value) for e in part]
                run = stage.run(batch, state.get, registry.get)
                for _index, key, value in run.changes:
                    if value is None:
                        state.pop(key, None)
                    else:
                        state[key] = value
                for key, value in run.registry:
                    registry[key] = value
                for out in run.outputs:
                    await outbound[out.topic].send(key=out.key, value=out.value, headers=out.headers)

    sys.argv = [sys.argv[0], "worker"]
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.spinner = None  # no terminal to spin on, and the spinner would turn the root logger to DEBUG
    worker.execute_from_commandline()


def run_quix(settings: Settings, group: str, out_prefix: str, state_dir: Path) -> None:
    from quixstreams import Application, message_context
    from quixstreams.models.serializers import Serializer

    class OutboundValue(Serializer):
        """An ``Outbound`` as its value's bytes."""

        def __call__(self, value, ctx):
            return value.value

    _fill_missing_retention()
    stage = PeerStage.from_settings(settings, out_prefix)
    app = Application(
        broker_address=settings.bootstrap_servers, consumer_group=group, auto_offset_reset="earliest",
        commit_interval=COMMIT_SECONDS, processing_guarantee="at-least-once", state_dir=str(state_dir.absolute()),
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": settings.session_timeout_ms,
                               "heartbeat.interval.ms": min(1000, settings.session_timeout_ms // 3)},
    )
    registry: dict[str, object] = {}
    outbound = {name: app.topic(name, key_serializer="bytes", value_serializer=OutboundValue())
                for name in stage.output_topics()}

    def out_topic(value, key, timestamp, headers):
        return outbound[value.topic]

    def step(value, key, timestamp, headers, state):
        where = message_context()
        run = stage.run([Inbound(where.topic, where.partition, where.offset, key, value)], state.get, registry.get)
        for _index, name, data in run.changes:
            if data is None:
                state.delete(name)
            else:
                state.set(name, data)
        registry.update(run.registry)
        return [*run.outputs, *stage.registry_outputs(run)]

    for province in settings.provinces:
        source = app.topic(settings.topics.province_changes(province), key_deserializer="bytes",
                           value_deserializer="bytes")
        sdf = app.dataframe(source).apply(step, stateful=True, metadata=True, expand=True)
        sdf = sdf.set_headers(lambda value, key, timestamp, headers: value.headers)
        sdf.to_topic(out_topic, key=lambda value: value.key)
    app.run()


def _fill_missing_retention() -> None:
    """The embedded broker describes a topic without ``retention.ms``, which Quix Streams reads to
    derive a changelog's configuration: read it as the broker's default, -1 (kept for ever)."""
    from quixstreams.models.topics.manager import TopicManager

    fetch = TopicManager._fetch_topic

    def fetch_topic(self, topic):
        fetched = fetch(self, topic)
        fetched.broker_config.extra_config.setdefault("retention.ms", "-1")
        return fetched

    TopicManager._fetch_topic = fetch_topic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.peer_child")
    parser.add_argument("kind", choices=("faust", "quix"))
    parser.add_argument("--group", required=True, help="the consumer group (faust: the app id)")
    parser.add_argument("--out-prefix", required=True, help="topic prefix of the outputs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s bench-peer %(levelname)s %(message)s")
    tune_collector()  # as every roadx part; the peers too, on the same footing
    settings = resolve()
    state_dir = settings.data_dir / "peers" / args.group
    state_dir.mkdir(parents=True, exist_ok=True)
    if args.kind == "faust":
        run_faust(settings, args.group, args.out_prefix, state_dir)
    else:
        run_quix(settings, args.group, args.out_prefix, state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
