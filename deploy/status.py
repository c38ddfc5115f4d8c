"""A live summary of the running exchange, computed from two scrapes of each process's metrics.

Pure: ``summarize(before, after)`` takes two ``Scrape`` lists of the same processes a few
seconds apart and returns a ``Status``: each process up or down, rates over the interval
(events into and out of the stream worker, adapter sends, sink rows), totals since each
process started (accepted, rejected, DLQ, deduplicated, routed, routed after waiting for a
register and still waiting), consumer lag per group, rejects, DLQ and quality errors per
province, and the sink's p95 insert and source-to-store seconds. ``format_status`` renders it
for a terminal.

Two parts come from the store, not the metrics, and are set by the command: the store
endpoint (``StoreStatus``) and the case workflows' timeliness per target province for the
current month (``CaseTimelinessStatus``: the report's figures, ``sinks.report.case_timeliness``),
ranked by ``rank_timeliness`` as the monthly 通报 does, worst first.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # the store's side is read only when status runs
    from sinks.report import CaseTimeliness

Sample = tuple[str, dict[str, str], float]

KINDS = {"roadx_stream_": "streams", "roadx_quality_": "streams", "roadx_sink_": "sink", "roadx_adapter_": "adapter",
         "roadx_service_": "service", "roadx_cases_": "cases"}


@dataclass
class Scrape:
    """One process's metrics at one moment; ``samples`` is None when the process did not answer."""

    name: str
    address: str
    at: float  # monotonic seconds
    samples: list[Sample] | None
    error: str = ""

    @property
    def up(self) -> bool:
        return self.samples is not None


@dataclass
class ProcessStatus:
    name: str
    address: str
    up: bool
    kinds: list[str] = field(default_factory=list)  # streams / sink / adapter / service, from its metrics
    error: str = ""


@dataclass
class StoreStatus:
    """The running stack's store endpoint: where to send SQL, and whether it answered."""

    url: str
    database: str
    up: bool
    error: str = ""


@dataclass
class CaseTimelinessStatus:
    """The case workflows routed in ``month`` per target province, worst first; or, in
    ``error``, why the store could not be read."""

    month: str  # YYYY-MM
    provinces: list[tuple[str, "CaseTimeliness"]] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict:
        return {"month": self.month, "error": self.error,
                "provinces": [{"province": p, **asdict(t)} for p, t in self.provinces]}


def rank_timeliness(found: Mapping[str, "CaseTimeliness"]) -> list[tuple[str, "CaseTimeliness"]]:
    """The target provinces with workflows routed, worst first: most open overdue, then most open."""
    return sorted(((p, t) for p, t in found.items() if t.routed), key=lambda pt: (-pt[1].overdue, -pt[1].open, pt[0]))


@dataclass
class ProvinceStatus:
    province: str
    events: int = 0  # seen by the stream worker
    accepted: int = 0
    rejected: int = 0
    dlq: int = 0
    deduplicated: int = 0
    quality_errors: int = 0
    sent: int = 0  # acknowledged by the broker, from the province's adapters
    events_per_s: float = 0.0


@dataclass
class Status:
    seconds: float  # between the two scrapes
    processes: list[ProcessStatus]
    events_in_per_s: float  # taken in by the stream worker
    events_out_per_s: float  # accepted onto the national topic
    adapter_sent_per_s: float
    sink_rows_per_s: float
    totals: dict[str, int]
    lag: dict[str, int]  # consumer group -> messages not yet read
    provinces: list[ProvinceStatus]
    sink_rows: dict[str, int]  # table -> rows stored
    p95_insert_seconds: float | None
    p95_source_to_store_seconds: float | None
    store: StoreStatus | None = None  # the embedded stack's SQL endpoint, when one runs
    service_requests_per_s: float = 0.0  # answered by the information service
    service_p95_seconds: float | None = None
    service_register_lag_seconds: float | None = None  # now − source time of the newest change it holds
    case_timeliness: CaseTimelinessStatus | None = None  # from the store, when the command read it

    def as_dict(self) -> dict:
        out = asdict(self)
        out["case_timeliness"] = None if self.case_timeliness is None else self.case_timeliness.as_dict()
        return out


def summarize(before: Sequence[Scrape], after: Sequence[Scrape]) -> Status:
    """The status over the interval between two scrapes of the same processes (matched by name)."""
    earlier = {s.name: s for s in before}
    pairs = [(earlier.get(s.name), s) for s in after]
    both = [(b, a) for b, a in pairs if b is not None and b.up and a.up]
    seconds = max((a.at - b.at for b, a in both), default=0.0)
    latest = [s.samples for s in after if s.samples is not None]

    def rate(name: str, **match: str) -> float:
        return sum(_increase(b.samples, a.samples, name, match) / (a.at - b.at) for b, a in both if a.at > b.at)

    def total(name: str, **match: str) -> int:
        return int(sum(_sum(samples, name, match) for samples in latest))

    totals = {
        "read": total("roadx_adapter_events_read_total"),
        "sent": total("roadx_adapter_events_sent_total"),
        "spooled": total("roadx_adapter_spool_depth"),
        "events": total("roadx_stream_events_total"),
        "accepted": total("roadx_stream_events_total", outcome="accepted"),
        "rejected": total("roadx_stream_events_total", outcome="rejected"),
        "dlq": total("roadx_stream_dlq_total"),
        "deduplicated": total("roadx_stream_deduplicated_total"),
        "routed": total("roadx_stream_routed_total"),
        "routed_late": total("roadx_stream_routed_late_total"),
        "waiting": total("roadx_stream_cases_waiting"),
        "quality_errors": total("roadx_quality_findings_total", severity="error"),
        "sink_batches": total("roadx_sink_batches_total"),
        "sink_refused": total("roadx_sink_refused_rows_total"),
        "service_requests": total("roadx_service_requests_total"),
        "service_refused": sum(total("roadx_service_requests_total", status=str(code)) for code in (400, 401, 404, 413, 429)),
        "service_changes": total("roadx_service_changes_applied_total"),
        "cases_routed": total("roadx_cases_routed_total"),
        "cases_replies": total("roadx_cases_replies_total", outcome="moved"),
        "cases_refused": total("roadx_cases_replies_total", outcome="refused"),
        "cases_alerts": total("roadx_cases_alerts_total"),
    }
    newest = [value for samples in latest for name, _labels, value in samples
              if name == "roadx_service_last_change_timestamp_seconds" and value > 0]
    return Status(
        seconds=round(seconds, 3),
        processes=[_process(s) for s in after],
        events_in_per_s=rate("roadx_stream_events_total"),
        events_out_per_s=rate("roadx_stream_events_total", outcome="accepted"),
        adapter_sent_per_s=rate("roadx_adapter_events_sent_total"),
        sink_rows_per_s=rate("roadx_sink_rows_total"),
        totals=totals,
        lag=_grouped(latest, "roadx_consumer_lag", "group"),
        provinces=_provinces(latest, both),
        sink_rows=_grouped(latest, "roadx_sink_rows_total", "table"),
        p95_insert_seconds=_quantile(0.95, "roadx_sink_insert_seconds", both, latest),
        p95_source_to_store_seconds=_quantile(0.95, "roadx_sink_source_to_store_seconds", both, latest),
        service_requests_per_s=rate("roadx_service_requests_total"),
        service_p95_seconds=_quantile(0.95, "roadx_service_request_seconds", both, latest),
        service_register_lag_seconds=max(0.0, time.time() - max(newest)) if newest else None,
    )


def _sum(samples: Iterable[Sample], name: str, match: Mapping[str, str]) -> float:
    return sum(value for n, labels, value in samples
               if n == name and all(labels.get(k) == v for k, v in match.items()) and not math.isnan(value))


def _increase(before: Iterable[Sample], after: Iterable[Sample], name: str, match: Mapping[str, str]) -> float:
    """How much counter ``name`` grew between two scrapes, series by series; a series that
    went down was reset by a restart and counts from 0."""
    def series(samples: Iterable[Sample]) -> dict[tuple, float]:
        return {tuple(sorted(labels.items())): value for n, labels, value in samples
                if n == name and all(labels.get(k) == v for k, v in match.items()) and not math.isnan(value)}

    then = series(before)
    return sum(now - then.get(key, 0.0) if now >= then.get(key, 0.0) else now for key, now in series(after).items())


def _grouped(latest: Iterable[list[Sample]], name: str, by: str) -> dict[str, int]:
    out: dict[str, float] = defaultdict(float)
    for samples in latest:
        for n, labels, value in samples:
            if n == name:
                out[labels.get(by, "")] += value
    return {k: int(v) for k, v in sorted(out.items())}


def _process(scrape: Scrape) -> ProcessStatus:
    kinds: set[str] = set()
    for name, _labels, _value in scrape.samples or ():
        kinds.update(kind for prefix, kind in KINDS.items() if name.startswith(prefix))
    return ProcessStatus(scrape.name, scrape.address, scrape.up, sorted(kinds), scrape.error)


_PROVINCE_COUNTS = (
    ("events", "roadx_stream_events_total", {}),
    ("accepted", "roadx_stream_events_total", {"outcome": "accepted"}),
    ("rejected", "roadx_stream_events_total", {"outcome": "rejected"}),
    ("dlq", "roadx_stream_dlq_total", {}),
    ("deduplicated", "roadx_stream_deduplicated_total", {}),
    ("quality_errors", "roadx_quality_findings_total", {"severity": "error"}),
    ("sent", "roadx_adapter_events_sent_total", {}),
)


def _provinces(latest: Iterable[list[Sample]], both: Sequence[tuple[Scrape, Scrape]]) -> list[ProvinceStatus]:
    rows: dict[str, ProvinceStatus] = {}
    for samples in latest:
        for field_name, metric, match in _PROVINCE_COUNTS:
            for name, labels, value in samples:
                province = labels.get("province")
                if name != metric or not province or any(labels.get(k) != v for k, v in match.items()):
                    continue
                row = rows.setdefault(province, ProvinceStatus(province))
                setattr(row, field_name, getattr(row, field_name) + int(value))
    for b, a in both:
        elapsed = a.at - b.at
        if elapsed <= 0:
            continue
        for province, row in rows.items():
            row.events_per_s += _increase(b.samples, a.samples, "roadx_stream_events_total",
                                          {"province": province}) / elapsed
    return [rows[p] for p in sorted(rows)]


def _buckets(samples: Iterable[Sample], name: str) -> dict[float, float]:
    out: dict[float, float] = defaultdict(float)
    for n, labels, value in samples:
        if n == f"{name}_bucket" and "le" in labels:
            out[float(labels["le"])] += value
    return dict(out)


def _quantile(q: float, name: str, both: Sequence[tuple[Scrape, Scrape]],
              latest: Sequence[list[Sample]]) -> float | None:
    """Quantile of the observations made between the scrapes, else of all observations so far."""
    window: dict[float, float] = defaultdict(float)
    for b, a in both:
        now, then = _buckets(a.samples, name), _buckets(b.samples, name)
        for le, count in now.items():
            delta = count - then.get(le, 0.0)
            window[le] += delta if delta >= 0 else count
    if window and max(window.values()) > 0:
        return histogram_quantile(q, window)
    lifetime: dict[float, float] = defaultdict(float)
    for samples in latest:
        for le, count in _buckets(samples, name).items():
            lifetime[le] += count
    return histogram_quantile(q, lifetime)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of cumulative buckets ({upper bound: count}), as Prometheus estimates it.

    Linear within the bucket that holds the rank; the highest finite bound when the rank
    falls in the ``+Inf`` bucket; None without observations.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return bounds[-1]


def format_status(status: Status) -> str:
    """The status as a terminal summary."""
    t = status.totals
    lines = [f"roadx status — rates over {status.seconds:.1f}s", "processes"]
    for p in status.processes:
        state = "up  " if p.up else "DOWN"
        what = ",".join(p.kinds) if p.up else p.error
        lines.append(f"  {state} {p.name:<12} {p.address:<22} {what}")
    if status.store is not None:
        store = status.store
        lines += ["store (SQL over ClickHouse HTTP)",
                  f"  {'up  ' if store.up else 'DOWN'} {store.url}  database {store.database}"
                  + ("" if store.up else f"  {store.error}")]
    lines += [
        "throughput",
        f"  adapters sent     {status.adapter_sent_per_s:>10.1f}/s   total {t['sent']:,} (spooled {t['spooled']:,})",
        f"  stream in         {status.events_in_per_s:>10.1f}/s   total {t['events']:,}",
        f"  stream accepted   {status.events_out_per_s:>10.1f}/s   total {t['accepted']:,}",
        f"  sink rows         {status.sink_rows_per_s:>10.1f}/s   "
        + ", ".join(f"{table} {n:,}" for table, n in status.sink_rows.items()),
        "totals",
        f"  rejected {t['rejected']:,}  dlq {t['dlq']:,}  deduplicated {t['deduplicated']:,}  routed {t['routed']:,}"
        + (f" ({t['routed_late']:,} after waiting for a ship's register; {t['waiting']:,} cases waiting)"
           if t["routed_late"] or t["waiting"] else "")
        + f"  quality errors {t['quality_errors']:,}  sink refused {t['sink_refused']:,}",
        "sink latency (p95)",
        f"  insert {_seconds(status.p95_insert_seconds)}   source to store {_seconds(status.p95_source_to_store_seconds)}",
        "information service",
        f"  requests {status.service_requests_per_s:.1f}/s   total {t['service_requests']:,} (refused {t['service_refused']:,})"
        f"   p95 {_seconds(status.service_p95_seconds)}   register {t['service_changes']:,} changes, newest "
        f"{_seconds(status.service_register_lag_seconds)} old",
        "case workflows",
        f"  routed {t['cases_routed']:,}   replies applied {t['cases_replies']:,}   refused {t['cases_refused']:,}"
        f"   deadlines missed {t['cases_alerts']:,}",
    ]
    if status.case_timeliness is not None:
        lines += _timeliness_lines(status.case_timeliness)
    lines.append("consumer lag")
    lines += [f"  {group:<40} {n:>10,}" for group, n in status.lag.items()] or ["  (no consumer reports lag)"]
    if status.provinces:
        lines.append("provinces   events/s     events   accepted   rejected        dlq    deduped  q.errors       sent")
        lines += [f"  {p.province:<6} {p.events_per_s:>10.1f} {p.events:>10,} {p.accepted:>10,} {p.rejected:>10,} "
                  f"{p.dlq:>10,} {p.deduplicated:>10,} {p.quality_errors:>9,} {p.sent:>10,}" for p in status.provinces]
    return "\n".join(lines)


def _timeliness_lines(timeliness: CaseTimelinessStatus) -> list[str]:
    if timeliness.error:
        return [f"case timeliness {timeliness.month}: the store cannot be read: {timeliness.error}"]
    head = f"case timeliness, cases routed {timeliness.month} (from the store, worst first)"
    if not timeliness.provinces:
        return [head, "  (no cases routed this month)"]
    from sinks.report_html import duration

    return [head, "  target      open   overdue   received on time   answered on time   median to answer"] + [
        f"  {p:<6} {t.open:>9,} {t.overdue:>9,} {f'{t.received_on_time:,}/{t.received:,}':>18} "
        f"{f'{t.answered_on_time:,}/{t.answered:,}':>18} {duration(t.median_answer_ms):>18}"
        for p, t in timeliness.provinces]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"
