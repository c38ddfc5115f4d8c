"""The worker shell: every long-running roadx process runs through it, the same way.

The parts (their command: ``deploy.commands.worker`` and ``deploy.commands.produce``):

    roadx worker streams                   the stream worker (``streams.worker.run``)
    roadx worker sink                      the sink (``sinks.worker.run``)
    roadx worker service                   the information service (``streams.service.app.run``)
    roadx worker synthetic --events N --seed S [--rate R …]
                                           the synthetic provinces as a restartable adapter
                                           (``producers.synthetic``; started by ``roadx chaos``)
    roadx produce files --watch DIR        the file adapter's drop folder
    roadx produce db (without --once)      the database adapter's polling

Whoever starts a part — the embedded stack, ``roadx chaos``, ``roadx bench``, the tests —
runs ``worker_argv(part)``: ``python -m deploy.cli worker PART``, the very code the
``roadx`` script runs (compose and Kubernetes run ``roadx worker streams|sink``).

What the shell does for each part, once:

- logging: libraries at WARNING, the project's loggers at INFO (the stream workers' lines
  about partitions taken and given and outputs left out among them), every line in
  ``LOG_FORMAT``, which ``roadx chaos`` reads back (``deploy.chaos.trace``);
- the metrics server on ``metrics_host:metrics_port`` when the port is > 0 (``serve_metrics``);
- the garbage collector's youngest generation collected after 20,000 allocations instead of
  Python's 700 (``deploy.collector``);
- SIGTERM and SIGINT set the part's stop event: it stops after the batch in hand;
- the consumer-lag recorder (``deploy.consumer_lag.LagRecorder``) for the parts that consume
  (``roadx worker streams|sink`` hand it to them);
- the exit status, one table for every part:

    0    stopped by SIGTERM/SIGINT after the batch in hand, or its work is done (the synthetic
         adapter: every event generated and acknowledged)
    1    an adapter went through its input, but not all of it went on: a file rejected or with
         bad rows, a file waiting for the broker
    2    it could not start: a bad option or setting, no Kafka bootstrap servers, the metrics
         port taken (``roadx: error: …`` on stderr)
    70   it failed while running (EX_SOFTWARE): a batch that cannot be written (its source
         offsets are not committed), a store that cannot be written, a spool or broker an
         adapter cannot use; logged at CRITICAL as ``<part> stopped: <why>``
    130  interrupted (Ctrl-C) before the shell took over the signals
"""

from __future__ import annotations

import _thread
import logging
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from prometheus_client import start_http_server

from schemas.settings import Settings

from .collector import tune_collector
from .errors import PART_ERRORS, StartError

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"  # read back by roadx chaos (deploy.chaos.trace.LINE)
PROJECT_LOGGERS = ("schemas", "producers", "streams", "sinks", "deploy", "roadx")

EXIT_DONE = 0
EXIT_INPUT_REFUSED = 1
EXIT_ERROR = 2  # the part could not start; for every roadx command, an error (roadx: error: …)
EXIT_FAILED = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130

log = logging.getLogger("deploy.worker")

_serving: tuple[str, int] | None = None
_serving_lock = threading.Lock()


def worker_argv(part: str, *options: str) -> list[str]:
    """The arguments after the interpreter that start ``part`` through this shell (= ``roadx worker PART``)."""
    return ["-m", "deploy.cli", "worker", part, *options]


def run_part(name: str, settings: Settings, work: Callable[[threading.Event], int | None]) -> int:
    """Run ``work(stop)`` as a long-running part: logging, metrics, signals; returns the exit status."""
    setup_logging()
    tune_collector()
    serve_metrics(settings)
    with stop_on_signals() as stop:
        try:
            status = work(stop)
        except PART_ERRORS as exc:
            log.critical("%s stopped: %s", name, exc)
            return EXIT_FAILED
    return EXIT_DONE if status is None else status


def setup_logging() -> None:
    """Libraries at WARNING, the project's own loggers at INFO, every line in ``LOG_FORMAT``."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def serve_metrics(settings: Settings) -> tuple[str, int] | None:
    """Serve ``/metrics`` on ``metrics_host:metrics_port`` when the port is > 0, once per process.

    Returns the address served, or None when metrics are off; ``StartError`` when the port
    cannot be bound.
    """
    global _serving
    if settings.metrics_port <= 0:
        return None
    with _serving_lock:
        if _serving is None:
            try:
                start_http_server(settings.metrics_port, addr=settings.metrics_host)
            except OSError as exc:
                raise StartError(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
                                 f"{exc.strerror or exc}") from exc
            _serving = (settings.metrics_host, settings.metrics_port)
        return _serving


LOST_INTERRUPT_AGAIN_SECONDS = 0.05


def interrupt_on_sigterm() -> None:
    """Make SIGTERM end a command as Ctrl-C does (``KeyboardInterrupt``), so what it started is stopped
    and what it made is removed by its own clean-up; a worker's ``stop_on_signals`` replaces it while it runs.

    Python raises the interrupt wherever the main thread is. Where that is a finalizer or a weakref
    callback (an import lock's, say), it cannot propagate: Python prints "Exception ignored in …" and
    goes on, and the command would run to its end. Such a lost interrupt is raised again in the main
    thread (``deliver_lost_interrupt``)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        sys.unraisablehook = deliver_lost_interrupt


def deliver_lost_interrupt(unraisable: "sys.UnraisableHookArgs") -> None:
    """``sys.unraisablehook``: raise a ``KeyboardInterrupt`` that could not propagate again in the main
    thread, from a timer once this hook has returned (raised in the hook, it would be lost too); hand
    anything else to Python's own hook."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        # as a SIGTERM, whose handler ``interrupt_on_sigterm`` set: a SIGINT would do nothing in a process
        # started in the background by a shell, which starts it with SIGINT ignored
        again = threading.Timer(LOST_INTERRUPT_AGAIN_SECONDS, _thread.interrupt_main, (signal.SIGTERM,))
        again.daemon = True
        again.start()
        return
    sys.__unraisablehook__(unraisable)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event SIGTERM and SIGINT set while the block runs (from the main thread; handlers restored after)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
