"""Prometheus metrics of the provincial adapters, and their HTTP endpoint.

- ``roadx_adapter_events_read_total{province, adapter}``: events built from source rows or changes;
- ``roadx_adapter_events_sent_total{province, adapter}``: events the broker acknowledged;
- ``roadx_adapter_spool_depth{province, adapter}``: spooled events not acknowledged yet.

``adapter`` is one of ``ADAPTERS``. The functions are what adapters call at the points
where they build, spool and see acknowledged events.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, start_http_server

from schemas.settings import Settings

from .errors import MetricsError

ADAPTERS = ("files", "db", "synthetic")

EVENTS_READ = Counter("roadx_adapter_events_read", "Events built from source rows or changes",
                      ["province", "adapter"])
EVENTS_SENT = Counter("roadx_adapter_events_sent", "Events acknowledged by the broker", ["province", "adapter"])
SPOOL_DEPTH = Gauge("roadx_adapter_spool_depth", "Spooled events not yet acknowledged by the broker",
                    ["province", "adapter"])

_serving: tuple[str, int] | None = None
_serving_lock = threading.Lock()


def events_read(province: str, adapter: str, n: int = 1) -> None:
    """``n`` events were built from source rows or changes."""
    if n:
        EVENTS_READ.labels(province, _checked(adapter)).inc(n)


def events_sent(province: str, adapter: str, n: int = 1) -> None:
    """The broker acknowledged ``n`` more events."""
    if n:
        EVENTS_SENT.labels(province, _checked(adapter)).inc(n)


def spool_depth(province: str, adapter: str, depth: int) -> None:
    """The spool now holds ``depth`` unacknowledged events."""
    SPOOL_DEPTH.labels(province, _checked(adapter)).set(depth)


def serve(settings: Settings) -> tuple[str, int] | None:
    """Serve ``/metrics`` on ``metrics_host:metrics_port`` when the port is > 0, once per process.

    Returns the address served, or None when metrics are off.
    """
    global _serving
    if settings.metrics_port <= 0:
        return None
    with _serving_lock:
        if _serving is None:
            try:
                start_http_server(settings.metrics_port, addr=settings.metrics_host)
            except OSError as exc:
                raise MetricsError(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
                                   f"{exc.strerror or exc}") from exc
            _serving = (settings.metrics_host, settings.metrics_port)
        return _serving


def _checked(adapter: str) -> str:
    if adapter not in ADAPTERS:
        raise MetricsError(f"unknown adapter label {adapter!r}: use one of {', '.join(ADAPTERS)}")
    return adapter
