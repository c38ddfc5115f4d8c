"""``roadx status``: the summary of two scrapes, the quantile estimate, targets and bad input."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from deploy.broker import free_port
from deploy.errors import StackError
from deploy.stack import StackInfo
from deploy.status import Scrape, format_status, histogram_quantile, rank_timeliness, summarize
from deploy.commands.status import add_parser, cmd_status, parse_target, targets
from schemas.errors import SettingsError
from schemas.settings import Settings
from sinks.metrics import source_to_store_seconds
from sinks.report import CaseTimeliness


def stream_samples(accepted: int, rejected: int, dup: int, lag: int, errors: int = 0):
    return [
        ("roadx_stream_events_total", {"outcome": "accepted", "province": "44"}, float(accepted)),
        ("roadx_stream_events_total", {"outcome": "rejected", "province": "44"}, float(rejected)),
        ("roadx_stream_events_total", {"outcome": "duplicate", "province": "44"}, float(dup)),
        ("roadx_stream_events_total", {"outcome": "accepted", "province": "11"}, 10.0),
        ("roadx_stream_rejected_total", {"rule": "bad_plate", "province": "44"}, float(rejected)),
        ("roadx_stream_dlq_total", {"province": "44"}, float(rejected)),
        ("roadx_stream_deduplicated_total", {"province": "44", "kind": "duplicate"}, float(dup)),
        ("roadx_stream_routed_total", {"source": "44", "target": "11"}, 3.0),
        ("roadx_quality_findings_total", {"province": "44", "dimension": "规范性", "severity": "error"}, float(errors)),
        ("roadx_quality_findings_total", {"province": "44", "dimension": "完整性", "severity": "warning"}, 50.0),
        ("roadx_consumer_lag", {"group": "roadx-streams", "topic": "prov.44.changes", "partition": "0"}, float(lag)),
        ("roadx_consumer_lag", {"group": "roadx-streams", "topic": "prov.44.changes", "partition": "1"}, 1.0),
    ]


def sink_samples(rows: int, fast: int, slow: int):
    buckets = {"0.01": fast, "0.1": fast + slow, "+Inf": fast + slow}
    return [("roadx_sink_rows_total", {"table": "change_log"}, float(rows)),
            ("roadx_sink_rows_total", {"table": "dlq"}, 2.0),
            ("roadx_sink_batches_total", {}, 4.0),
            *[("roadx_sink_insert_seconds_bucket", {"le": le}, float(n)) for le, n in buckets.items()],
            ("roadx_sink_insert_seconds_count", {}, float(fast + slow))]


def test_rates_totals_and_lag_come_from_two_scrapes():
    before = [Scrape("streams", "127.0.0.1:1", 10.0, stream_samples(100, 2, 1, 50)),
              Scrape("sink", "127.0.0.1:2", 10.0, sink_samples(80, 4, 0))]
    after = [Scrape("streams", "127.0.0.1:1", 12.0, stream_samples(140, 4, 2, 0, errors=3)),
             Scrape("sink", "127.0.0.1:2", 12.0, sink_samples(120, 4, 0))]
    status = summarize(before, after)
    assert status.seconds == 2.0
    assert status.events_in_per_s == pytest.approx((40 + 2 + 1) / 2)
    assert status.events_out_per_s == pytest.approx(20.0)
    assert status.sink_rows_per_s == pytest.approx(20.0)
    assert status.totals["accepted"] == 150 and status.totals["rejected"] == 4 and status.totals["dlq"] == 4
    assert status.totals["deduplicated"] == 2 and status.totals["routed"] == 3 and status.totals["quality_errors"] == 3
    assert status.lag == {"roadx-streams": 1}
    assert status.sink_rows == {"change_log": 120, "dlq": 2}
    guangdong = next(p for p in status.provinces if p.province == "44")
    assert (guangdong.accepted, guangdong.rejected, guangdong.dlq, guangdong.quality_errors) == (140, 4, 4, 3)
    assert guangdong.events_per_s == pytest.approx(21.5)
    assert [p.kinds for p in status.processes] == [["streams"], ["sink"]]


def test_a_down_process_is_shown_down_and_the_rest_summarised():
    before = [Scrape("streams", "a:1", 0.0, stream_samples(1, 0, 0, 0)), Scrape("adapter", "a:9", 0.0, None, "refused")]
    after = [Scrape("streams", "a:1", 1.0, stream_samples(5, 0, 0, 0)), Scrape("adapter", "a:9", 1.0, None, "refused")]
    status = summarize(before, after)
    assert [(p.name, p.up) for p in status.processes] == [("streams", True), ("adapter", False)]
    assert status.events_out_per_s == pytest.approx(4.0)
    text = format_status(status)
    assert "DOWN adapter" in text and "refused" in text


def test_cases_routed_after_waiting_for_a_ship_and_those_still_waiting_are_shown_when_there_are_any():
    waiting = [("roadx_stream_routed_late_total", {"source": "44", "target": "CJ"}, 2.0),
               ("roadx_stream_cases_waiting", {}, 5.0)]
    before = [Scrape("streams", "a:1", 0.0, stream_samples(1, 0, 0, 0) + waiting)]
    after = [Scrape("streams", "a:1", 1.0, stream_samples(5, 0, 0, 0) + waiting)]
    status = summarize(before, after)
    assert (status.totals["routed_late"], status.totals["waiting"]) == (2, 5)
    assert "routed 3 (2 after waiting for a ship's register; 5 cases waiting)" in format_status(status)
    plain = summarize([Scrape("streams", "a:1", 0.0, stream_samples(1, 0, 0, 0))],
                      [Scrape("streams", "a:1", 1.0, stream_samples(5, 0, 0, 0))])
    assert "routed 3  quality errors" in format_status(plain)


def test_a_restarted_process_counts_from_zero_not_negative():
    before = [Scrape("sink", "a:2", 0.0, sink_samples(1000, 5, 0))]
    after = [Scrape("sink", "a:2", 2.0, sink_samples(10, 5, 0))]
    assert summarize(before, after).sink_rows_per_s == pytest.approx(5.0)


def test_p95_is_of_the_observations_between_the_scrapes():
    before = [Scrape("sink", "a:2", 0.0, sink_samples(0, 100, 0))]
    after = [Scrape("sink", "a:2", 1.0, sink_samples(0, 100, 10))]  # only slow inserts since
    p95 = summarize(before, after).p95_insert_seconds
    assert 0.01 < p95 <= 0.1


def test_p95_falls_back_to_all_observations_when_nothing_happened_between():
    same = sink_samples(0, 100, 0)
    status = summarize([Scrape("sink", "a:2", 0.0, same)], [Scrape("sink", "a:2", 1.0, same)])
    assert 0 < status.p95_insert_seconds <= 0.01
    assert status.p95_source_to_store_seconds is None


def test_histogram_quantile_interpolates_like_prometheus():
    assert histogram_quantile(0.5, {1.0: 0, 2.0: 10, math.inf: 10}) == pytest.approx(1.5)
    assert histogram_quantile(0.99, {1.0: 0, 2.0: 5, math.inf: 10}) == 2.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, {1.0: 0, math.inf: 0}) is None
    with pytest.raises(ValueError):
        histogram_quantile(1.5, {1.0: 1})


def test_source_to_store_is_store_time_minus_source_commit_time():
    ts = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    rows = [(ts, "x"), (ts + dt.timedelta(seconds=30), "y"), (ts + dt.timedelta(hours=1), "future")]
    got = source_to_store_seconds(rows, ("ts", "v"), "change_log", ts.timestamp() + 60)
    assert got == [60.0, 30.0, 0.0]
    assert source_to_store_seconds(rows, ("ts", "v"), "dlq", ts.timestamp()) == []


def test_metrics_address_must_be_host_and_port():
    assert parse_target("127.0.0.1:9400") == ("127.0.0.1:9400", "127.0.0.1:9400")
    assert parse_target("adapter-44=10.0.0.5:9400") == ("adapter-44", "10.0.0.5:9400")
    for bad in ("9400", "localhost", "host:port", "host:0", "host:70000", ":9400"):
        with pytest.raises(SettingsError, match="HOST:PORT"):
            parse_target(bad)


def test_no_stack_and_no_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(StackError, match="no running stack .* --metrics"):
        targets(Settings(data_dir=tmp_path), [])


def test_stack_record_gives_the_processes(tmp_path):
    import os

    settings = Settings(data_dir=tmp_path)
    StackInfo(os.getpid(), "127.0.0.1:1", str(tmp_path), metrics={"streams": "127.0.0.1:5", "sink": "127.0.0.1:6"}
              ).write(settings.stack_file)
    assert targets(settings, ["adapter=127.0.0.1:7"]) == {
        "streams": "127.0.0.1:5", "sink": "127.0.0.1:6", "adapter": "127.0.0.1:7"}


def status_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub, lambda p: p)
    return parser.parse_args(["status", *argv])


def test_status_command_reads_a_live_endpoint_and_reports_a_dead_one(tmp_path, capsys):
    registry = CollectorRegistry()
    events = Counter("roadx_stream_events", "", ["outcome", "province"], registry=registry)
    Gauge("roadx_consumer_lag", "", ["group", "topic", "partition"], registry=registry).labels("g", "t", "0").set(7)
    Histogram("roadx_sink_insert_seconds", "", registry=registry).observe(0.02)
    events.labels("accepted", "44").inc(5)
    port, dead = free_port(), free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        args = status_args("--metrics", f"live=127.0.0.1:{port}", f"127.0.0.1:{dead}", "--json")
        code = cmd_status(Settings(data_dir=tmp_path), args, sleep=lambda s: events.labels("accepted", "44").inc(3))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert code == 1  # one endpoint is down
    status = json.loads(capsys.readouterr().out)
    assert [(p["name"], p["up"]) for p in status["processes"]] == [("live", True), (f"127.0.0.1:{dead}", False)]
    assert status["totals"]["accepted"] == 8 and status["lag"] == {"g": 7}
    assert status["events_out_per_s"] > 0
    assert 0.01 < status["p95_insert_seconds"] <= 0.025


def test_watch_prints_one_summary_per_refresh(tmp_path, capsys):
    registry = CollectorRegistry()
    Counter("roadx_sink_rows", "", ["table"], registry=registry).labels("change_log").inc(3)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        code = cmd_status(Settings(data_dir=tmp_path),
                          status_args("--metrics", f"127.0.0.1:{port}", "--watch", "1", "--count", "3"),
                          sleep=lambda s: None)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("roadx status") == 3 and "change_log 3" in out


@pytest.mark.parametrize("argv", [("--interval", "0"), ("--watch", "-1"), ("--count", "0")])
def test_status_rejects_nonsense_timing(tmp_path, argv):
    with pytest.raises(SettingsError):
        cmd_status(Settings(data_dir=tmp_path), status_args("--metrics", "127.0.0.1:1", *argv), sleep=lambda s: None)


def test_the_information_service_shows_its_requests_refusals_and_register():
    def service(requests, refused, changes):
        return [("roadx_service_requests_total", {"endpoint": "/v1/operators/{uscc}", "status": "200"}, requests),
                ("roadx_service_requests_total", {"endpoint": "/v1/operators/{uscc}", "status": "400"}, refused),
                ("roadx_service_changes_applied_total", {}, changes),
                ("roadx_service_last_change_timestamp_seconds", {}, 1_000.0)]

    status = summarize([Scrape("service", "a:3", 0.0, service(10, 1, 500))],
                       [Scrape("service", "a:3", 2.0, service(30, 3, 600))])
    assert status.processes[0].kinds == ["service"]
    assert status.service_requests_per_s == 11.0
    assert (status.totals["service_requests"], status.totals["service_refused"]) == (33, 3)
    assert status.totals["service_changes"] == 600 and status.service_register_lag_seconds > 0
    assert "requests 11.0/s   total 33 (refused 3)" in format_status(status)


def test_the_case_workflows_show_routings_replies_and_missed_deadlines():
    samples = [("roadx_cases_routed_total", {"target": "11"}, 7), ("roadx_cases_replies_total",
                {"province": "11", "outcome": "moved"}, 5), ("roadx_cases_replies_total",
                {"province": "11", "outcome": "refused"}, 2), ("roadx_cases_alerts_total",
                {"target": "11", "deadline": "receipt"}, 1)]
    status = summarize([Scrape("cases", "a:4", 0.0, samples)], [Scrape("cases", "a:4", 1.0, samples)])
    assert status.processes[0].kinds == ["cases"]
    assert "routed 7   replies applied 5   refused 2   deadlines missed 1" in format_status(status)


def test_timeliness_ranks_the_most_open_overdue_first_and_leaves_out_provinces_without_workflows():
    found = {"11": CaseTimeliness(routed=3, open=1), "31": CaseTimeliness(routed=2, open=2, overdue=1),
             "44": CaseTimeliness(routed=5, open=2, overdue=1), "13": CaseTimeliness(routed=1, open=1),
             "64": CaseTimeliness(alerts={"answer": 1})}  # alerted this month, nothing routed this month
    assert [p for p, _t in rank_timeliness(found)] == ["31", "44", "11", "13"]
