"""Running a faust app inside the worker shell: started, kept until the shell's stop event is
set (SIGTERM, SIGINT), then stopped — without faust's own ``Worker``, whose signal handling
and terminal output the shell already does its own way. A start that fails (no broker to
reach) is a ``WorkerError``: the shell logs why and exits 70. ``broker_credentials`` gives a faust
app the Kafka security every other client of the process gets from ``settings.kafka_conf``
(TLS, SASL PLAIN or SCRAM). ``table_manager`` gives an app with tables a recovery that reads
each changelog to its true end and hands the streams nothing read before they were put back
where the group committed, and offsets committed only once the table changes before them
were sent (``flush_to_empty``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import threading
from typing import Any, Callable, Mapping

import faust
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.auth import CredentialsT

from schemas.kafka import committed_offsets, true_ends
from schemas.settings import Settings

from .errors import StateError, WorkerError

STOP_POLL_SECONDS = 0.2
STOP_SECONDS = 30.0  # how long the app may take to stop once asked


def run_until_stopped(app: faust.App, stop: threading.Event) -> None:
    asyncio.run(_serve(app, stop))


async def _serve(app: faust.App, stop: threading.Event) -> None:
    # Started as a task: a stop asked for while the app is still starting (recovering its
    # tables from a broker that has gone away, say) is not kept waiting for the start to end.
    starting = asyncio.ensure_future(app.start())
    try:
        while not stop.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)
            if starting.done() and starting.exception() is not None:  # a start that failed fails the run
                exc = starting.exception()
                raise WorkerError(f"{app.conf.id} could not start: {type(exc).__name__}: {exc}") from exc
    finally:
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(app.stop(), STOP_SECONDS)


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """faust's credentials for ``ROADX_KAFKA_SECURITY_PROTOCOL`` and its SASL and TLS settings;
    None for plaintext."""
    protocol = settings.kafka_security_protocol or "PLAINTEXT"
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None)
        if settings.kafka_ssl_certificate_file and settings.kafka_ssl_key_file:
            context.load_cert_chain(str(settings.kafka_ssl_certificate_file), str(settings.kafka_ssl_key_file))
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    conf = settings.kafka_security_conf()
    return faust.SASLCredentials(username=conf.get("sasl.username"), password=conf.get("sasl.password"),
                                 mechanism=conf.get("sasl.mechanism"), ssl_context=context)


def table_manager(settings: Settings) -> type[TableManager]:
    """faust's table manager with ``StrictRecovery``: the recovery of its tables and the
    resumption of its streams after each rebalance, done so that nothing is lost.

    - Each changelog partition is read to its true end. faust reads a changelog up to the high
      watermark the broker reports; the embedded broker reports the base offset of its last
      batch, so the rest of that batch — the last changes written before a worker was killed —
      would be missing from the recovered table.
    - The streams start again where the group committed, with nothing read before in flight.
      faust resumes the stream partitions while its fetcher runs, then seeks them to their
      committed offsets one by one, then empties the streams' queues: what was fetched in
      between is dropped, and since aiokafka does not seek a partition whose committed offset
      is none or 0, a partition the group never committed goes on after what was dropped —
      the messages are skipped for good (faust takes the hole for a compacted gap and commits
      past it). Here the streams stay paused and the fetcher stopped until every stream
      partition has been put, in one step, at its committed offset (its beginning when none).
    - Offsets are committed only once the table changes before them were handed to the
      producer (``flush_to_empty`` stands in for the producer buffer's flush).
    """
    conf = settings.kafka_conf()

    class StrictRecovery(Recovery):
        async def _build_highwaters(self, consumer: Any, tps: Any, destination: Any, title: str) -> None:
            await super()._build_highwaters(consumer, tps, destination, title)
            try:
                ends = await _in_daemon_thread(_last_offsets, conf, f"{self.app.conf.id}-recovery", list(tps))
            except StateError as exc:  # the broker is gone: faust's own ends, and its own handling of that
                self.log.warning("reading to the reported ends only: %s", exc)
                return
            for tp, last in ends.items():  # destination is a Counter: its update() would add
                destination[tp] = max(destination.get(tp, -1), last)

        async def on_recovery_completed(self, generation_id: int = 0) -> None:
            app, consumer = self.app, self.app.consumer
            consumer.stop_flow()  # what the fetcher hands over from now until the flow resumes is dropped
            self.log.info("Restore complete!")
            await app.on_rebalance_complete.send()
            self._set_recovery_ended()
            for table in self.tables.values():
                await table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            if app.consumer_generation_id != generation_id:
                self.log.warning("rebalancing again (generation %s, not %s)", app.consumer_generation_id, generation_id)
                return
            streams = {tp for tp in consumer.assignment() if not self._is_changelog_tp(tp)}
            if streams:
                self.log.info("Seek stream partitions to committed offsets.")
                await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
                try:
                    positions = await _in_daemon_thread(_committed_positions, conf, app.conf.id, streams)
                except StateError as exc:  # the broker is gone: where faust's own seek put them
                    self.log.warning("resuming the streams where faust's seek put them: %s", exc)
                else:  # one step in the consumer's thread: no fetch between two partitions' seeks
                    await self._wait(consumer.seek_wait(positions), timeout=app.conf.broker_request_timeout)
            # From here to the resumed flow nothing awaits: the first records the streams get
            # are those read from the positions just set.
            consumer.resume_partitions(streams)
            self.completed.set()
            app.flow_control.resume()  # empties the streams' queues
            consumer.resume_flow()
            await app._fetcher.maybe_start()
            self.tables.on_actives_ready()
            if not app.assignor.assigned_standbys():
                self.tables.on_standbys_ready()
            app.on_rebalance_end()
            self.log.info("Worker ready")

    class Tables(TableManager):
        async def on_start(self) -> None:
            buffer = self.app.producer.buffer
            buffer.flush = functools.partial(flush_to_empty, buffer)  # what the commit waits for
            await super().on_start()

        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = StrictRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return Tables


async def flush_to_empty(buffer: ProducerBuffer) -> None:
    """Wait until every table change in faust's producer buffer (what goes to the changelogs)
    has been handed to the Kafka producer, whose own flush the commit awaits next.

    faust's own buffer flush, which the consumer awaits before committing offsets, returns as
    soon as 0.1 s pass without a send (a slow broker, a busy loop): offsets were then committed
    with their table changes still in the buffer, and a worker killed then lost them — a
    transition forgotten though its reply was taken, which a second answer could then repeat.
    The buffer hands its messages over one at a time, in order: a marker put behind them is
    handed over after all of them.
    """
    if buffer.should_stop:  # its sender takes nothing more: faust's own flush, as it stops
        await ProducerBuffer.flush(buffer)
        return
    handed_over = asyncio.Event()
    buffer.put(_Marker(handed_over))  # type: ignore[arg-type]
    await handed_over.wait()


class _Marker:
    """Stands in the buffer for a message; handing it over sets ``event``."""

    def __init__(self, event: asyncio.Event) -> None:
        self.message = self
        self.channel = self
        self._event = event

    async def publish_message(self, _fut: Any, wait: bool = False) -> None:
        self._event.set()


async def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a daemon thread: a process told to stop does not wait for a read that
    hangs on a broker that is gone (the default executor's threads are joined at exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(outcome)

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
            settle(lambda: done.done() or done.set_exception(error))
        else:
            settle(lambda: done.done() or done.set_result(result))

    threading.Thread(target=work, name="true-ends", daemon=True).start()
    return await done


def _committed_positions(conf: Mapping[str, Any], group: str, tps: set[TP]) -> dict[TP, int]:
    """Where each stream partition goes on: the offset ``group`` committed, else 0 (the
    beginning: an offset before the log's start is reset by ``consumer_auto_offset_reset``)."""
    committed = committed_offsets(conf, group, [(tp.topic, tp.partition) for tp in tps], error=StateError,
                                  what="find where the streams go on")
    return {tp: committed[(tp.topic, tp.partition)] or 0 for tp in tps}


def _last_offsets(conf: Mapping[str, Any], group: str, tps: list[TP]) -> dict[TP, int]:
    """The offset of the last message of each changelog partition (-1: empty), as faust counts."""
    ends = true_ends(conf, group, [(tp.topic, tp.partition) for tp in tps], error=StateError,
                     what="find the end of a table's changelog")
    return {tp: ends[(tp.topic, tp.partition)] - 1 for tp in tps}
