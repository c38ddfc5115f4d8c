"""Prometheus metrics of the stream stage, fed from each batch's ``BatchResult``."""

from __future__ import annotations

from typing import Mapping

from prometheus_client import Counter, Gauge

from .pipeline import DUPLICATE, REJECTED as REJECTED_OUTCOME, UNCHANGED, BatchResult

EVENTS = Counter("roadx_stream_events", "Events seen by the stream stage, by outcome", ["outcome", "province"])
REJECTED = Counter("roadx_stream_rejected", "Events rejected, by the rule that rejected them", ["rule", "province"])
DLQ = Counter("roadx_stream_dlq", "Messages written to the dead-letter topic", ["province"])
DEDUPLICATED = Counter("roadx_stream_deduplicated", "Events dropped as a repeat (duplicate event id) "
                       "or as unchanged (same content as the entity's last version)", ["province", "kind"])
ROUTED = Counter("roadx_stream_routed", "Cases routed to another province", ["source", "target"])
FINDINGS = Counter("roadx_quality_findings", "Data-quality findings published to national.quality",
                   ["province", "dimension", "severity"])
FORGOTTEN = Counter("roadx_stream_forgotten_ids", "Accepted event ids forgotten after the dedup retention")
ROUTED_LATE = Counter("roadx_stream_routed_late", "Cases routed once a register held an entity they name, "
                      "after they arrived (streams.waiting)", ["source", "target"])
WAITING = Gauge("roadx_stream_cases_waiting", "Cases of this worker's partitions waiting for a register to hold "
                "an entity they name (streams.waiting)")
ALREADY_WRITTEN = Counter("roadx_stream_outputs_already_written", "Outputs left out when a batch was processed "
                          "again because the worker that died processing it had written them")


def observe(result: BatchResult, already_written: int = 0) -> None:
    for (outcome, province), n in result.counts.items():
        EVENTS.labels(outcome, province).inc(n)
        if outcome == REJECTED_OUTCOME:
            DLQ.labels(province).inc(n)
        elif outcome in (DUPLICATE, UNCHANGED):
            DEDUPLICATED.labels(province, outcome).inc(n)
    for (rule, province), n in result.rejects.items():
        REJECTED.labels(rule, province).inc(n)
    for (source, target), n in result.routed.items():
        ROUTED.labels(source, target).inc(n)
    for (province, dimension, severity), n in result.findings.items():
        FINDINGS.labels(province, dimension, severity).inc(n)
    if result.forgotten:
        FORGOTTEN.inc(result.forgotten)
    if already_written:
        ALREADY_WRITTEN.inc(already_written)


def observe_late(routed: Mapping[tuple[str, str], int], already_written: int = 0) -> None:
    """Cases routed late (``streams.waiting``): counted as routed, and as routed late."""
    for (source, target), n in routed.items():
        ROUTED.labels(source, target).inc(n)
        ROUTED_LATE.labels(source, target).inc(n)
    if already_written:
        ALREADY_WRITTEN.inc(already_written)
