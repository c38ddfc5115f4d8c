"""Every process's metrics agree with what was produced and stored.

The stream worker, the sink and a file adapter (``roadx produce files --watch``) run as
child processes, each serving metrics on its own port; the synthetic provinces publish
in-process a workload with known invalid events and duplicates, the adapter loads a CSV
of operators. When the line is drained, each process is scraped and its counters are
checked against the publishers' reports and the store; ``roadx status`` must say the same.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from deploy.commands import status as status_commands
from deploy.broker import die_with_parent, free_port
from deploy.consumer_lag import record_lag
from deploy.errors import StackError
from deploy.scrape import scrape
from deploy.topics import create_topics, exchange_topics
from deploy.worker import worker_argv
from producers.synthetic import identities
from producers.synthetic import publish_synthetic
from schemas.settings import Settings, to_environ
from sinks.store import open_store

pytestmark = pytest.mark.integration

PROVINCES = ("11", "44")
SYNTHETIC_EVENTS = 400
FILE_OPERATORS = 12
OPERATOR_HEADER = ["统一社会信用代码", "业户名称", "行政区划代码", "经营许可证号", "经营范围", "状态"]
DRAIN_SECONDS = 180
QUIET_SCRAPES = 4  # consecutive scrapes with nothing changed and no lag: the line is drained


def value(samples, name, **labels) -> float:
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items()))


@contextlib.contextmanager
def child(argv: list[str], settings: Settings, metrics_port: int, log: Path):
    """A roadx process with the settings as ``ROADX_*`` variables; stopped (TERM, then KILL) on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    env.update(to_environ(settings.with_overrides(metrics_port=metrics_port)))
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_operators(path: Path, n: int) -> Path:
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(OPERATOR_HEADER)
        for i in range(n):
            writer.writerow([identities.make_uscc(rng, "440300"), f"深圳安达{i}运输有限公司", "440300",
                             f"粤交运管许可深字44030000{i:04d}号", "道路普通货物运输", "正常"])
    return path


def run_status(*argv: str) -> int:
    """``roadx status`` in-process, with no stack running: only the endpoints given."""
    parser = argparse.ArgumentParser(prog="roadx")
    status_commands.add_parser(parser.add_subparsers(dest="command"), lambda p: p)
    args = parser.parse_args(["status", *argv])
    return args.handler(Settings(data_dir=Path("/nonexistent/roadx-no-stack")), args)


def synthetic_sent(provinces) -> float:
    return sum(REGISTRY.get_sample_value("roadx_adapter_events_sent_total",
                                         {"province": p, "adapter": "synthetic"}) or 0.0 for p in provinces)


def wait_until_drained(addresses: dict[str, str], procs: dict[str, subprocess.Popen], published: int,
                       logs: Path) -> dict[str, list]:
    """Scrape until the stream worker saw ``published`` events and nothing moves any more; the last scrape."""
    deadline = time.monotonic() + DRAIN_SECONDS
    previous, quiet = None, 0
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n"
                                     + (logs / f"{name}.log").read_text("utf-8", errors="replace")[-3000:])
        try:
            samples = {name: scrape(address) for name, address in addresses.items()}
        except StackError:  # a part still starting on a loaded machine: its endpoint answers soon
            time.sleep(0.5)
            continue
        seen = value(samples["streams"], "roadx_stream_events_total")
        lag = sum(value(s, "roadx_consumer_lag") for s in samples.values())
        moving = (seen, value(samples["sink"], "roadx_sink_rows_total"), value(samples["sink"], "roadx_sink_batches_total"))
        quiet = quiet + 1 if seen >= published and lag == 0 and moving == previous else 0
        if quiet >= QUIET_SCRAPES:
            return samples
        previous = moving
        time.sleep(0.75)
    raise AssertionError(f"not drained in {DRAIN_SECONDS}s: last counts {previous}")


def test_scraped_counters_agree_with_what_was_produced_and_stored(bootstrap, unique, tmp_path, capsys):
    settings = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=PROVINCES,
                        topic_prefix=f"t{unique}.", stream_batch_size=100, sink_batch_size=200)
    create_topics(settings.kafka_conf(), exchange_topics(settings))
    settings.data_dir.mkdir(parents=True)
    for province in PROVINCES:
        settings.province_key(province)  # the key files exist before the children read them
    drop = tmp_path / "drop"
    drop.mkdir()
    ports = {"streams": free_port(), "sink": free_port(), "adapter": free_port()}
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    roadx = str(Path(sys.executable).with_name("roadx"))
    commands = {
        "streams": [sys.executable, *worker_argv("streams")],
        "sink": [sys.executable, *worker_argv("sink")],
        "adapter": [roadx, "produce", "files", "--province", "44", "--entity", "operator", "--watch", str(drop),
                    "--settle-seconds", "0.2", "--poll-seconds", "0.2", "--json"],
    }
    sent_before = synthetic_sent(PROVINCES)
    with contextlib.ExitStack() as running:
        procs = {name: running.enter_context(child(argv, settings, ports[name], tmp_path / f"{name}.log"))
                 for name, argv in commands.items()}
        report = publish_synthetic(settings, SYNTHETIC_EVENTS, seed=11, duplicate_rate=0.05, invalid_rate=0.05)
        write_operators(tmp_path / "operators.csv", FILE_OPERATORS).rename(drop / "经营业户_20240601.csv")
        published = report.produced + FILE_OPERATORS
        assert report.duplicates > 0 and report.invalid > 0

        samples = wait_until_drained(addresses, procs, published, tmp_path)

        assert run_status("--json", "--interval", "0.5",
                          *[f"--metrics={name}={address}" for name, address in addresses.items()]) == 0
        status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    stream, sink, adapter = samples["streams"], samples["sink"], samples["adapter"]
    store = open_store(settings)
    try:
        db = settings.clickhouse_database
        stored = int(store.command(f"SELECT count() FROM {db}.change_log"))
        stored_once = int(store.command(f"SELECT count() FROM {db}.change_log FINAL"))
        dead_letters = int(store.command(f"SELECT count() FROM {db}.dlq"))
    finally:
        store.close()

    accepted = value(stream, "roadx_stream_events_total", outcome="accepted")
    rejected = value(stream, "roadx_stream_events_total", outcome="rejected")
    # the adapters: what they say they sent is what was produced
    assert synthetic_sent(PROVINCES) - sent_before == report.produced
    assert value(adapter, "roadx_adapter_events_sent_total", province="44", adapter="files") == FILE_OPERATORS
    assert value(adapter, "roadx_adapter_events_read_total", province="44", adapter="files") == FILE_OPERATORS
    assert value(adapter, "roadx_adapter_spool_depth") == 0
    # the stream worker: every event seen once, each outcome as injected
    assert value(stream, "roadx_stream_events_total") == published
    assert accepted == stored == stored_once == report.valid + FILE_OPERATORS
    assert rejected == value(stream, "roadx_stream_dlq_total") == dead_letters == report.invalid
    assert value(stream, "roadx_stream_rejected_total") >= rejected
    assert value(stream, "roadx_stream_deduplicated_total") == report.duplicates
    assert value(stream, "roadx_stream_deduplicated_total", kind="duplicate") == report.duplicates
    # the sink: rows counted as stored, one batch size per batch, one latency per stored change
    assert value(sink, "roadx_sink_rows_total", table="change_log") == stored
    assert value(sink, "roadx_sink_rows_total", table="dlq") == dead_letters
    assert value(sink, "roadx_sink_batch_size_count") == value(sink, "roadx_sink_batches_total") > 0
    assert value(sink, "roadx_sink_batch_size_sum") >= stored + dead_letters
    assert value(sink, "roadx_sink_source_to_store_seconds_count") == stored
    assert value(sink, "roadx_sink_insert_seconds_count") >= 2
    # consumer lag of both groups, per partition, is 0 at the end
    groups = {labels["group"] for name, labels, _ in stream + sink if name == "roadx_consumer_lag"}
    assert groups == {settings.topics.streams_group, settings.topics.sink_group}
    assert value(stream, "roadx_consumer_lag") == value(sink, "roadx_consumer_lag") == 0
    # roadx status says the same
    assert [(p["name"], p["up"]) for p in status["processes"]] == [(n, True) for n in addresses]
    totals = status["totals"]
    assert (totals["accepted"], totals["rejected"], totals["dlq"], totals["deduplicated"]) == (
        accepted, rejected, report.invalid, report.duplicates)
    assert totals["sent"] == FILE_OPERATORS and totals["events"] == published
    assert totals["routed"] == value(stream, "roadx_stream_routed_total")
    assert status["sink_rows"]["change_log"] == stored
    assert status["lag"] == {settings.topics.streams_group: 0, settings.topics.sink_group: 0}
    assert {p["province"]: p["rejected"] for p in status["provinces"]} == {
        p: int(value(stream, "roadx_stream_events_total", outcome="rejected", province=p)) for p in PROVINCES}
    assert status["p95_insert_seconds"] > 0 and status["p95_source_to_store_seconds"] >= 0


def test_lag_gauge_counts_what_the_consumer_has_not_read(bootstrap, unique):
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.", provinces=("44",))
    topic = f"t{unique}.lag-probe"
    create_topics(settings.kafka_conf(), [(topic, 1)])
    producer = Producer(settings.kafka_conf())
    for i in range(10):
        producer.produce(topic, f"m{i}".encode())
        producer.flush(10)  # one message per batch: Tansu's high watermark is then exact
    group = f"t{unique}.lag-group"
    consumer = Consumer(settings.kafka_conf(**{"group.id": group, "enable.auto.commit": False,
                                               "session.timeout.ms": settings.session_timeout_ms}))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        read = []
        deadline = time.monotonic() + 30
        while len(read) < 4 and time.monotonic() < deadline:
            read += [m for m in consumer.consume(4 - len(read), 1.0) if m.error() is None]
        assert len(read) == 4
        record_lag(consumer, group)
        lag = REGISTRY.get_sample_value("roadx_consumer_lag", {"group": group, "topic": topic, "partition": "0"})
        assert lag == 6
        while len(read) < 10 and time.monotonic() < deadline:
            read += [m for m in consumer.consume(10, 1.0) if m.error() is None]
        record_lag(consumer, group)
        assert REGISTRY.get_sample_value("roadx_consumer_lag",
                                         {"group": group, "topic": topic, "partition": "0"}) == 0
    finally:
        consumer.close()
