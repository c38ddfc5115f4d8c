"""The embedded stack: broker, stream worker, sink, information service and case workflows as supervised processes.

``Stack`` is the supervisor. It makes every party's keys on the party's own side and registers
them at the hub (``provision_parties``, with ``auto_keys``), starts the Tansu broker, creates the topics, spawns the
stream worker, the sink, the information service and the case workflows (each a ``roadx worker PART`` child,
``deploy.worker``, with its settings passed as ``ROADX_*`` variables), waits until every part
answers (``deploy.readiness``: the broker's port, each metrics endpoint, the store answering a
query, the service's health), and only then records where
everything is in ``<data-dir>/stack.json`` so other commands can find it: a stack record
means a stack ready to use. Every child dies with the supervisor (parent-death signal);
if one part dies, the supervisor stops the rest. ``stop()`` ends them in flow order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from schemas.settings import Settings, to_environ

from .broker import EmbeddedBroker, die_with_parent, free_port, wait_for_port
from .errors import StackError
from .readiness import Part, client_probe, endpoint_probe, health_probe, metrics_probe, port_probe, wait_ready
from .topics import create_topics, exchange_topics
from .worker import worker_argv

T = TypeVar("T")

PARTS = ("streams", "sink", "service", "cases")  # each started as ``roadx worker PART`` (deploy.worker)
STOP_ORDER = ("service", "streams", "cases", "sink")
READY_TIMEOUT = 60.0


@dataclass
class StackInfo:
    """What ``stack.json`` records about a running stack."""

    supervisor_pid: int
    bootstrap_servers: str
    data_dir: str
    pids: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    store_http: str = ""  # 127.0.0.1:PORT where the sink serves the store (ClickHouse HTTP, read-only)
    service: str = ""  # 127.0.0.1:PORT of the information service's API

    @property
    def service_url(self) -> str:
        """``http://127.0.0.1:PORT/v1/`` of the information service, or "" when none runs."""
        return f"http://{self.service}/v1/" if self.service else ""

    @classmethod
    def read(cls, path: Path) -> "StackInfo | None":
        """The recorded stack if its supervisor is still alive, else None."""
        try:
            info = cls(**json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise StackError(f"{path} is not a stack record: {exc}") from exc
        return info if _alive(info.supervisor_pid) else None

    @property
    def store_url(self) -> str:
        """``http://127.0.0.1:PORT/`` where the store answers SQL, or "" when it is not served."""
        return f"http://{self.store_http}/" if self.store_http else ""

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), "utf-8")
        tmp.replace(path)


def _alive(pid: int) -> bool:
    """True for a running process; a zombie not yet reaped counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Stack:
    def __init__(self, settings: Settings, log_dir: Path | None = None,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.log_dir = log_dir or settings.data_dir / "logs"
        self.broker: EmbeddedBroker | None = None
        self.children: dict[str, subprocess.Popen] = {}
        self.info: StackInfo | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.info is None:
            raise StackError("the stack is not started")
        return self.info.bootstrap_servers

    def start(self) -> StackInfo:
        """Start broker, topics, stream worker and sink; returns the stack record once every part answers.

        Raises ``StackError`` (with every part stopped) when a part dies or does not answer
        within ``ready_timeout`` seconds.
        """
        if StackInfo.read(self.settings.stack_file):
            raise StackError(
                f"a stack is already running for {self.settings.data_dir}: stop it with "
                f"`roadx down --data-dir {self.settings.data_dir}`"
            )
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.settings.master_key()  # the personal-data token key's secret: made once, before children race to
        provision_parties(self.settings)
        # The stream workers' local state is a cache of changelog topics, and the service's copy
        # of the register one of national.changes, which a new embedded broker does not have: a
        # copy left by an earlier stack would drop every event as seen, or stand past the topic's end.
        shutil.rmtree(self.settings.data_dir / "streams" / "state", ignore_errors=True)
        shutil.rmtree(self.settings.data_dir / "service" / "state", ignore_errors=True)
        shutil.rmtree(self.settings.data_dir / "cases", ignore_errors=True)  # the workflows' table, likewise
        try:
            self.broker = EmbeddedBroker.start(log_path=self.log_dir / "broker.log")
            bootstrap = self.broker.bootstrap_servers
            child_settings = self.settings.with_overrides(bootstrap_servers=bootstrap)
            create_topics(child_settings.kafka_conf(), exchange_topics(child_settings))
            metrics = {}
            store_http_port = 0 if self.settings.clickhouse_url else free_port()
            service_port = self.settings.service_port or free_port()
            for name in PARTS:
                port = free_port()
                metrics[name] = f"127.0.0.1:{port}"
                part_settings = child_settings
                if name == "sink":
                    part_settings = child_settings.with_overrides(store_http_port=store_http_port)
                elif name == "service":
                    part_settings = child_settings.with_overrides(service_port=service_port)
                self.children[name] = self._spawn(name, part_settings, port)
            self.info = StackInfo(
                supervisor_pid=os.getpid(), bootstrap_servers=bootstrap,
                data_dir=str(self.settings.data_dir.resolve()),
                pids={"broker": self.broker.process.pid, **{n: p.pid for n, p in self.children.items()}},
                metrics=metrics, started_at=time.time(),
                store_http=f"127.0.0.1:{store_http_port}" if store_http_port else "",
                service=f"{self.settings.service_host}:{service_port}",
            )
            wait_ready(self.parts(self.info), self.ready_timeout, self.check)
            self.info.write(self.settings.stack_file)
        except BaseException:
            self.stop()
            raise
        return self.info

    def parts(self, info: StackInfo) -> list[Part]:
        """What the stack announces, each with the probe that tells it answers."""
        parts = [Part("broker", info.bootstrap_servers, port_probe(info.bootstrap_servers))]
        parts += [Part(f"{name} metrics", f"http://{address}/metrics", metrics_probe(address))
                  for name, address in info.metrics.items()]
        if info.service:
            parts.append(Part("service", info.service_url, health_probe(info.service)))
        if info.store_http:
            parts.append(Part("store", info.store_url, endpoint_probe(info.store_http)))
        elif self.settings.clickhouse_url:
            from sinks.store import open_store

            settings = self.settings
            parts.append(Part("store", "the ClickHouse server",
                              client_probe(lambda: open_store(settings, settings.clickhouse_database))))
        return parts

    def _spawn(self, name: str, settings: Settings, metrics_port: int) -> subprocess.Popen:
        env = {**os.environ, **to_environ(settings.with_overrides(metrics_port=metrics_port))}
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            return subprocess.Popen(
                [sys.executable, *worker_argv(name)], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        finally:
            log.close()

    def check(self) -> None:
        """Raise ``StackError`` naming the part that died, if any did."""
        if self.broker is not None and self.broker.process.poll() is not None:
            raise StackError(f"the broker exited with code {self.broker.process.returncode}")
        for name, proc in self.children.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                raise StackError(f"the {name} process exited with code {proc.returncode}; see {log}:\n{_tail(log)}")

    def stop(self, timeout: float = 15) -> None:
        """Stop children in flow order (SIGTERM, then SIGKILL), then the broker."""
        for name in STOP_ORDER:
            proc = self.children.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.broker is not None:
            self.broker.stop()
        if self.info is not None:
            self.settings.stack_file.unlink(missing_ok=True)
            self.info = None

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def provision_parties(settings: Settings) -> None:
    """With ``auto_keys`` (the embedded convenience), give every party keys on its own side
    (``<parties-dir>/<P>``), registered at the hub (``<data-dir>/keys``), before any child needs them.

    The hub's key pair is made here too, and a party holding another hub's public key (the
    hub's data directory made anew beside the parties' old one) is given this hub's.
    Without ``auto_keys`` nothing is made: each party runs ``roadx keys init`` and the hub
    ``roadx keys register``.
    """
    if not settings.auto_keys:
        return
    hub_public = settings.hub_keys().hub_public_pem()
    for party in settings.provinces:
        settings.party_key(party)
        keys = settings.party_keys(party)
        if keys.hub_public_file.read_bytes() != hub_public:
            keys.set_hub_public(hub_public)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def with_running_broker(settings: Settings) -> Settings:
    """Settings with bootstrap servers: the configured cluster, else the running embedded stack's."""
    if settings.bootstrap_servers:
        return settings
    info = StackInfo.read(settings.stack_file)
    if info is None:
        raise StackError(f"no broker: start the stack (roadx up --data-dir {settings.data_dir}) "
                         f"or set ROADX_BOOTSTRAP_SERVERS")
    return settings.with_overrides(bootstrap_servers=info.bootstrap_servers)


def served_store(settings: Settings, wait_seconds: float = 30) -> str:
    """``HOST:PORT`` where the running stack's sink serves the store, once it answers; "" when none does.

    "" with a ClickHouse server configured (``clickhouse_url``) or no stack running: the
    store is then opened directly (``sinks.store_client``). A running stack whose sink does
    not serve the store holds it, so it cannot be read: ``StackError``.
    """
    if settings.clickhouse_url:
        return ""
    info = StackInfo.read(settings.stack_file)
    if info is None:
        return ""
    endpoint = info.store_http
    if not endpoint:
        raise StackError(f"the store in {settings.data_dir} is held by the running sink and not served; "
                         f"stop the stack (roadx down) to query it")
    try:
        wait_for_port(int(endpoint.rpartition(":")[2]), wait_seconds)
    except StackError as exc:
        raise StackError(f"the sink does not serve the store on {endpoint}: {exc}") from exc
    return endpoint


def from_served_store(settings: Settings, read: Callable[[Any, str], T]) -> T | None:
    """``read(client, database)`` on the running stack's store, or None while it cannot be reached."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from sinks.errors import SinkError
    from sinks.store_client import store_client

    try:
        client = store_client(settings, served_store(settings, wait_seconds=0.5))
        try:
            return read(client, settings.clickhouse_database)
        finally:
            client.close()
    except (SinkError, StackError, ClickHouseError, OSError):  # the sink is down or starting: unknown for now
        return None


def submissions_answered(settings: Settings) -> tuple[int, int] | None:
    """(submissions whose manifest the store holds, of them answered by a receipt in the evidence log),
    from the running stack's store; None while it cannot be reached."""
    def read(client: Any, db: str) -> tuple[int, int]:
        return (int(client.command(f"SELECT uniqExact(party, submission_key) FROM {db}.submission_manifests")),
                int(client.command(
                    f"SELECT uniqExact(party, submission_id) FROM {db}.evidence_log WHERE kind = 'receipt' "
                    f"AND (party, submission_id) IN (SELECT party, submission_key FROM {db}.submission_manifests)")))
    return from_served_store(settings, read)
