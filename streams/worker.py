"""Run the stream worker: ``python -m streams.worker`` (settings from ``ROADX_*``).

Stops after the batch in hand on SIGTERM or SIGINT. A batch that cannot be written
ends the process with status 70 before its offsets are committed.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from prometheus_client import start_http_server

from schemas.settings import Settings, resolve

from .errors import StreamError
from .runner import StreamRunner
from .state import StateStore

EXIT_BATCH_FAILED = 70  # EX_SOFTWARE
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"  # read back by ``roadx chaos`` (deploy.chaos_trace)

log = logging.getLogger(__name__)


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Serve metrics (when ``metrics_port`` > 0) and process batches until ``stop`` or a signal."""
    if not settings.bootstrap_servers:
        raise StreamError("the stream worker needs Kafka bootstrap servers (ROADX_BOOTSTRAP_SERVERS)")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if settings.metrics_port > 0:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    store = StateStore.open_free_slot(settings.data_dir / "streams" / "state")
    try:
        StreamRunner(settings, store).run(stop)
    finally:
        store.close()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("streams").setLevel(logging.INFO)  # partitions taken and given, handover decisions
    try:
        run_worker(resolve())
    except StreamError as exc:
        log.critical("stream worker stopped: %s", exc)
        return EXIT_BATCH_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
