"""The benchmark's pure parts: rates, ratios, percentiles, target verdicts, the table and JSON."""

from __future__ import annotations

import json

import pytest

from deploy.bench.report import (
    ALL_FIGURES, CEILINGS, EVENTS_PER_S, MIB, MS, PER_100K, SECONDS, SERVICE, SERVICE_LOOKUP_RATES, TARGETS, Figure, Target,
    against_peers, cpu_per_100k, evaluate, format_table, lookup_figure, percentile, rate, ratio, report_json,
    serial_rate,
)
from deploy.errors import DeployError


def unit(key: str) -> str:
    if key.startswith("cpu_"):
        return PER_100K
    if key.endswith("vs_peers"):
        return "×"
    if key.endswith("_ms"):
        return MS
    if key.endswith("_s"):
        return SECONDS
    return MIB if key.startswith("rss_") else EVENTS_PER_S


def figures(**values: float) -> dict[str, Figure]:
    return {k: Figure(k, k.replace("_", " "), v, unit(k)) for k, v in values.items()}


FULL = figures(kafka_loop=160_000, avro_decode=150_000, avro_encode=140_000, faust_agent=5_000,
               adapter=80_000, stream_worker=30_000, stream_worker_plain=30_500, manifest_ratio=0.98, sink=60_000,
               end_to_end=16_000, seal_sign=2_800, seal_verify=1_500,
               peer_faust=6_000, peer_quix=12_000, worker_vs_peers=2.5, worker_cpu_vs_peers=2.0,
               cpu_stream_worker=30, cpu_peer_faust=160, cpu_peer_quix=60, rss_peer_faust_mib=200, rss_peer_quix_mib=150,
               source_generate=200_000, codec_encode_seal=100_000, adapter_bound=66_667, stage_alone=40_000, cpu_stage=20,
               stage_cpu_vs_peers=3.0,
               latency_p50_ms=300, latency_p99_ms=2_500, latency_max_rate=2_500,
               rss_adapter_mib=60, rss_stream_worker_mib=80, rss_sink_mib=400, rss_e2e_stream_worker_mib=90,
               rss_e2e_sink_mib=450, rss_faust_mib=64, rss_state_worker_mib=700,
               service_p50_200_ms=2, service_p99_200_ms=6, service_p50_1000_ms=3, service_p99_1000_ms=25,
               service_freshness_p99_ms=450, service_new_worker_s=60, service_recovery_s=4.5, rss_service_mib=450,
               scale_worker_ratio=0.85, scale_sink_ratio=0.7, rss_scale_worker_mib=300, rss_scale_sink_mib=900)


def test_rate_is_events_over_seconds():
    assert rate(10_000, 2.0) == 5_000


@pytest.mark.parametrize("count, seconds", [(10, 0.0), (10, -1.0), (-1, 1.0), (10, float("inf"))])
def test_rate_refuses_a_span_that_cannot_make_a_rate(count, seconds):
    with pytest.raises(DeployError, match="cannot make a rate"):
        rate(count, seconds)


def test_ratio_divides_by_the_ceiling_and_is_none_without_one():
    assert ratio(30_000, 5_000) == 6.0
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, None) is None


def test_cpu_per_100k_scales_the_cpu_time_to_100k_events():
    assert cpu_per_100k(3.0, 10_000) == pytest.approx(30.0)
    with pytest.raises(DeployError, match="cannot make CPU per event"):
        cpu_per_100k(3.0, 0)


def test_steps_done_one_after_the_other_add_their_times():
    assert serial_rate(40_000, 40_000) == pytest.approx(20_000)
    assert serial_rate(30_000, 60_000) == pytest.approx(20_000)
    assert serial_rate(5_000) == pytest.approx(5_000)


@pytest.mark.parametrize("rates", [(), (10_000, 0.0), (10_000, -1.0), (float("inf"),)])
def test_steps_without_a_rate_to_add_are_refused(rates):
    with pytest.raises(DeployError, match="cannot add up the steps"):
        serial_rate(*rates)


def test_the_worker_is_held_against_the_fastest_peer_and_the_leanest_peer_apart():
    # faust is leaner here but slower: the rate is held against quix, the CPU against faust
    faster, leaner = against_peers((30_000, 30.0), {"faust": (6_000, 50.0), "quix": (12_000, 60.0)})
    assert faster == pytest.approx(2.5)
    assert leaner == pytest.approx(50.0 / 30.0)


@pytest.mark.parametrize("peers", [{}, {"faust": (0.0, 50.0)}])
def test_the_worker_against_no_peer_or_a_stopped_one_is_refused(peers):
    with pytest.raises(DeployError, match="needs a peer"):
        against_peers((30_000, 30.0), peers)


def test_the_peer_targets_are_ratios_met_at_2x_events_and_2_5x_cpu():
    verdicts = {v.target.figure: v for v in evaluate(FULL)}
    assert verdicts["worker_vs_peers"].met is True  # 2.5 >= 2
    assert verdicts["worker_cpu_vs_peers"].met is False  # 2.0 < 2.5


def test_percentile_interpolates_between_closest_ranks():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_percentile_does_not_depend_on_input_order():
    assert percentile([5, 1, 4, 2, 3], 50) == 3


@pytest.mark.parametrize("values, q, message", [([], 50, "no samples"), ([1, 2], 101, "outside"),
                                                ([1, 2], -1, "outside")])
def test_percentile_refuses_bad_input(values, q, message):
    with pytest.raises(DeployError, match=message):
        percentile(values, q)


def test_targets_relative_to_a_ceiling_use_the_ratio():
    verdicts = {v.target.figure: v for v in evaluate(FULL)}
    assert verdicts["stream_worker"].measured == pytest.approx(6.0)
    assert verdicts["stream_worker"].met is True
    assert verdicts["sink"].measured == pytest.approx(0.4)
    assert verdicts["sink"].met is False
    assert verdicts["adapter"].met is True


def test_absolute_targets_compare_the_figure_itself():
    verdicts = {v.target.figure: v for v in evaluate(FULL)}
    assert verdicts["end_to_end"].met is True
    assert verdicts["latency_p99_ms"].met is False  # 2,500 ms is not below 2 s
    assert verdicts["rss_state_worker_mib"].met is True


def test_service_targets_bound_lookup_p99_at_1000_freshness_and_recovery():
    verdicts = {v.target.figure: v for v in evaluate(FULL)}
    assert verdicts["service_p99_1000_ms"].met is False  # 25 ms is not below 20 ms
    assert verdicts["service_freshness_p99_ms"].met is True
    assert verdicts["service_recovery_s"].met is True
    assert {t.figure for t in TARGETS} & set(SERVICE) == {"service_p99_1000_ms", "service_freshness_p99_ms",
                                                          "service_recovery_s"}


def test_the_initial_loads_ratios_are_held_within_20_percent_and_its_memory_under_1_gib():
    verdicts = {v.target.figure: v for v in evaluate(FULL)}
    assert (verdicts["scale_worker_ratio"].met, verdicts["scale_sink_ratio"].met) == (True, False)
    assert verdicts["rss_scale_worker_mib"].met is True and verdicts["rss_scale_sink_mib"].met is True


def test_lookup_figures_are_named_by_percentile_and_offered_rate():
    assert SERVICE_LOOKUP_RATES == (200, 1_000)
    assert lookup_figure(99, 1_000) == "service_p99_1000_ms"
    assert [lookup_figure(q, r) for r in SERVICE_LOOKUP_RATES for q in (50, 99)] == list(SERVICE[:4])
    assert set(FULL) == set(ALL_FIGURES)  # the example run holds every figure once


def test_a_bound_exactly_reached_meets_at_least_but_not_below():
    at_bound = figures(end_to_end=15_000, latency_p99_ms=2_000)
    verdicts = {v.target.figure: v for v in evaluate(at_bound)}
    assert verdicts["end_to_end"].met is True
    assert verdicts["latency_p99_ms"].met is False


def test_a_target_without_its_figure_or_ceiling_is_not_measured():
    verdicts = {v.target.figure: v for v in evaluate(figures(stream_worker=30_000))}
    assert verdicts["stream_worker"].met is None
    assert verdicts["stream_worker"].status == "not measured"
    assert verdicts["sink"].measured is None


def test_every_target_names_a_known_figure_and_ceiling():
    for target in TARGETS:
        assert target.figure in ALL_FIGURES
        assert target.ceiling is None or target.ceiling in CEILINGS


def test_target_descriptions_say_the_bound():
    assert Target("stream_worker", ">=", 5.0, "faust_agent").describe() == "≥ 5.00×faust"
    assert Target("latency_p99_ms", "<", 2_000).describe() == "< 2,000"


def test_table_has_a_row_per_figure_with_ratios_and_verdicts():
    table = format_table(FULL, "2 cores, test cpu")
    lines = table.splitlines()
    assert lines[0] == "roadx bench — 2 cores, test cpu"
    for figure in FULL.values():
        assert any(line.startswith(figure.label) for line in lines), figure.label
    worker = next(line for line in lines if line.startswith("stream worker "))
    assert "6.00" in worker and "met (6.00)" in worker  # ×faust, and the verdict
    latency = next(line for line in lines if line.startswith("latency p99"))
    assert "NOT met (2,500)" in latency
    recovery = next(line for line in lines if line.startswith("service recovery s "))
    assert recovery.split()[3:5] == ["4.50", "s"] and "met (4.50)" in recovery
    assert "×kafka" in lines[1] and "target" in lines[1]


def test_table_shows_no_ratio_for_figures_that_are_not_rates():
    table = format_table(FULL)
    rss = next(line for line in table.splitlines() if line.startswith("rss sink mib "))
    assert rss.split() == ["rss", "sink", "mib", "400", "MiB"]


def test_table_lists_notes_of_figures_that_have_them():
    noted = {**FULL, "sink": Figure("sink", "sink", 60_000, EVENTS_PER_S, "5,000 messages")}
    assert "  sink: 5,000 messages" in format_table(noted).splitlines()


def test_json_report_holds_figures_ratios_and_targets():
    data = report_json(FULL, {"nproc": 2}, {"events": 1000})
    text = json.dumps(data)  # serialisable as is
    assert json.loads(text)["machine"] == {"nproc": 2}
    assert data["figures"]["stream_worker"]["ratios"]["faust_agent"] == pytest.approx(6.0)
    assert data["figures"]["rss_sink_mib"]["ratios"] == {}
    assert {t["figure"] for t in data["targets"]} == {t.figure for t in TARGETS}
    assert next(t for t in data["targets"] if t["figure"] == "sink")["met"] is False

