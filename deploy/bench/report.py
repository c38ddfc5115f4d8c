"""The benchmark's figures, ceilings and targets as plain data: ratios, verdicts, the table, JSON.

A ``Figure`` is one measured number. Throughput figures (``events/s``) are also shown
as a ratio to each ceiling measured in the same run, so they hold on a noisy machine.
A ``Target`` is a rule the line is held to: a figure against a multiple of a ceiling, or
against an absolute bound; ``evaluate`` says for each whether it is met.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

from ..errors import DeployError

EVENTS_PER_S = "events/s"
MS = "ms"
SECONDS = "s"
MIB = "MiB"

# Ceilings, in the order they are shown: key -> short column title.
CEILINGS: dict[str, str] = {
    "kafka_loop": "×kafka",
    "avro_decode": "×decode",
    "avro_encode": "×encode",
    "faust_agent": "×faust",
}
STAGES = ("adapter", "stream_worker", "stream_worker_plain", "manifest_ratio", "sink", "end_to_end")
# The peers running the worker's stage (deploy.bench.peer_child), CPU seconds per 100k events, and the worker
# against the best of them: events/s over the fastest peer's, the leanest peer's CPU per event over its own.
PEERS = ("peer_faust", "peer_quix", "worker_vs_peers", "worker_cpu_vs_peers")
PER_100K = "CPU s/100k"
CPU = ("cpu_stream_worker", "cpu_peer_faust", "cpu_peer_quix")
# How far the targets on the adapter and on the worker's CPU against its peers can go: the adapter's two
# largest parts alone, and the pure stage the worker and its peers share, each in the bench's own process.
BOUNDS = ("source_generate", "codec_encode_seal", "adapter_bound", "stage_alone", "cpu_stage", "stage_cpu_vs_peers")
# Signed proof: licence seals signed and verified a second (SM2, one core).
SEALS = ("seal_sign", "seal_verify")
LATENCIES = ("latency_p50_ms", "latency_p99_ms", "latency_max_rate")
# The information service: lookup latency at each offered rate (requests/s), freshness, start-up.
SERVICE_LOOKUP_RATES = (200, 1_000)


def lookup_figure(q: int, per_second: int) -> str:
    """Key of the ``q``-th percentile of the service's lookup latency at ``per_second`` offered."""
    return f"service_p{q}_{per_second}_ms"


SERVICE = (*(lookup_figure(q, r) for r in SERVICE_LOOKUP_RATES for q in (50, 99)),
           "service_freshness_p99_ms", "service_new_worker_s", "service_recovery_s")
MEMORY = ("rss_adapter_mib", "rss_stream_worker_mib", "rss_sink_mib", "rss_e2e_stream_worker_mib", "rss_e2e_sink_mib",
          "rss_faust_mib", "rss_peer_faust_mib", "rss_peer_quix_mib", "rss_state_worker_mib", "rss_service_mib")
# A national initial load (``roadx bench --scale``): each part's rate at the last point ÷ at the first,
# and memory; the rate and the store's bytes at each point follow them (``deploy.bench.scale``).
SCALE = ("scale_worker_ratio", "scale_sink_ratio", "rss_scale_worker_mib", "rss_scale_sink_mib")
ALL_FIGURES = (*CEILINGS, *SEALS, *STAGES, *PEERS, *CPU, *BOUNDS, *LATENCIES, *SERVICE, *MEMORY, *SCALE)


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Target:
    """``figure`` compared (``>=`` or ``<``) with ``bound`` × ``ceiling``, or with ``bound`` alone."""

    figure: str
    op: str
    bound: float
    ceiling: str | None = None

    def describe(self) -> str:
        sign = "≥" if self.op == ">=" else "<"
        if self.ceiling is None:
            return f"{sign} {_number(self.bound)}"
        return f"{sign} {_number(self.bound)}{CEILINGS[self.ceiling]}"


@dataclass(frozen=True)
class Verdict:
    target: Target
    measured: float | None  # the figure, or its ratio to the ceiling; None when not measured
    met: bool | None  # None when the figure or its ceiling is missing

    @property
    def status(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else "NOT met"


TARGETS: tuple[Target, ...] = (
    Target("stream_worker", ">=", 5.0, "faust_agent"),
    Target("worker_vs_peers", ">=", 2.0),
    Target("worker_cpu_vs_peers", ">=", 2.5),
    Target("manifest_ratio", ">=", 0.95),
    Target("sink", ">=", 0.5, "avro_decode"),
    Target("adapter", ">=", 0.5, "avro_encode"),
    Target("end_to_end", ">=", 15_000),
    Target("latency_p99_ms", "<", 2_000),
    Target("rss_state_worker_mib", "<", 1_024),
    Target(lookup_figure(99, 1_000), "<", 20),
    Target("service_freshness_p99_ms", "<", 1_000),
    Target("service_recovery_s", "<", 30),
    Target("scale_worker_ratio", ">=", 0.8),
    Target("scale_sink_ratio", ">=", 0.8),
    Target("rss_scale_worker_mib", "<", 1_024),
    Target("rss_scale_sink_mib", "<", 1_024),
)


def rate(count: int, seconds: float) -> float:
    """Events per second; raises ``DeployError`` for a count or span that cannot make a rate."""
    if count < 0 or not seconds > 0 or math.isinf(seconds):
        raise DeployError(f"cannot make a rate of {count} events over {seconds} s")
    return count / seconds


def cpu_per_100k(cpu_seconds: float, count: int) -> float:
    """CPU seconds per 100,000 events; raises ``DeployError`` for a count or time that cannot make one."""
    if count <= 0 or cpu_seconds < 0:
        raise DeployError(f"cannot make CPU per event of {cpu_seconds} s over {count} events")
    return cpu_seconds * 100_000 / count


def serial_rate(*rates: float) -> float:
    """The rate of doing each of the steps with ``rates`` (events/s) one after the other: the times add."""
    if not rates or any(not r > 0 or math.isinf(r) for r in rates):
        raise DeployError(f"cannot add up the steps of rates {list(rates)}")
    return 1 / sum(1 / r for r in rates)


def against_peers(worker: tuple[float, float], peers: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """The worker's (events/s, CPU per event) against the best peer's in each:
    (its rate ÷ the fastest peer's, the leanest peer's CPU per event ÷ its own)."""
    if not peers or worker[1] <= 0 or any(rate_ <= 0 for rate_, _cpu in peers.values()):
        raise DeployError("the worker against its peers needs a peer, and positive rates and CPU times")
    fastest = max(rate_ for rate_, _cpu in peers.values())
    leanest = min(cpu for _rate, cpu in peers.values())
    return worker[0] / fastest, leanest / worker[1]


def ratio(value: float, ceiling: float | None) -> float | None:
    """``value / ceiling``, or None without a positive ceiling."""
    if ceiling is None or not ceiling > 0:
        return None
    return value / ceiling


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise DeployError("no samples to take a percentile of")
    if not 0 <= q <= 100:
        raise DeployError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def evaluate(figures: Mapping[str, Figure], targets: Iterable[Target] = TARGETS) -> list[Verdict]:
    """Each target against the figures measured."""
    verdicts = []
    for target in targets:
        figure = figures.get(target.figure)
        if figure is None:
            verdicts.append(Verdict(target, None, None))
            continue
        measured: float | None = figure.value
        if target.ceiling is not None:
            ceiling = figures.get(target.ceiling)
            measured = ratio(figure.value, ceiling.value if ceiling else None)
        if measured is None:
            verdicts.append(Verdict(target, None, None))
            continue
        met = measured >= target.bound if target.op == ">=" else measured < target.bound
        verdicts.append(Verdict(target, measured, met))
    return verdicts


def format_table(figures: Mapping[str, Figure], machine: str = "") -> str:
    """One table: every figure, its ratio to each ceiling, its target and where it stands."""
    verdicts = {v.target.figure: v for v in evaluate(figures)}
    ceilings = {key: figures[key].value for key in CEILINGS if key in figures}
    header = ["figure", "value", "unit", *CEILINGS.values(), "target", "status"]
    rows: list[list[str]] = []
    for key in sorted(figures, key=_order):
        figure = figures[key]
        cells = [figure.label, _number(figure.value), figure.unit]
        for ceiling in CEILINGS:
            r = ratio(figure.value, ceilings.get(ceiling)) if figure.unit == EVENTS_PER_S else None
            cells.append("" if r is None or key == ceiling else f"{r:.2f}")
        verdict = verdicts.get(key)
        if verdict is None:
            cells += ["", ""]
        else:
            shown = "" if verdict.measured is None else f" ({_number(verdict.measured)})"
            cells += [verdict.target.describe(), verdict.status + shown]
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {1, *range(3, 3 + len(CEILINGS))}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [f"roadx bench — {machine}" if machine else "roadx bench", line(header),
           line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    notes = [f"  {figures[k].label}: {figures[k].note}" for k in sorted(figures, key=_order) if figures[k].note]
    if notes:
        out += ["notes:", *notes]
    return "\n".join(out)


def report_json(figures: Mapping[str, Figure], machine: Mapping[str, object], options: Mapping[str, object]) -> dict:
    """The whole run as JSON-ready data."""
    ceilings = {key: figures[key].value for key in CEILINGS if key in figures}
    return {
        "machine": dict(machine),
        "options": dict(options),
        "figures": {
            key: {**asdict(f), "ratios": {c: ratio(f.value, ceilings.get(c)) for c in CEILINGS}
                  if f.unit == EVENTS_PER_S else {}}
            for key, f in sorted(figures.items(), key=lambda kv: _order(kv[0]))
        },
        "targets": [
            {"figure": v.target.figure, "target": v.target.describe(), "measured": v.measured,
             "met": v.met, "status": v.status}
            for v in evaluate(figures)
        ],
    }


def _order(key: str) -> int:
    return ALL_FIGURES.index(key) if key in ALL_FIGURES else len(ALL_FIGURES)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
