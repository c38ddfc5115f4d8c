"""One ``roadx bench`` run: its options, its fresh embedded broker and temporary directory, its figures.

``Bench.run(phases)`` starts the broker, runs each phase in order and cleans up; the phases
(``deploy.bench.phases.PHASES``) use its helpers: ``phase`` (settings with their own topic
prefix and data directory), ``spawn`` and ``spawn_worker`` (child processes, the workers
through the worker shell as the stack starts them: ``deploy.worker.worker_argv``), ``add``
and ``add_rss`` (a figure). Also the machine's facts for the table, and writing the JSON.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from schemas.settings import Settings

from ..broker import EmbeddedBroker
from ..errors import DeployError, StackError
from ..topics import create_topics, exchange_topics
from ..worker import worker_argv
from .report import MIB, Figure
from .watch import Child

Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    events: int = 100_000
    state_entities: int = 10_000_000
    faust_events: int = 20_000
    latency_rate: int = 5_000
    latency_seconds: float = 20.0
    service_entities: int = 1_000_000
    service_seconds: float = 10.0
    seed: int = 7
    scale_points: tuple[int, ...] = (1_000_000, 5_000_000, 20_000_000)
    scale_round: int = 1_000_000

    def validate(self) -> None:
        if self.events < 100:
            raise DeployError(f"--events must be at least 100, got {self.events}")
        if self.state_entities < 1 or self.faust_events < 100:
            raise DeployError("--state-entities must be at least 1 and --faust-events at least 100")
        if self.latency_rate < 1 or not self.latency_seconds > 0:
            raise DeployError("--latency-rate and --latency-seconds must be positive")
        if self.service_entities < 2 or not self.service_seconds > 0:
            raise DeployError("--service-entities must be at least 2 and --service-seconds positive")
        if not self.scale_points or list(self.scale_points) != sorted(set(self.scale_points)) \
                or self.scale_points[0] < 1 or self.scale_round < 1:
            raise DeployError(f"--scale-points must be increasing positive counts of entities and --scale-round "
                              f"positive, got {','.join(map(str, self.scale_points))} and {self.scale_round}")


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
        self.loaded: Settings | None = None  # the province topics a stream worker processed, for the peers

    def run(self, phases: Iterable[Callable[["Bench"], None]]) -> dict[str, Figure]:
        """Run ``phases`` in order on a fresh embedded broker; the figures by key."""
        broker: EmbeddedBroker | None = None
        try:  # from the start: an interrupt as soon as the broker is announced still cleans up
            broker = EmbeddedBroker.start(log_path=self.root / "broker.log")
            self.bootstrap = broker.bootstrap_servers
            self.broker_pid = broker.process.pid
            self.say(f"embedded broker on {self.bootstrap}, work directory {self.root}")
            for phase in phases:
                phase(self)
        finally:
            for child in self.children:
                child.stop()
            if broker is not None:
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

    def delete_topics(self, topics: list[str]) -> None:
        """Delete ``topics`` from the broker: the embedded broker keeps every message in memory and
        cannot delete records, and deleting a topic gives its memory back."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})  # held until every future is resolved
        for topic, future in admin.delete_topics(topics).items():
            try:
                future.result(60)
            except Exception as exc:  # KafkaException, or a timeout
                raise StackError(f"cannot delete the bench's topic {topic}: {exc}") from exc

    def clear_earlier_phases(self) -> int:
        """Delete every topic the phases before this one wrote (all but the broker's own), so a phase
        that measures the line's latency runs on a broker holding only its own messages; returns how many."""
        from confluent_kafka.admin import AdminClient

        names = [t for t in AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=30).topics
                 if not t.startswith("__")]
        if names:
            self.delete_topics(names)
        self.loaded = None
        return len(names)

    def spawn(self, name: str, module: str, settings: Settings, *args: str) -> Child:
        child = Child.module(name, module, settings, self.logs, *args)
        self.children.append(child)
        return child

    def spawn_worker(self, name: str, part: str, settings: Settings) -> Child:
        """A worker ``part`` (``streams``, ``sink``, ``service``) through the worker shell."""
        child = Child(name, worker_argv(part), settings, self.logs / f"{name}.log")
        self.children.append(child)
        return child

    def add(self, key: str, label: str, value: float, unit: str, note: str = "") -> None:
        self.figures[key] = Figure(key, label, value, unit, note)
        self.say(f"{label}: {value:,.1f} {unit}" + (f" ({note})" if note else ""))

    def add_rss(self, key: str, label: str, child: Child, note: str = "") -> None:
        self.add(key, label, child.peak_rss_mib, MIB, note)


def write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
    except OSError as exc:
        raise DeployError(f"cannot write {path}: {exc}") from exc
