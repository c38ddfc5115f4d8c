"""Submissions against the real broker: manifests after the events, receipts beside files and in
a database adapter's spool, a lost receipt resent once, an altered one refused.

A stand-in hub answers the manifests: it reads ``prov.<P>.changes`` and ``prov.<P>.manifests``,
decides each submission with ``provenance.decide`` over the events it really received and
answers on ``xprov.<P>.receipts`` with a receipt signed by the hub's key — or stays silent,
or alters the receipt after signing, as a test asks.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from deploy.topics import create_topics, exchange_topics
from producers.database.adapter import DbAdapter, DbAdapterConfig
from producers.files.adapter import FileAdapter, FileAdapterOptions
from producers.files.watch import DropFolder
from producers.synthetic import publish_synthetic
from schemas import provenance
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from test_file_adapter import OPERATOR_HEADER, operators, write_csv

pytestmark = pytest.mark.integration
P = "44"
Behaviour = Callable[[dict, int], str]  # (manifest, how many times it was seen) -> answer | silent | altered


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=(P, "11"),
                    topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    made.party_key(P)  # the province's keys, registered at the hub, which hands it its public key
    return made


def reader(settings: Settings, topics: list[str]) -> Consumer:
    consumer = Consumer({**settings.kafka_conf(), "group.id": f"{settings.topic_prefix}check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(settings.partitions)])
    return consumer


def read_all(settings: Settings, topic: str, expected: int, timeout: float = 60) -> list:
    """The messages of ``topic`` once at least ``expected`` came, and whatever else follows within a second."""
    consumer = reader(settings, [topic])
    try:
        messages, deadline = [], time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        messages += [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        return messages
    finally:
        consumer.close()


class StandInHub:
    """Answers each manifest of party ``P`` once the events it names have arrived."""

    def __init__(self, settings: Settings, behaviour: Behaviour = lambda _m, _n: "answer") -> None:
        self.settings, self.behaviour = settings, behaviour
        self.codec = EventCodec(EmbeddedRegistry())
        self.key_id, self.private = settings.hub_keys().hub_key()
        self.manifests: list[dict] = []
        self.answered: list[dict] = []
        self.failure: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stand-in hub", daemon=True)

    def __enter__(self) -> "StandInHub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.failure:
            raise self.failure[0]

    def _run(self) -> None:
        topics = self.settings.topics
        consumer = reader(self.settings, [topics.province_changes(P), topics.province_manifests(P)])
        producer = Producer(self.settings.kafka_conf())
        events: dict[str, list[provenance.TalliedEvent]] = collections.defaultdict(list)
        waiting: list[dict] = []
        seen: collections.Counter = collections.Counter()
        try:
            while not self._stop.is_set():
                for message in consumer.consume(1000, 0.2):
                    if message.error() is not None:
                        continue
                    if message.topic() == topics.province_manifests(P):
                        manifest = provenance.parse_manifest(message.value())
                        self.manifests.append(manifest)
                        seen[manifest["submission_id"]] += 1
                        if self.behaviour(manifest, seen[manifest["submission_id"]]) != "silent":
                            waiting.append(manifest)
                        continue
                    event = self.codec.decode(message.value())[1]
                    submission = event["source"]["submission"]
                    events[submission].append(provenance.TalliedEvent(
                        str(event["event_id"]), event["source"]["seq"], provenance.event_digest(message.value()),
                        provenance.ACCEPTED))
                for manifest in [m for m in waiting if provenance.complete(m, events[m["submission_id"]])]:
                    waiting.remove(manifest)
                    self._answer(producer, manifest, events[manifest["submission_id"]], seen)
        except BaseException as exc:  # re-raised by __exit__
            self.failure.append(exc)
        finally:
            producer.flush(10)
            consumer.close()

    def _answer(self, producer: Producer, manifest: dict, events: list, seen: collections.Counter) -> None:
        submission = manifest["submission_id"]
        receipt = provenance.sign_receipt(party=P, submission_id=submission, manifest=manifest,
                                          decision=provenance.decide(manifest, events),
                                          at=dt.datetime.now(dt.timezone.utc), hub_key_id=self.key_id,
                                          hub_private=self.private)
        if self.behaviour(manifest, seen[submission]) == "altered":
            receipt = {**receipt, "accepted": receipt["accepted"] + 1, "findings": []}
        self.answered.append(receipt)
        producer.produce(self.settings.topics.province_receipts(P), provenance.document_bytes(receipt),
                         submission.encode("utf-8"))
        producer.flush(10)


def events_of(settings: Settings, expected: int) -> dict[str, list]:
    """The messages on ``prov.<P>.changes`` by the submission their events name."""
    codec = EventCodec(EmbeddedRegistry())
    by_submission: dict[str, list] = collections.defaultdict(list)
    for message in read_all(settings, settings.topics.province_changes(P), expected):
        event = codec.decode(message.value())[1]
        by_submission[event["source"]["submission"]].append((event["source"]["seq"], message.value()))
    return by_submission


def root_of(messages: list) -> str:
    distinct = {provenance.event_digest(value): seq for seq, value in messages}
    return provenance.merkle_root([d for d, _seq in sorted(distinct.items(), key=lambda item: item[1])]).hex()


def receipts_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("roadx_adapter_receipts_total",
                                     {"province": P, "adapter": "files", "outcome": outcome}) or 0.0


def load_and_wait(settings: Settings, path: Path, **options):
    with FileAdapter(settings, P, "operator", FileAdapterOptions(**options)) as adapter:
        result = adapter.process(path)
        return adapter.await_receipts([result])[0]


def test_a_files_verified_receipt_appears_beside_it_and_its_manifest_names_exactly_its_events(settings, tmp_path):
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER, operators(7))
    with StandInHub(settings) as hub:
        result = load_and_wait(settings, path, receipt_seconds=30, chunk=3)
    assert (result.status, result.events, result.resent, result.receipt_problem) == ("loaded", 7, 0, None)
    assert result.receipt == tmp_path / "operators.csv.receipt.json" and result.receipt_status == "accepted"
    receipt = json.loads(result.receipt.read_text("utf-8"))
    assert provenance.signature_valid(receipt, settings.party_keys(P).hub_public())
    assert (receipt["submission_id"], receipt["accepted"], receipt["status"]) == (result.submission, 7, "accepted")

    (manifest,) = hub.manifests
    assert receipt["manifest_digest"] == provenance.digest_of(manifest)
    assert provenance.signature_valid(manifest, settings.hub_keys().public_key(P, manifest["key_id"],
                                                                               dt.datetime.now(dt.timezone.utc)))
    sent = events_of(settings, 7)
    assert list(sent) == [result.submission]  # every event names the file's submission
    assert (manifest["count"], manifest["seq_first"], manifest["seq_last"]) == (7, 1, 7)
    assert manifest["root"] == root_of(sent[result.submission])


def test_a_lost_receipt_makes_the_file_be_sent_exactly_once_more(settings, tmp_path):
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER, operators(4))
    answer_second: Behaviour = lambda _manifest, seen: "silent" if seen == 1 else "answer"
    with StandInHub(settings, answer_second) as hub:
        result = load_and_wait(settings, path, receipt_seconds=2)
    assert (result.resent, result.receipt_status, result.receipt_problem) == (1, "accepted", None)
    assert result.receipt.exists()
    assert len(hub.manifests) == 2 and hub.manifests[0] == hub.manifests[1]  # the same manifest, sent twice
    manifests = read_all(settings, settings.topics.province_manifests(P), 2)
    assert len(manifests) == 2 and {m.key() for m in manifests} == {result.submission.encode()}
    (sent,) = events_of(settings, 8).values()
    assert len(sent) == 8 and len({value for _seq, value in sent}) == 4  # every event twice, the same bytes


def test_a_receipt_altered_after_signing_is_refused_counted_and_never_written(settings, tmp_path):
    path = write_csv(tmp_path / "operators.csv", OPERATOR_HEADER, operators(3))
    refused_before = receipts_counted("refused")
    with StandInHub(settings, lambda _m, _n: "altered") as hub:
        result = load_and_wait(settings, path, receipt_seconds=1.5)
    assert len(hub.answered) == 2  # one altered receipt for the manifest, one for its resend
    assert result.receipt is None and not (tmp_path / "operators.csv.receipt.json").exists()
    assert result.resent == 1 and result.receipt_problem.startswith("no receipt:")
    assert "bad_signature" in result.receipt_problem
    assert receipts_counted("refused") - refused_before == 2


def test_the_watched_folder_loads_other_files_while_one_waits_for_its_receipt(settings, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    first = write_csv(drop / "operator_20240601.csv", OPERATOR_HEADER, operators(3))
    silent_for_the_first: Behaviour = lambda manifest, _n: "silent" if manifest["count"] == 3 else "answer"
    folder = DropFolder(settings, P, drop, None, FileAdapterOptions(receipt_seconds=300))
    try:
        with StandInHub(settings, silent_for_the_first):
            assert _poll_until(folder, lambda: (drop / "processed" / first.name).exists())
            write_csv(drop / "operator_20240602.csv", OPERATOR_HEADER, operators(5, seed=2))
            second_receipt = drop / "processed" / "operator_20240602.csv.receipt.json"
            assert _poll_until(folder, second_receipt.exists)
    finally:
        folder.close()
    receipt = json.loads(second_receipt.read_text("utf-8"))
    assert (receipt["status"], receipt["accepted"]) == ("accepted", 8)  # 5 creates, the first day's 3 deleted
    assert not (drop / "processed" / "operator_20240601.csv.receipt.json").exists()


def _poll_until(folder: DropFolder, done: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder.poll(settle_s=0.0)
        folder.check_receipts()
        if done():
            return True
        time.sleep(0.1)
    return False


def test_a_database_adapters_receipts_land_in_its_spool(settings, tmp_path):
    url = f"sqlite:///{tmp_path / 'province.db'}"
    with sqlite3.connect(tmp_path / "province.db") as db:
        db.execute("CREATE TABLE vehicles (id INTEGER PRIMARY KEY, plate TEXT, plate_color INTEGER, "
                   "vehicle_class TEXT, operator_uscc TEXT, status TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO vehicles VALUES (?, ?, 2, 'truck', '91350100M000100Y43', 'active', ?)",
                       [(i, f"粤B{i:05d}", f"2024-05-01 08:00:0{i}") for i in range(1, 6)])
    config = DbAdapterConfig(province=P, url=url, table="vehicles", entity="vehicle", key="id", cursor="updated_at",
                             batch_size=2, receipt_seconds=30)
    with StandInHub(settings):
        adapter = DbAdapter(settings, config)
        try:
            total = adapter.run_once(timeout=60)
            assert (total.read, total.submissions) == (5, 3)
            deadline = time.monotonic() + 60
            while adapter.waiting_receipts() and time.monotonic() < deadline:
                total.add(adapter.cycle(wait=0.5))
            assert (total.receipts, total.waiting_receipts, total.resent) == (3, 0, 0)
            rows = adapter.store.select("SELECT submission, state, status, receipt FROM submissions ORDER BY rowid")
        finally:
            adapter.close()
    assert [(state, status) for _s, state, status, _r in rows] == [("receipted", "accepted")] * 3
    hub_public = settings.party_keys(P).hub_public()
    receipts = [provenance.parse_receipt(raw) for *_rest, raw in rows]
    assert all(provenance.signature_valid(r, hub_public) for r in receipts)
    assert [r["accepted"] for r in receipts] == [2, 2, 1]
    sent = events_of(settings, 5)
    assert sorted(sent) == sorted(s for s, *_rest in rows)
    assert all(r["root"] == root_of(sent[r["submission_id"]]) for r in receipts)


def test_synthetic_chunks_are_submissions_whose_manifests_hold_the_root_of_their_events(settings):
    report = publish_synthetic(settings, total=600, seed=5, chunk=100)
    manifests = [provenance.parse_manifest(m.value())
                 for m in read_all(settings, settings.topics.province_manifests(P), 2)]
    sent = events_of(settings, report.per_province[P])
    assert len(manifests) == len(sent) >= 2 and None not in sent
    for manifest in manifests:
        assert manifest["root"] == root_of(sent[manifest["submission_id"]])
        assert manifest["count"] == len({value for _seq, value in sent[manifest["submission_id"]]})
    assert sum(len(messages) for messages in sent.values()) == report.per_province[P]
