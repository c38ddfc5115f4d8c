"""The stream worker's run: its state store and the loop (``streams.runner``) until ``stop``.

Started through the worker shell (``roadx worker streams``, ``deploy.worker``), which sets
up logging, metrics, signals, the lag recorder and the exit status.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from schemas.settings import Settings

from .runner import StreamRunner
from .state import StateStore


def run(settings: Settings, stop: threading.Event, lag: Callable[[Any, str], Any] | None = None) -> None:
    """Process batches until ``stop`` is set, then close after the batch in hand.

    ``lag(consumer, group)`` makes the recorder of the consumer's lag, ticked after each poll
    (none without it). Raises ``StreamError`` when a batch cannot be written: its source
    offsets are then not committed.
    """
    store = StateStore.open_free_slot(settings.data_dir / "streams" / "state")
    try:
        StreamRunner(settings, store, lag).run(stop)
    finally:
        store.close()
