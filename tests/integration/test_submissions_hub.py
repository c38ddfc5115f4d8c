"""Signed submissions end to end: a real broker, the stream worker as a process, the sink (with
its submission check) in a thread of the test over a real chDB store, and ``roadx evidence
verify`` over what it logged."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from stdnum.cn import uscc

from deploy.cli import main as roadx
from deploy.topics import create_topics, exchange_topics
from schemas import contract, provenance, sm2
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings
from sinks.sink import run_sink
from sinks.store import open_store

from parts import running_part

pytestmark = pytest.mark.integration

CODEC = EventCodec(EmbeddedRegistry())
WAIT_SECONDS = 120
SUBMISSION_WAIT = 4.0  # how long the hub waits for missing events or a manifest


def now():
    return dt.datetime.now(dt.timezone.utc)


def operator(n, bad=False):
    body = f"91440300MA5F{n:04d}X"
    code = body + uscc.calc_check_digit(body)
    if bad:
        code = code[:-1] + ("0" if code[-1] != "0" else "1")
    return {"uscc": code, "name": "深圳运输有限公司", "region_code": "440300", "permit_no": None,
            "business_scope": None, "status": "active", "legal_rep_id_number": None, "contact_phone": None}


def event(n, seq, submission, bad=False, event_id=None):
    record = operator(n, bad)
    return contract.change_event(event_id=event_id or str(uuid.uuid4()), op="c", entity_type="operator", before=None,
                                 after=record, province="44", system="yunzheng", table="operators", seq=seq,
                                 ts_ms=1_700_000_000_000, submission=submission)


@pytest.fixture
def hub(bootstrap, unique, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                        provinces=("11", "44"), partitions=1, national_partitions=2, sink_flush_seconds=0.3,
                        stream_batch_size=100)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


class Party:
    """Province 44's side: its key, its events and manifests on its topics."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.key = settings, settings.party_key("44")
        self.producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))
        self.sent: dict[str, list[tuple[int, bytes]]] = {}

    def send(self, *events: dict) -> None:
        for ev in events:
            framed = CODEC.encode(ev, self.key.event_secret)
            self.sent.setdefault(ev["source"]["submission"], []).append((ev["source"]["seq"],
                                                                        provenance.event_digest(framed)))
            self.producer.produce(self.settings.topics.province_changes("44"), framed, ev["entity_key"].encode())
        assert self.producer.flush(30) == 0

    def manifest(self, submission: str, extra: list[tuple[int, bytes]] = (), signer=None) -> bytes:
        document = provenance.sign_manifest(party="44", key_id=self.key.key_id, private=signer or self.key.private,
                                            submission_id=submission, seqs_and_digests=[*self.sent[submission], *extra],
                                            created=now())
        return provenance.document_bytes(document)

    def close(self, submission: str, raw: bytes) -> None:
        self.producer.produce(self.settings.topics.province_manifests("44"), raw, submission.encode())
        assert self.producer.flush(30) == 0


class Receipts:
    """Province 44's receipts topic, read from the beginning."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(settings.kafka_conf(**{"group.id": f"{settings.topic_prefix}receipts",
                                                        "enable.auto.commit": False}))
        self.consumer.assign([TopicPartition(settings.topics.province_receipts("44"), 0, OFFSET_BEGINNING)])
        self.got: list[tuple[str, bytes]] = []

    def until(self, done, what: str, alive=lambda: True) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done(self.got):
            assert time.monotonic() < deadline, f"no {what} within {WAIT_SECONDS}s: {self.got}"
            assert alive()
            msg = self.consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.got.append((msg.key().decode(), msg.value()))
        return self.got

    def of(self, submission: str) -> list[dict]:
        return [json.loads(value) for key, value in self.got if key == submission]


def test_submissions_get_signed_receipts_logged_as_evidence_that_verifies(hub, tmp_path, capsys):
    party = Party(hub)
    stop, failure = threading.Event(), []

    def sink():
        try:
            run_sink(hub, stop, submission_wait=SUBMISSION_WAIT)
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=sink, name="sink", daemon=True)
    receipts = Receipts(hub)
    with running_part("streams", hub, tmp_path / "worker.log") as worker:
        thread.start()

        def alive():
            assert not failure, failure
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            return True

        earlier = event(1, 1, "earlier")
        party.send(earlier)
        party.close("earlier", party.manifest("earlier"))
        receipts.until(lambda got: receipts.of("earlier"), "receipt of the earlier submission", alive)

        # good: two valid events, one rejected by a rule, one sent before in another submission (a duplicate)
        party.send(event(2, 2, "good"), event(3, 3, "good"), event(4, 4, "good", bad=True),
                   event(1, 5, "good", event_id=earlier["event_id"]))
        good = party.manifest("good")
        party.close("good", good)
        party.send(event(5, 6, "forged"), event(6, 7, "forged"))
        party.close("forged", party.manifest("forged", signer=sm2.generate()))
        party.send(event(7, 8, "missing"), event(8, 9, "missing"))
        party.close("missing", party.manifest("missing", extra=[(10, sm2.sm3(b"never sent"))]))
        party.send(event(9, 11, "unannounced"), event(10, 12, "unannounced"))
        wanted = ("good", "forged", "missing", "unannounced")
        receipts.until(lambda got: all(receipts.of(s) for s in wanted), "receipts of every submission", alive)

        party.close("good", good)  # the same manifest again (a resend, or a replay)
        receipts.until(lambda got: len(receipts.of("good")) == 2, "the repeated receipt", alive)
    stop.set()
    thread.join(60)
    receipts.consumer.close()
    assert not failure, failure
    assert not thread.is_alive(), "the sink did not stop"

    hub_public = sm2.load_public(hub.hub_keys().hub_public_pem(), "hub")
    first = receipts.of("good")[0]
    assert provenance.signature_valid(first, hub_public)
    assert (first["status"], first["expected"], first["accepted"], first["rejected"], first["duplicate"]) == \
        ("accepted", 4, 2, 1, 1)
    assert first["manifest_digest"] == provenance.digest_of(json.loads(good))
    repeats = [value for key, value in receipts.got if key == "good"]
    assert repeats[0] == repeats[1], "a repeated manifest gets the very same receipt"
    forged = receipts.of("forged")[0]
    assert forged["status"] == "refused" and forged["findings"][0].startswith("bad_signature")
    missing = receipts.of("missing")[0]
    assert missing["status"] == "mismatch" and missing["findings"][0].startswith("events_missing: 1 of 3")
    unannounced = receipts.of("unannounced")[0]
    assert (unannounced["status"], unannounced["accepted"]) == ("unannounced", 2)
    assert len(receipts.got) == 6

    store = open_store(hub)
    try:
        db = hub.clickhouse_database
        findings = store.query(f"SELECT submission_id, rule FROM {db}.submission_findings FINAL "
                               "ORDER BY submission_id, rule").result_rows
        assert findings == [("forged", "bad_signature"), ("good", "manifest_repeated"),
                            ("missing", "events_missing"), ("unannounced", "no_manifest")]
        log = store.query(f"SELECT index, kind, submission_id FROM {db}.evidence_log FINAL ORDER BY index").result_rows
        assert [(k, s) for _i, k, s in log] == [
            ("manifest", "earlier"), ("receipt", "earlier"), ("manifest", "good"), ("receipt", "good"),
            ("manifest", "forged"), ("receipt", "forged"), ("manifest", "missing"), ("receipt", "missing"),
            ("receipt", "unannounced")]
        good_receipt = next(i for i, k, s in log if (k, s) == ("receipt", "good"))
    finally:
        store.close()

    assert roadx(["evidence", "verify", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "checked 4 manifests and 5 receipts" in out and "every entry checks out" in out

    store = open_store(hub)
    try:
        store.command(f"ALTER TABLE {hub.clickhouse_database}.evidence_log UPDATE document = "
                      f"replace(document, '\"accepted\":2', '\"accepted\":3') WHERE index = {good_receipt} "
                      "SETTINGS mutations_sync = 1")
    finally:
        store.close()
    assert roadx(["evidence", "verify", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"PROBLEM entry {good_receipt} (receipt of 44/good): altered_entry" in out
    assert roadx(["evidence", "verify", "--data-dir", str(tmp_path), "--party", "11"]) == 0
    assert "checked 0 manifests and 0 receipts" in capsys.readouterr().out
    assert roadx(["evidence", "verify", "--data-dir", str(tmp_path), "--month", now().strftime("%Y-%m"),
                  "--party", "44"]) == 1
    assert f"PROBLEM entry {good_receipt} (receipt of 44/good)" in capsys.readouterr().out
    assert roadx(["evidence", "verify", "--data-dir", str(tmp_path), "--month", "1999-01"]) == 0


def read_all(settings, topic):
    from schemas.kafka import read_topics

    return [(m.key(), m.value()) for batch in read_topics(settings.kafka_conf(), f"{settings.topic_prefix}reader",
                                                          [topic], error=AssertionError, what=f"read {topic}")
            for m in batch]


def test_evidence_the_store_holds_but_the_broker_never_got_is_sent_again_byte_for_byte(hub):
    from sinks import submissions as sub
    from sinks.store import ensure_schema
    from sinks.submission_check import SubmissionChecker, last_published

    key = hub.party_key("44")
    at = now()
    event_digest = sm2.sm3(b"an event")
    manifest = provenance.sign_manifest(party="44", key_id=key.key_id, private=key.private, submission_id="f1",
                                        seqs_and_digests=[(1, event_digest)], created=at)
    message = sub.ManifestMessage("44", "f1", provenance.document_bytes(manifest).decode(),
                                  f"{hub.topics.province_manifests('44')}:0:0", at)
    store = open_store(hub)
    try:
        ensure_schema(store, hub.clickhouse_database)
        checker = SubmissionChecker(hub, store, wait_seconds=1)
        checked = sub.check_manifest(message, hub.hub_keys().public_key, at)
        answer = sub.answer(message, checked, None, [provenance.TalliedEvent("e1", 1, event_digest, "accepted")],
                            at, 1)
        hub_key_id, hub_private = hub.hub_keys().hub_key()
        receipt = sub.sign(answer, at, hub_key_id, hub_private)
        entries = sub.evidence_entries(None, answer, receipt, at)
        checker.db.log(entries, [message.origin] * len(entries), at)  # stored, then the sink died before sending

        checker.tick(active=True)
        evidence = read_all(hub, hub.topics.national_evidence)
        assert [value for _key, value in evidence] == [sub.entry_value(e) for e in entries]
        assert read_all(hub, hub.topics.province_receipts("44")) == [(b"f1", receipt.encode())]
        assert json.loads(receipt)["status"] == "accepted"

        checker.synced, checker.next_at = False, 0.0  # started again: nothing more to send
        checker.tick(active=True)
        assert last_published(hub.kafka_conf(), "reader", hub.topics.national_evidence) == 1
        assert len(read_all(hub, hub.topics.national_evidence)) == 2
        assert len(read_all(hub, hub.topics.province_receipts("44"))) == 1
        checker.close()
    finally:
        store.close()


class ManifestMessage:
    """A manifest as the sink reads it from ``prov.44.manifests``."""

    def __init__(self, settings: Settings, offset: int, submission: str, raw: bytes) -> None:
        self._topic, self._offset, self._key, self._raw = settings.topics.province_manifests("44"), offset, submission, raw

    def topic(self): return self._topic
    def partition(self): return 0
    def offset(self): return self._offset
    def key(self): return self._key.encode()
    def value(self): return self._raw


def test_the_answers_of_one_check_are_logged_in_one_insert_and_sent_only_once_logged(hub):
    from schemas import evidence
    from sinks.store import ensure_schema
    from sinks.submission_check import SubmissionChecker
    from sinks.submission_store import MANIFEST_COLUMNS, evidence_slice, manifest_row

    key, at = hub.party_key("44"), now()
    raws = {name: provenance.document_bytes(provenance.sign_manifest(
        party="44", key_id=key.key_id, private=key.private, submission_id=name,
        seqs_and_digests=[(1, sm2.sm3(name.encode()))], created=at)) for name in ("f1", "f2", "f3")}
    sent = [("f1", raws["f1"]), ("f2", raws["f2"]), ("f1", raws["f1"]), ("f3", raws["f3"])]  # f1 read twice
    db = hub.clickhouse_database
    store = open_store(hub)
    try:
        ensure_schema(store, db)
        store.insert("submission_manifests", [manifest_row(ManifestMessage(hub, offset, name, raw), "44", at)
                                              for offset, (name, raw) in enumerate(sent)],
                     column_names=list(MANIFEST_COLUMNS), database=db)
        store.command(f"SYSTEM STOP MERGES {db}.evidence_log")  # each insert stays a part of its own
        checker = SubmissionChecker(hub, store, wait_seconds=0)  # events never come: answered at once
        checker.tick(active=True)

        parts = store.query(f"SELECT count() FROM system.parts WHERE database = %(db)s AND table = 'evidence_log' "
                            "AND active", parameters={"db": db}).result_rows[0][0]
        assert parts == 1, "the check's answers are logged in one insert"
        log = store.query(f"SELECT index, kind, submission_id FROM {db}.evidence_log FINAL ORDER BY index").result_rows
        assert [(k, s) for _i, k, s in log] == [("manifest", "f1"), ("receipt", "f1"), ("manifest", "f2"),
                                                ("receipt", "f2"), ("manifest", "f3"), ("receipt", "f3")]
        entries, _before = evidence_slice(store, db)
        hub_public = sm2.load_public(hub.hub_keys().hub_public_pem(), "hub")
        assert evidence.verify(entries, hub.hub_keys().public_key, hub_public) == []
        checker.close()
    finally:
        store.close()
    receipts = [(k.decode(), v) for k, v in read_all(hub, hub.topics.province_receipts("44"))]
    assert [k for k, _v in receipts] == ["f1", "f2", "f3", "f1"], "the repeat goes after the logged receipts"
    assert receipts[3][1] == receipts[0][1], "the manifest read again gets the very same receipt"
    assert [json.loads(v)["status"] for _k, v in receipts[:3]] == ["mismatch"] * 3
    assert len(read_all(hub, hub.topics.national_evidence)) == 6


def test_a_check_reads_the_events_only_of_submissions_it_answers(hub, monkeypatch):
    """f1 names two events and one is tallied: it waits, and its events stay in the store (a check a
    second reading every waiting submission's events again grew with the backlog). f2 is complete and
    answered; the count the store gives for f1 names its events once even when tallied twice."""
    from sinks.store import ensure_schema
    from sinks.submission_check import SubmissionChecker
    from sinks.submission_store import MANIFEST_COLUMNS, TALLY_COLUMNS, SubmissionStore, manifest_row

    key, at = hub.party_key("44"), now()
    digests = {(name, seq): sm2.sm3(f"{name}-{seq}".encode()) for name in ("f1", "f2") for seq in (1, 2)}
    raws = {name: provenance.document_bytes(provenance.sign_manifest(
        party="44", key_id=key.key_id, private=key.private, submission_id=name,
        seqs_and_digests=[(seq, digests[name, seq]) for seq in (1, 2)], created=at)) for name in ("f1", "f2")}

    def tally(name, offset, seqs):
        return (f"t:0:{offset}", "44", name, 0, [f"{name}-{s}" for s in seqs], list(seqs),
                [digests[name, s].hex() for s in seqs], ["accepted"] * len(seqs), at, "t", 0, offset, at)

    asked: list[set[str]] = []
    read_tallies = SubmissionStore.tallies

    def tallies(self, ids):
        asked.append(set(ids))
        return read_tallies(self, ids)
    monkeypatch.setattr(SubmissionStore, "tallies", tallies)
    db = hub.clickhouse_database
    store = open_store(hub)
    try:
        ensure_schema(store, db)
        store.insert("submission_manifests", [manifest_row(ManifestMessage(hub, offset, name, raws[name]), "44", at)
                                              for offset, name in enumerate(("f1", "f2"))],
                     column_names=list(MANIFEST_COLUMNS), database=db)
        store.insert("submission_tallies", [tally("f1", 1, (1,)), tally("f1", 2, (1,)), tally("f2", 3, (1, 2))],
                     column_names=list(TALLY_COLUMNS), database=db)
        assert SubmissionStore(store, db).tallied_counts(["f1", "f2", "f3"]) == {("44", "f1"): 1, ("44", "f2"): 2}
        checker = SubmissionChecker(hub, store, wait_seconds=600)
        checker.tick(active=True)
        assert asked == [{"f2"}], "only the answered submission's events are read"
        logged = store.query(f"SELECT kind, submission_id FROM {db}.evidence_log FINAL ORDER BY index").result_rows
        assert logged == [("manifest", "f2"), ("receipt", "f2")]

        store.insert("submission_tallies", [tally("f1", 4, (2,))], column_names=list(TALLY_COLUMNS), database=db)
        checker.next_at = 0.0  # the next check is due
        checker.tick(active=True)
        assert asked[1] == {"f1"}, "once complete, its events are read and it is answered"
        checker.close()
    finally:
        store.close()
    receipts = [json.loads(v) for _k, v in read_all(hub, hub.topics.province_receipts("44"))]
    assert [(r["submission_id"], r["status"], r["accepted"]) for r in receipts] == [("f2", "accepted", 2),
                                                                                    ("f1", "accepted", 2)]
