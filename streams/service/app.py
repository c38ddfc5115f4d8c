"""The national registry service as one process: a faust app serving the API on faust's
web server, beside the reader that keeps this worker's copy of the register.

``run(settings, stop, store_access, audit)`` starts the app, reads ``national.changes`` to
its end (``/v1/health`` answers 503 until then), follows it, and stops when ``stop`` is
set. Several workers may run side by side: each keeps the whole register (one RocksDB copy
under ``<data dir>/service/state/w<n>``) and answers any question, so a load balancer may
send a request to any of them and a killed one's callers go on at the others.
"""

from __future__ import annotations

import logging
import socket
import threading

import faust
from faust.app.base import BootStrategy

from schemas.credentials import Credentials, credentials_file
from schemas.pii import PiiMasker
from schemas.settings import Settings

from ..errors import ServiceError
from ..faust_run import run_until_stopped
from ..state import StateStore
from .answers import Answers
from .api import Service, StoreAccess, add_routes
from .assists import KafkaAssists
from .audit import KafkaAudit
from .replica import RegisterReplica
from .seals import SealChecker

log = logging.getLogger("streams.service")


def service_port(settings: Settings) -> int:
    """The port to serve on: the configured one, else a free one on the service host."""
    if settings.service_port:
        return settings.service_port
    with socket.socket() as sock:
        sock.bind((settings.service_host, 0))
        return sock.getsockname()[1]


class _WebOnly(BootStrategy):
    """The service's faust app serves its web views; it reads Kafka with its own reader
    (``replica``) and writes with its own producer (``audit``), so faust starts no Kafka client,
    joins no group and declares no topic of its own."""

    enable_kafka = False


class ServiceApp(faust.App):
    BootStrategy = _WebOnly


def build_app(settings: Settings, service: Service, port: int) -> faust.App:
    app = ServiceApp(
        f"{settings.topics.prefix}roadx-service", broker=f"kafka://{settings.bootstrap_servers}",
        store="memory://", web_enabled=True, web_host=settings.service_host, web_bind=settings.service_host,
        web_port=port, datadir=str((settings.data_dir / "service" / "faust").absolute()),
        broker_session_timeout=settings.session_timeout_ms / 1000, broker_heartbeat_interval=1.0,
    )
    add_routes(app, service)
    return app


def run(settings: Settings, stop: threading.Event, store_access: StoreAccess | None = None) -> None:
    """Serve until ``stop`` is set, recording every request on ``national.audit``; ``ServiceError``
    when the register cannot be read."""
    settings.kafka_conf()  # no bootstrap servers: fail before opening anything
    store = StateStore.open_free_slot(settings.data_dir / "service" / "state")
    replica: RegisterReplica | None = None
    audit: KafkaAudit | None = None
    assists: KafkaAssists | None = None
    try:
        replica = RegisterReplica(settings, store)
        masker = PiiMasker(settings.pii_key())
        audit = KafkaAudit(settings, masker)
        assists = KafkaAssists(settings)
        service = Service(Answers(store, masker, SealChecker(settings.hub_keys())), Credentials.load(credentials_file(settings.data_dir)), masker,
                          settings.taking_part(), settings.service_rate_per_second, store_access, audit,
                          settings.uscc_allow(), ready=replica.ready.is_set, assists=assists)
        port = service_port(settings)
        failed: list[BaseException] = []
        reader = threading.Thread(target=_read, args=(replica, stop, failed), name="register-reader", daemon=True)
        reader.start()
        log.info("information service on http://%s:%d/v1/ (register: %s)", settings.service_host, port,
                 settings.topics.national_changes)
        try:
            run_until_stopped(build_app(settings, service, port), stop)
        finally:
            stop.set()
            reader.join(timeout=10)
            service.close()
        if failed:
            raise ServiceError(f"the register reader stopped: {failed[0]}") from failed[0]
    finally:
        if assists is not None:
            assists.close()
        if audit is not None:
            audit.close()
        if replica is not None:
            replica.close()
        store.close()


def _read(replica: RegisterReplica, stop: threading.Event, failed: list[BaseException]) -> None:
    try:
        replica.catch_up()
        replica.follow(stop)
    except Exception as exc:  # the serving loop sees it and stops the process
        log.error("register reader failed: %s", exc)
        failed.append(exc)
        stop.set()
