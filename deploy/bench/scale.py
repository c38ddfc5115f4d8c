"""``roadx bench --scale``: a national initial load through the stream worker and the sink, and
how their rates, memory and the store grow with it.

The load (``producers.synthetic.initial_load``: operators and their vehicles, every event a
distinct entity) goes in rounds of ``--scale-round`` events up to each point of
``--scale-points`` (default 1M, 5M, 20M). A round is made by a fill child (encode and sign, sent
straight to ``prov.<P>.changes``: a bench fill, no spool and no submission), then drained by a
stream worker and, after it, by a sink (``roadx worker streams|sink`` through the worker shell),
each timed from its group's first to its last commit. Every round has topics of its own
(``scale.r<n>.``), deleted once drained: the embedded broker keeps every message in memory and
cannot delete records, so a 20M load on one set of topics would not fit. The worker and the
sink keep one data directory and one store throughout: the worker's RocksDB state and the
store grow with the load, which is what is measured. Between rounds the worker's state forgets
the positions it held in the deleted topics (its handover marks and changelog positions): the
next round's topics start at offset 0.

At each point: the worker's and the sink's rate over the round ending there, and the store's
bytes on disk per entity; at the end, the peak RSS of every worker and sink process of the
load, and each part's rate at the last point ÷ its rate at the first (the target: ≥ 0.8, within
20%).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from schemas.settings import Settings, resolve

from ..errors import StackError
from ..topics import create_topics, exchange_topics
from .report import EVENTS_PER_S, MIB
from .run import Bench

BYTES = "bytes"
FILL_TIMEOUT = 3_600.0


def point_label(events: int) -> str:
    """``1M``, ``500k``, ``20M``, ``2500``: a point of the curve as the figures' keys name it."""
    if events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    if events % 1_000 == 0:
        return f"{events // 1_000}k"
    return str(events)


def scale_figure(part: str, events: int) -> str:
    """Key of ``part``'s (``worker``, ``sink``) rate over the round ending at ``events``."""
    return f"scale_{part}_{point_label(events)}"


def rounds(points: tuple[int, ...], size: int) -> list[tuple[int, int]]:
    """(first event, events) of each round: at most ``size`` events, ending on every point."""
    made, first = [], 0
    for point in points:
        while first < point:
            count = min(size, point - first)
            made.append((first, count))
            first += count
    return made


def scale(bench: Bench) -> None:
    from .phases import _drain
    from sinks.sink import TopicRoles

    opts = bench.options
    base = bench.phase("scale")
    points, rss = opts.scale_points, {"worker": 0.0, "sink": 0.0}
    rates: dict[int, dict[str, float]] = {}
    loaded = 0
    for number, (first, count) in enumerate(rounds(points, opts.scale_round)):
        settings = replace(base, topic_prefix=f"scale.r{number}.")
        wanted = exchange_topics(settings)
        create_topics(bench.bootstrap, wanted)
        bench.say(f"scale: round {number}: loading events {first:,}…{first + count - 1:,}")
        fill = bench.spawn(f"scale_fill_{number}", "deploy.bench.scale", settings, "--first", str(first),
                           "--count", str(count), "--seed", str(opts.seed), "--result",
                           str(settings.data_dir / f"fill-{number}.json"))
        if fill.wait(FILL_TIMEOUT) != 0:
            raise StackError(f"the scale fill exited with code {fill.wait(0)}; see {fill.log_path}")
        source = [settings.topics.province_changes(p) for p in settings.provinces]
        worker = _drain(bench, settings, f"scale_worker_{number}", "streams", settings.topics.streams_group, source)
        sink = _drain(bench, settings, f"scale_sink_{number}", "sink", settings.topics.sink_group,
                      TopicRoles.from_settings(settings).topics)
        worker_rate, sink_rate = worker.rate, sink.rate
        rss["worker"] = max(rss["worker"], worker.child.peak_rss_mib)
        rss["sink"] = max(rss["sink"], sink.child.peak_rss_mib)
        bench.say(f"scale: round {number}: worker {worker_rate:,.0f} events/s, peak RSS {worker.child.peak_rss_mib:,.0f} "
                  f"MiB; sink {sink_rate:,.0f} events/s, peak RSS {sink.child.peak_rss_mib:,.0f} MiB")
        bench.delete_topics([name for name, *_rest in wanted])
        _forget_round_positions(settings)
        loaded = first + count
        if loaded in points:
            rates[loaded] = {"worker": worker_rate, "sink": sink_rate}
            size, entities = _store_facts(base)
            if entities != loaded:
                raise StackError(f"the store holds {entities:,} entities after an initial load of {loaded:,}: "
                                 f"events were lost or doubled")
            per_entity = size / loaded
            bench.add(scale_figure("worker", loaded), f"stream worker at {point_label(loaded)} entities",
                      worker_rate, EVENTS_PER_S, f"round {number}: {count:,} events, state of {first:,} before it")
            bench.add(scale_figure("sink", loaded), f"sink at {point_label(loaded)} entities", sink_rate,
                      EVENTS_PER_S, f"round {number}: the worker's outputs of {count:,} events")
            bench.add(f"scale_store_bytes_{point_label(loaded)}", f"store bytes per entity at {point_label(loaded)}",
                      per_entity, BYTES, "active parts on disk ÷ entities loaded (change_log, findings, aggregates)")
    if len(points) > 1:
        first_point, last_point = points[0], points[-1]
        for part in ("worker", "sink"):
            bench.add(f"scale_{part}_ratio", f"{part} rate at {point_label(last_point)} ÷ at {point_label(first_point)}",
                      rates[last_point][part] / rates[first_point][part], "×")
    bench.add("rss_scale_worker_mib", "peak RSS stream worker, initial load", rss["worker"], MIB,
              f"the most any round's worker process held, up to {loaded:,} entities")
    bench.add("rss_scale_sink_mib", "peak RSS sink, initial load", rss["sink"], MIB,
              f"the most any round's sink process held, up to {loaded:,} entities")


def _forget_round_positions(settings: Settings) -> None:
    """Clear what the worker's state says of positions in the round's topics, now deleted: each source
    partition's handover marks (``streams.handover``) and each changelog partition's restore position.
    The next round's topics start at offset 0; the entities and the event ids seen are kept."""
    from streams.handover import done_key, since_key
    from streams.state import StateStore

    scopes = [(p, k) for p in settings.provinces for k in range(settings.partitions)]
    for slot in sorted((settings.data_dir / "streams" / "state").glob("w*")):
        store = StateStore(slot)
        try:
            store.apply({key(scope): None for scope in scopes for key in (done_key, since_key)},
                        {scope: 0 for scope in scopes})
        finally:
            store.close()


def _store_facts(settings: Settings) -> tuple[int, int]:
    """(bytes of the store's active parts on disk, distinct entities in its change log)."""
    from sinks.store import open_store

    db = settings.clickhouse_database
    client = open_store(settings)
    try:
        size = int(client.command(f"SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '{db}'"))
        entities = int(client.command(f"SELECT uniqExact(entity_key) FROM {db}.change_log"))
        return size, entities
    finally:
        client.close()


# ---- the fill child: python -m deploy.bench.scale --first N --count N --seed S --result FILE ------------------

def fill(settings: Settings, first: int, count: int, seed: int) -> int:
    """Encode, sign and send events ``first`` … of the initial load; returns how many were delivered."""
    from confluent_kafka import Producer

    from producers.synthetic.initial_load import initial_load
    from schemas.codec import EventCodec
    from schemas.registry import make_registry

    from schemas.kafka import produce

    codec = EventCodec(make_registry(settings.schema_registry_url or None))
    keys = {p: settings.province_key(p) for p in settings.provinces}
    topics = {p: settings.topics.province_changes(p) for p in settings.provinces}
    producer = Producer(settings.kafka_conf(**{"linger.ms": 20, "queue.buffering.max.messages": 500_000}))
    sent = 0
    for province, event in initial_load(settings.provinces, first, count, seed):
        produce(producer, topics[province], codec.encode(event, keys[province]), event["entity_key"].encode("utf-8"))
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise StackError("the initial load's events were not all delivered in 300 s")
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.scale")
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.time()
    sent = fill(resolve(), args.first, args.count, args.seed)
    args.result.write_text(json.dumps({"sent": sent, "seconds": time.time() - started}), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
