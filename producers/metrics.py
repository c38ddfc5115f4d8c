"""Prometheus metrics of the provincial adapters (served by ``deploy.worker.serve_metrics``).

- ``roadx_adapter_events_read_total{province, adapter}``: events built from source rows or changes;
- ``roadx_adapter_events_sent_total{province, adapter}``: events the broker acknowledged;
- ``roadx_adapter_spool_depth{province, adapter}``: spooled events not acknowledged yet;
- ``roadx_adapter_receipts_total{province, adapter, outcome}``: what became of the hub's
  receipts and of the submissions waiting for one (``RECEIPT_OUTCOMES``: a verified receipt
  ``received``, one ``refused`` (bad signature, malformed, another manifest's), a submission
  ``resent`` for want of one, or still ``missing`` after its resend);
- ``roadx_adapter_submissions_waiting{province, adapter}``: submissions with no verified receipt yet.

``adapter`` is one of ``ADAPTERS``. The functions are what adapters call at the points
where they build, spool and see acknowledged events.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from .errors import MetricsError

ADAPTERS = ("files", "db", "synthetic")
RECEIPT_OUTCOMES = ("received", "refused", "resent", "missing")

EVENTS_READ = Counter("roadx_adapter_events_read", "Events built from source rows or changes",
                      ["province", "adapter"])
EVENTS_SENT = Counter("roadx_adapter_events_sent", "Events acknowledged by the broker", ["province", "adapter"])
SPOOL_DEPTH = Gauge("roadx_adapter_spool_depth", "Spooled events not yet acknowledged by the broker",
                    ["province", "adapter"])
RECEIPTS = Counter("roadx_adapter_receipts", "Receipts verified or refused, submissions resent or given up",
                   ["province", "adapter", "outcome"])
SUBMISSIONS_WAITING = Gauge("roadx_adapter_submissions_waiting", "Submissions with no verified receipt yet",
                            ["province", "adapter"])


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


def receipt_outcome(province: str, adapter: str, outcome: str) -> None:
    """One receipt or submission ended in ``outcome`` (one of ``RECEIPT_OUTCOMES``)."""
    if outcome not in RECEIPT_OUTCOMES:
        raise MetricsError(f"unknown receipt outcome {outcome!r}: use one of {', '.join(RECEIPT_OUTCOMES)}")
    RECEIPTS.labels(province, _checked(adapter), outcome).inc()


def submissions_waiting(province: str, adapter: str, waiting: int) -> None:
    SUBMISSIONS_WAITING.labels(province, _checked(adapter)).set(waiting)


def _checked(adapter: str) -> str:
    if adapter not in ADAPTERS:
        raise MetricsError(f"unknown adapter label {adapter!r}: use one of {', '.join(ADAPTERS)}")
    return adapter
