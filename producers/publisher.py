"""Send spooled entries to Kafka; an entry is acknowledged in the spool only on delivery.

The producer is idempotent (``enable.idempotence``, ``acks=all``): librdkafka's retries
never duplicate or reorder a partition. Compression defaults to none: Tansu accepts lz4,
but not every client that reads the topics decodes it (aiokafka, which provinces' subscribers
may use, decodes lz4/zstd/snappy only when ``cramjam`` is installed).

With a ``SubmissionBook`` (``producers.submissions``), each acknowledgement also releases the
manifests whose submissions the broker has now acknowledged whole: they join the spool and
are sent like any entry. Manifests are not events: ``on_acked`` and the counts returned
count events only.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from confluent_kafka import KafkaException, Producer

from schemas.kafka import produce

from .errors import PublishError
from .spool import Spool, SpoolEntry
from .submissions import SubmissionBook

# The client sends a produce request per partition, and each costs the embedded broker about 0.2 ms of
# CPU: a party's 3 partitions (31 parties: 93) at 20 ms meant about one request a message below a few
# thousand events/s. At 100 ms the broker used 0.64–0.65 of a core in `roadx bench --phases end_to_end`'s
# latency runs against 0.76–0.78 at 20 ms (two runs each), and p99 at 1,250 events/s went 1.2–1.3 s → 1.0–1.1.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 100,
    "compression.type": "none",
    "message.timeout.ms": 120_000,
    "allow.auto.create.topics": False,  # topics come from the exchange's spec, never from a producer's guess
}
PRODUCER_REQUIRED: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}


def make_producer(kafka_conf: dict[str, Any]) -> Producer:
    """An idempotent producer; ``kafka_conf`` may override defaults but not idempotence."""
    try:
        return Producer({**PRODUCER_DEFAULTS, **kafka_conf, **PRODUCER_REQUIRED})
    except KafkaException as exc:
        raise PublishError(f"cannot create a Kafka producer: {exc}") from exc


class SpoolPublisher:
    """Drains one spool. Several publishers may share one producer (``producer=``).

    ``on_acked(n)`` is called each time ``n`` more events are recorded as acknowledged (0 when only manifests were).
    """

    def __init__(self, spool: Spool, kafka_conf: dict[str, Any] | None = None, *,
                 producer: Producer | None = None, chunk: int = 10_000, flush_timeout: float = 150.0,
                 on_acked: Callable[[int], None] | None = None, book: SubmissionBook | None = None) -> None:
        if producer is None and kafka_conf is None:
            raise PublishError("a SpoolPublisher needs kafka_conf or a shared producer")
        self.spool = spool
        self._owned = producer is None
        self._producer = producer if producer is not None else make_producer(kafka_conf or {})
        self._chunk = chunk
        self._flush_timeout = flush_timeout
        self._sent_upto = 0
        self._delivered: list[int] = []
        self._delivered_aside: list[int] = []  # manifests: acknowledged, not counted as events
        self._failed: list[tuple[int, str, str]] = []
        self._on_acked = on_acked
        self._book = book
        self._aside = frozenset([book.topic]) if book is not None else frozenset()

    def send(self, limit: int | None = None) -> int:
        """Hand up to ``limit`` not-yet-sent pending entries to the producer; returns how many."""
        entries = self.spool.pending(limit or self._chunk, after_id=self._sent_upto)
        self._produce(entries)
        return len(entries)

    def publish(self, appended: list[SpoolEntry]) -> int:
        """Hand entries the spool returned from ``append_entries`` to the producer without reading
        them back; returns how many entries were handed over.

        Older pending entries not sent yet (a few: manifests released since) are sent first; when
        there are many, or ``appended`` is not the next pending run, sends everything pending from
        the spool instead, so the order stays the spool's.
        """
        if not appended:
            return 0
        sent = 0
        if self.spool.first_pending(self._sent_upto) != appended[0].id:
            older = self.spool.pending(self._chunk, after_id=self._sent_upto, before_id=appended[0].id)
            if older and len(older) < self._chunk:  # a few older entries not sent yet (released manifests): first
                self._produce(older)
                sent = len(older)
            if self.spool.first_pending(self._sent_upto) != appended[0].id:
                while batch := self.send():
                    sent += batch
                return sent
        self._produce(appended)
        return sent + len(appended)

    def _produce(self, entries: list[SpoolEntry]) -> None:
        producer, on_delivery, failed = self._producer, self._on_delivery, self._failed
        for entry in entries:
            try:
                produce(producer, entry.topic, entry.value, entry.key,
                        on_delivery=functools.partial(on_delivery, entry.id))
            except KafkaException as exc:  # refused locally, e.g. larger than message.max.bytes
                failed.append((entry.id, entry.topic, str(exc.args[0] if exc.args else exc)))
        if entries:
            self._sent_upto = entries[-1].id
        producer.poll(0)

    def commit_delivered(self) -> int:
        """Mark entries whose delivery succeeded so far as acknowledged, release the manifests
        this completes; returns how many events."""
        self._producer.poll(0)
        done = self._delivered[:]
        del self._delivered[:len(done)]
        aside = self._delivered_aside[:]
        del self._delivered_aside[:len(aside)]
        book = self._book
        release = book.release_statements() if book is not None and (done or aside) else []
        acked = self.spool.mark_acked(done, aside, release)  # one transaction: acknowledge, then release
        if release:
            book.released()
        elif book is not None:  # nothing acknowledged now: a manifest held since earlier may still be due
            book.release_ready()
        if (acked or aside) and self._on_acked is not None:
            self._on_acked(acked)  # a manifest acknowledged moves no event count, but the spool's depth
        return acked

    def finish(self) -> int:
        """Flush, acknowledge what was delivered, and raise if any entry failed."""
        remaining = self._producer.flush(self._flush_timeout)
        acked = self.commit_delivered()
        failed = self._failed[:]
        del self._failed[:len(failed)]
        if remaining or failed:
            self._sent_upto = 0  # failed and undelivered entries stay pending and are sent again next time
        if failed:
            topics = sorted({topic for _id, topic, _err in failed})
            raise PublishError(
                f"{len(failed)} spooled entries were not delivered to {', '.join(topics)}: {failed[0][2]}",
                [(topic, error) for _id, topic, error in failed])
        if remaining:
            raise PublishError(f"{remaining} messages still undelivered after {self._flush_timeout:.0f}s "
                               f"(spool {self.spool.path})")
        return acked

    def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Send every pending entry (and the manifests their acknowledgement releases); returns how
        many events were acknowledged."""
        acked = 0
        while True:
            while self.send():
                acked += self.commit_delivered()
                if progress is not None:
                    progress(acked)
            acked += self.finish()
            if progress is not None:
                progress(acked)
            if self.spool.first_pending(self._sent_upto) is None:
                return acked

    def close(self) -> None:
        """Flush an owned producer (entries not delivered stay pending in the spool)."""
        if self._owned:
            self._producer.flush(self._flush_timeout)
            self.commit_delivered()

    def _on_delivery(self, entry_id: int, err, msg) -> None:
        if err is None:
            (self._delivered_aside if msg.topic() in self._aside else self._delivered).append(entry_id)
        else:
            self._failed.append((entry_id, msg.topic(), str(err)))
