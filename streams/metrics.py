"""Prometheus counters of the stream stage, fed from each batch's ``BatchResult``."""

from __future__ import annotations

from prometheus_client import Counter

from .pipeline import BatchResult

EVENTS = Counter("roadx_stream_events_total", "Events seen by the stream stage", ["outcome", "province"])
REJECTED = Counter("roadx_stream_rejected_total", "Events sent to the DLQ, by rule", ["rule", "province"])
ROUTED = Counter("roadx_stream_routed_total", "Cases routed to another province", ["source", "target"])


def observe(result: BatchResult) -> None:
    for (outcome, province), n in result.counts.items():
        EVENTS.labels(outcome, province).inc(n)
    for (rule, province), n in result.rejects.items():
        REJECTED.labels(rule, province).inc(n)
    for (source, target), n in result.routed.items():
        ROUTED.labels(source, target).inc(n)
