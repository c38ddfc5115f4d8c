"""Every request the service answers, recorded on ``national.audit`` (``roadx.ServiceRequest``),
which the sink stores in ``service_requests`` for the monthly report.

A record names the party and credential (empty when the caller could not be identified),
the route, what was asked — with every ID or mobile number in it replaced by its token
(``tok_<token>``, as the store's entity keys carry them) — the status, outcome, records
answered and latency. The producer queues the record and its deliveries are served at the
next record; one that cannot be encoded or queued is
logged and counted (``roadx_service_audit_failed_total``), and the request is answered all
the same. Only a full local queue makes a request wait, for room (``schemas.kafka.produce``):
a record is not dropped for speed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from confluent_kafka import KafkaException, Producer
from prometheus_client import Counter

from schemas.codec import ServiceRequestCodec
from schemas.errors import EncodeError
from schemas.kafka import produce
from schemas.pii import PiiMasker
from schemas.registry import make_registry
from schemas.settings import Settings

log = logging.getLogger("streams.service")

FAILED = Counter("roadx_service_audit_failed", "Service requests whose audit record could not be encoded or sent")
FLUSH_SECONDS = 10.0


class KafkaAudit:
    """``streams.service.api.Audit`` on ``national.audit``."""

    def __init__(self, settings: Settings, masker: PiiMasker) -> None:
        self.topic = settings.topics.national_audit
        self.masker = masker
        self.codec = ServiceRequestCodec(make_registry(settings.schema_registry_url or None))
        self.producer = Producer(settings.kafka_conf(**{"enable.idempotence": True, "linger.ms": 50}))

    def record(self, *, party: str, credential_id: str, method: str, endpoint: str, asked: list[str],
               status: int, outcome: str, records: int, latency_ms: float) -> None:
        request = {
            "request_id": str(uuid.uuid4()), "party": party, "credential_id": credential_id, "method": method,
            "endpoint": endpoint, "asked": [self.masker.entity_key(a) for a in asked], "status": status,
            "outcome": outcome, "records": records, "latency_ms": latency_ms,
            "ts": dt.datetime.now(dt.timezone.utc),
        }
        try:
            produce(self.producer, self.topic, self.codec.encode(request), party.encode("utf-8"),
                    on_delivery=_delivered)
        except (EncodeError, KafkaException) as exc:
            FAILED.inc()
            log.warning("audit record of %s %s not sent: %s", method, endpoint, exc)
        self.producer.poll(0)

    def close(self) -> None:
        left = self.producer.flush(FLUSH_SECONDS)
        if left:
            FAILED.inc(left)
            log.warning("%d audit records not delivered at shutdown", left)


def _delivered(err: object, _msg: object) -> None:
    if err is not None:
        FAILED.inc()
        log.warning("audit record not delivered: %s", err)
