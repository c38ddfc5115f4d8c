"""``roadx bench``: the ceilings and the stages, measured in one run on a fresh embedded broker.

Phases, each on its own topic prefix and data directory under one temporary directory:
``ceilings`` (fastavro encode/decode of the envelope and a plain confluent-kafka
consume→produce loop, in this process; the naive faust agent as a child process),
``pipe`` (adapter child → ``roadx worker streams`` over the loaded ``prov.*`` topics →
``roadx worker sink`` over what the worker wrote, one after the other, each started
through the worker shell as the stack starts them: ``deploy.worker.worker_argv``),
``e2e`` (worker and sink running, an adapter child publishes; then a paced producer at
a fixed rate for the latency figures) and ``state`` (a worker opening a state store
filled with many entities). Rates of the workers are read from outside: committed
offsets of their consumer groups.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from schemas.settings import Settings

from .watch import Child
from .report import MIB, Figure, percentile, rate
from ..broker import EmbeddedBroker
from ..errors import DeployError, StackError
from ..topics import create_topics, exchange_topics
from ..worker import worker_argv

Say = Callable[[str], None]
STATE_FILL_BATCH = 100_000
STAGE_TIMEOUT = 900.0


@dataclass(frozen=True)
class BenchOptions:
    events: int = 100_000
    state_entities: int = 10_000_000
    faust_events: int = 20_000
    latency_rate: int = 5_000
    latency_seconds: float = 20.0
    seed: int = 7

    def validate(self) -> None:
        if self.events < 100:
            raise DeployError(f"--events must be at least 100, got {self.events}")
        if self.state_entities < 1 or self.faust_events < 100:
            raise DeployError("--state-entities must be at least 1 and --faust-events at least 100")
        if self.latency_rate < 1 or not self.latency_seconds > 0:
            raise DeployError("--latency-rate and --latency-seconds must be positive")


def machine_facts() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kib / 1024 ** 2, 1),
            "python": platform.python_version()}


def describe_machine(facts: dict[str, Any]) -> str:
    return f"{facts['nproc']} cores, {facts['cpu']}, {facts['memory_gib']} GiB, Python {facts['python']}"


class Bench:
    """One benchmark run; ``run()`` returns the figures by key."""

    def __init__(self, settings: Settings, options: BenchOptions, say: Say) -> None:
        options.validate()
        self.base = settings
        self.options = options
        self.say = say
        self.root = Path(tempfile.mkdtemp(prefix="roadx-bench-"))
        self.logs = self.root / "logs"
        self.figures: dict[str, Figure] = {}
        self.children: list[Child] = []
        self.bootstrap = ""
        self.broker_pid = 0

    def run(self) -> dict[str, Figure]:
        broker = EmbeddedBroker.start(log_path=self.root / "broker.log")
        self.bootstrap = broker.bootstrap_servers
        self.broker_pid = broker.process.pid
        self.say(f"embedded broker on {self.bootstrap}, work directory {self.root}")
        try:
            from .phases import ceilings, end_to_end, pipeline, state_worker

            ceilings(self)
            pipeline(self)
            end_to_end(self)
            state_worker(self)
        finally:
            for child in self.children:
                child.stop()
            broker.stop()
            shutil.rmtree(self.root, ignore_errors=True)
        return self.figures

    # -- helpers the phases share ------------------------------------------------------------

    def phase(self, name: str) -> Settings:
        """Settings of one phase: its own topics (created now), groups, data directory and keys."""
        b = self.base
        settings = Settings(
            data_dir=self.root / name, bootstrap_servers=self.bootstrap, provinces=b.provinces,
            partitions=b.partitions, national_partitions=b.national_partitions,
            session_timeout_ms=b.session_timeout_ms, sink_batch_size=b.sink_batch_size,
            sink_flush_seconds=b.sink_flush_seconds, stream_batch_size=b.stream_batch_size,
            topic_prefix=f"{name}.",
        )
        for province in settings.provinces:
            settings.province_key(province)  # key files exist before any child reads them
        create_topics(self.bootstrap, exchange_topics(settings))
        return settings

    def spawn(self, name: str, module: str, settings: Settings, *args: str) -> Child:
        child = Child.module(name, module, settings, self.logs, *args)
        self.children.append(child)
        return child

    def spawn_worker(self, name: str, part: str, settings: Settings) -> Child:
        """A worker ``part`` (``streams``, ``sink``) through the worker shell."""
        child = Child(name, worker_argv(part), settings, self.logs / f"{name}.log")
        self.children.append(child)
        return child

    def add(self, key: str, label: str, value: float, unit: str, note: str = "") -> None:
        self.figures[key] = Figure(key, label, value, unit, note)
        self.say(f"{label}: {value:,.1f} {unit}" + (f" ({note})" if note else ""))

    def add_rss(self, key: str, label: str, child: Child, note: str = "") -> None:
        self.add(key, label, child.peak_rss_mib, MIB, note)


# -- in-process measurements, used by the phases -------------------------------------------------

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
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 500_000})
    for i in range(count):
        key, value = messages[i % len(messages)]
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise StackError(f"could not load {topic}: messages still undelivered after 120s")


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
                while True:
                    try:
                        producer.produce(target, message.value(), message.key())
                        break
                    except BufferError:
                        producer.poll(0.05)
                moved += 1
            producer.poll(0)
        producer.flush(120)
        return rate(moved, time.perf_counter() - started)
    finally:
        consumer.close()


def paced_send(settings: Settings, events: list[dict[str, Any]], per_second: int, say: Say) -> tuple[int, float]:
    """Send ``events`` signed, at ``per_second``, each stamped ``ts_ms`` = now; returns (sent, start ms)."""
    from producers.publisher import make_producer
    from schemas.codec import EventCodec
    from schemas.registry import make_registry

    codec = EventCodec(make_registry(None))
    keys = {p: settings.province_key(p) for p in settings.provinces}
    producer = make_producer(settings.kafka_conf(**{"linger.ms": 20}))
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


def write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
    except OSError as exc:
        raise DeployError(f"cannot write {path}: {exc}") from exc


def latency_percentiles(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 99)
