"""What ``roadx bench`` measures in its own process, for the phases (``deploy.bench.phases``).

``avro_rates`` (fastavro encode/decode of the envelope), ``fill_topic`` and ``send_all`` (load a topic),
``kafka_loop_rate`` (a plain confluent-kafka consume→produce loop), ``stage_alone`` (the worker's
pure stage with its state in a dict: the part the worker and its peers share), ``paced_send``
(signed events at a fixed rate, for the latency figures) and ``latency_percentiles``.
"""

from __future__ import annotations

import gc
import io
import itertools
import time
import uuid
from typing import Any, Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from schemas.kafka import produce
from schemas.settings import Settings

from ..errors import StackError
from .report import cpu_per_100k, percentile, rate

Say = Callable[[str], None]
STATE_FILL_BATCH = 100_000
STAGE_TIMEOUT = 900.0
STAGE_SAMPLE = 200_000


def avro_rates(events: list[dict[str, Any]]) -> tuple[float, float, list[bytes]]:
    """(encode/s, decode/s, bodies): schemaless fastavro with the real envelope, no framing or signing."""
    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    from schemas import contract, signing

    schema = parse_schema(contract.envelope_schema())
    records = []
    for event in events:
        record = dict(event)
        branch = contract.ENTITY_RECORDS[event["entity_type"]]
        for side in ("before", "after"):
            if record.get(side) is not None:
                record[side] = (branch, record[side])
        record["signature"] = signing.PLACEHOLDER
        records.append(record)
    started = time.perf_counter()
    bodies = []
    for record in records:
        buf = io.BytesIO()
        schemaless_writer(buf, schema, record)
        bodies.append(buf.getvalue())
    encode = rate(len(records), time.perf_counter() - started)
    started = time.perf_counter()
    for body in bodies:
        schemaless_reader(io.BytesIO(body), schema, None)
    decode = rate(len(bodies), time.perf_counter() - started)
    return encode, decode, bodies


def fill_topic(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], count: int) -> None:
    """Write ``count`` messages to ``topic``, cycling through ``messages``."""
    send_all(bootstrap, topic, itertools.islice(itertools.cycle(messages), count))


def send_all(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    """Write (key, value) ``messages`` to ``topic`` in batches, all delivered; returns how many."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 500_000})
    sent = 0
    for key, value in messages:
        produce(producer, topic, value, key)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise StackError(f"could not load {topic}: messages still undelivered after 120s")
    return sent


def kafka_loop_rate(bootstrap: str, source: str, target: str, partitions: int, count: int) -> float:
    """A plain consume→produce loop over ``count`` messages: bytes in, bytes out, flushed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-loop-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": 500_000})
    try:
        consumer.assign([TopicPartition(source, p, OFFSET_BEGINNING) for p in range(partitions)])
        moved, started, deadline = 0, 0.0, time.monotonic() + STAGE_TIMEOUT
        while moved < count:
            if time.monotonic() > deadline:
                raise StackError(f"the consume→produce loop moved {moved} of {count} messages before timing out")
            messages = consumer.consume(1000, 1.0)
            if messages and not started:
                started = time.perf_counter()
            for message in messages:
                if message.error() is not None:
                    continue
                produce(producer, target, message.value(), message.key())
                moved += 1
            producer.poll(0)
        producer.flush(120)
        return rate(moved, time.perf_counter() - started)
    finally:
        consumer.close()


def stage_alone(settings: Settings, bootstrap: str) -> tuple[float, float, int]:
    """The stage (``streams.pipeline.process_batch``, decode to outputs) over ``settings``' province
    topics (their first ``STAGE_SAMPLE`` messages, held in memory) in this thread, in the worker's
    batch size, its state and registry in dicts, the garbage collector off: (events/s, CPU s per 100k
    events of this thread, how many events). No Kafka writes, no store, no commits, no collections:
    what the worker or a peer spends beyond it is its own."""
    from schemas.kafka import read_topics
    from streams.pipeline import Inbound
    from streams.runner import stage_context

    from .peers import PeerStage

    topics = [settings.topics.province_changes(p) for p in settings.provinces]
    messages: list[Inbound] = []
    for batch in read_topics({"bootstrap.servers": bootstrap}, "roadx-bench-stage", topics, error=StackError,
                             what="read the source topics"):
        messages += (Inbound(m.topic(), m.partition(), m.offset(), m.key(), m.value()) for m in batch
                     if m.error() is None)
        if len(messages) >= STAGE_SAMPLE:  # held in memory: enough for a rate
            del messages[STAGE_SAMPLE:]
            break
    stage = PeerStage(stage_context(settings), settings.topics.prefix)
    state: dict[str, Any] = {}
    registry: dict[str, Any] = {}
    size = settings.stream_batch_size
    gc.disable()  # a floor: the dict state would make every full collection walk it
    try:
        started, cpu = time.perf_counter(), time.thread_time()
        for first in range(0, len(messages), size):
            run = stage.run(messages[first:first + size], state.get, registry.get)
            for _index, key, value in run.changes:
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            registry.update(run.registry)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - started
    finally:
        gc.enable()
    return rate(len(messages), wall), cpu_per_100k(cpu, len(messages)), len(messages)


def paced_send(settings: Settings, events: list[dict[str, Any]], per_second: int, say: Say) -> tuple[int, float]:
    """Send ``events`` signed, at ``per_second``, each stamped ``ts_ms`` = now; returns (sent, start ms)."""
    from producers.publisher import make_producer
    from schemas.codec import EventCodec
    from schemas.registry import make_registry

    codec = EventCodec(make_registry(None))
    keys = {p: settings.province_key(p) for p in settings.provinces}
    producer = make_producer(settings.kafka_conf())  # as an adapter's
    start = time.time()
    sent = 0
    next_report = start + 5
    while sent < len(events):
        now = time.time()
        due = min(len(events), int((now - start) * per_second) + 1)
        while sent < due:
            event = dict(events[sent])
            event["ts_ms"] = int(time.time() * 1000)
            province = event["source"]["province"]
            producer.produce(settings.topics.province_changes(province), codec.encode(event, keys[province]),
                             event["entity_key"].encode("utf-8"))
            sent += 1
        producer.poll(0)
        if now >= next_report:
            say(f"latency run: {sent:,}/{len(events):,} sent")
            next_report = now + 5
        time.sleep(0.002)
    if producer.flush(120):
        raise StackError("the paced producer could not deliver every event within 120s")
    return sent, start * 1000


def latency_percentiles(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 99)
