"""The chaos run end to end, and the synthetic adapter killed and resumed on the real broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from deploy.broker import die_with_parent
from deploy.chaos.probe import read_topic_counts, spooled_so_far
from deploy.topics import create_topics, exchange_topics
from deploy.worker import worker_argv
from producers.synthetic.generator import SyntheticProvinces
from schemas.codec import EventCodec
from schemas.registry import make_registry
from schemas.settings import Settings, to_environ

pytestmark = pytest.mark.integration


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}


def test_a_short_chaos_round_loses_and_doubles_nothing_and_ends_every_case_workflow_as_its_replies_say(tmp_path):
    """Four provinces and the navigation administrations: the provinces' cases about ships are routed
    to the administration that registered the ship, also those that reach the line before the ship."""
    report_file = tmp_path / "report.json"
    runs = tmp_path / "tmp"  # no --data-dir: the run makes a temporary one here, and its parties' keys beside it
    runs.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "chaos", "--rounds", "1", "--events", "3000", "--provinces", "4",
         "--water", "--json", str(report_file)],
        capture_output=True, text=True, timeout=240, env={**clean_env(), "TMPDIR": str(runs)})
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert list(runs.iterdir()) == []  # a passing run leaves neither its directory nor its parties' keys
    for line in ("lost", "doubled in change_log", "doubled on national.changes", "current rows differing",
                 "routed cases missing", "routed cases doubled", "routed doubled on inbound topics",
                 "workflows missing", "workflows unexpected", "workflow states differing", "replies lost",
                 "replies refused to national.dlq", "second transitions", "closings not exactly one"):
        assert re.search(rf"^\s+{line}\s+0\b", result.stdout, re.MULTILINE), result.stdout
    assert "PASSED" in result.stdout
    report = json.loads(report_file.read_text("utf-8"))
    check = report["check"]
    assert report["ok"] and check["produced"] == 3000 and check["stored"] == check["valid"]
    assert (check["lost"], check["doubled"], check["current_differ"], check["routed_missing"],
            check["routed_doubled"]) == (0, 0, 0, 0, 0)
    assert (check["doubled_on_topic"], check["routed_doubled_on_topic"], check["undecodable_on_topic"]) == (0, 0, 0)
    assert check["current_rows"] > 0 and check["routed_expected"] > 0
    assert report["outages"] == 1 and sum(report["kills"].values()) >= 1
    assert "SIGKILL" in result.stderr and "SIGSTOP" in result.stderr
    cases = report["cases"]
    assert (cases["missing"], cases["unexpected"], cases["state_differ"], cases["replies_lost"],
            cases["replies_refused"], cases["second_transitions"], cases["closing_not_one"]) == (0, 0, 0, 0, 0, 0, 0)
    states = cases["states"]
    assert states.get("answered", 0) > 0 and states.get("declined", 0) > 0 and cases["rerouted"] > 0, cases
    assert states.get("received", 0) > 0 and states.get("routed", 0) > 0 and cases["repeats_sent"] > 0, cases
    assert cases["workflows"] == sum(states.values())
    # The default seed's one-round plan kills the case workflows among others (deploy.chaos.plan).
    assert report["kills"].get("cases", 0) >= 1, report["kills"]


def test_chaos_refuses_bad_options_with_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "chaos", "--rounds", "0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=clean_env())
    assert result.returncode == 2 and "--rounds must be at least 1" in result.stderr


def test_topic_counts_show_a_message_doubled_on_national_changes_and_on_an_inbound_topic(bootstrap, unique,
                                                                                         tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                        provinces=("11", "44"))
    create_topics(settings.kafka_conf(), exchange_topics(settings))
    codec = EventCodec(make_registry(None))
    first, second = (g.event for g in SyntheticProvinces(settings.provinces, 3).events(2))
    names = settings.topics
    sent = [(names.national_changes, first), (names.national_changes, first), (names.national_changes, second),
            (names.province_inbound("11"), first), (names.province_inbound("11"), first),
            (names.province_inbound("44"), first)]
    producer = Producer(settings.kafka_conf())
    for topic, event in sent:
        producer.produce(topic, codec.encode(event), event["entity_key"].encode("utf-8"))
    producer.produce(names.national_changes, b"\x00\x00\x00\x00\x07not avro", b"junk")
    assert producer.flush(30) == 0
    topics = read_topic_counts(settings, give_up_seconds=60)
    first_id, second_id = str(first["event_id"]), str(second["event_id"])
    assert topics.changes == {first_id: 2, second_id: 1}
    assert topics.routed == {(first_id, "11"): 2, (first_id, "44"): 1}
    assert topics.undecodable == {names.national_changes: 1}


def read_event_ids(settings: Settings, expected: int, idle: float = 3.0) -> list[str]:
    codec = EventCodec(make_registry(None))
    reader = Consumer({**settings.kafka_conf(), "group.id": f"{settings.topic_prefix}reader",
                       "enable.auto.commit": False})
    topics = [settings.topics.province_changes(p) for p in settings.provinces]
    try:
        reader.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(settings.partitions)])
        ids: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = reader.consume(1000, idle)
            if not messages and len(ids) >= expected:
                return ids
            ids += [str(codec.decode(m.value())[1]["event_id"]) for m in messages if m.error() is None]
        return ids
    finally:
        reader.close()


def test_a_killed_synthetic_adapter_resumes_without_loss_and_without_regenerating(bootstrap, unique, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                        provinces=("11", "44"))
    create_topics(settings.kafka_conf(), exchange_topics(settings))
    env = {**clean_env(), **to_environ(settings)}
    argv = [sys.executable, *worker_argv("synthetic"), "--events", "2000", "--seed", "13", "--rate", "500",
            "--chunk", "50"]
    log = tmp_path / "adapter.log"

    def start() -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    first = start()
    try:
        deadline = time.monotonic() + 60
        while spooled_so_far(settings) < 600 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None, log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        spooled_before = spooled_so_far(settings)
        assert 600 <= spooled_before < 2000
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    second = start()
    try:
        assert second.wait(120) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    report = json.loads(log.read_text().strip().splitlines()[-1])
    assert report["skipped"] >= spooled_before - 2 * 50 * len(settings.provinces)  # only unflushed buffers redone
    assert report["skipped"] > 0 and report["produced"] < 2000
    everything = {g.event["event_id"] for g in SyntheticProvinces(settings.provinces, 13).events(2000)}
    ids = read_event_ids(settings, expected=2000)
    assert set(ids) == everything
