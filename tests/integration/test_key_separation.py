"""Keys belong to their owner, on the real line: the embedded stack keeps each party's private key
on the party's side and none in the hub's directory; a party's keys rotate, and a key is
withdrawn, while the stream worker runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from stdnum.cn import uscc

from deploy.cli import main
from deploy.topics import create_topics, exchange_topics
from schemas import contract
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.keys import HubKeys, PartyKeys
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from parts import running_part
from test_cli_stack import wait_until_gone

pytestmark = pytest.mark.integration

PROVINCES = ("11", "44")
WAIT_SECONDS = 90


@pytest.fixture(autouse=True)
def no_roadx_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("ROADX_")]:
        monkeypatch.delenv(name)


def roadx(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**clean, **(env or {})})


def operator_event(number: int) -> dict:
    """A new operator of province 44, a different one for each ``number``."""
    base = f"91440300MA5F{number:05d}"
    record = {"uscc": base + uscc.calc_check_digit(base), "name": "深圳运输有限公司", "region_code": "440300",
              "permit_no": None, "business_scope": None, "status": "active", "legal_rep_id_number": None,
              "contact_phone": None}
    return {"event_id": str(uuid.uuid4()), "op": "c", "entity_type": "operator",
            "entity_key": contract.entity_key("operator", record), "before": None, "after": record,
            "source": {"province": "44", "system": "yunzheng", "table": "operator", "seq": number,
                       "snapshot": False},
            "ts_ms": 1_700_000_000_000}


def private_key_files(directory: Path) -> list[str]:
    """Every file under ``directory`` holding a PEM private key, relative to it."""
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*")
                  if path.is_file() and b"PRIVATE KEY" in path.read_bytes())


# -- the embedded stack --------------------------------------------------------------------------
def test_the_embedded_stack_keeps_every_private_key_of_a_party_on_its_side(tmp_path):
    data_dir = tmp_path / "roadx"
    env = {"ROADX_PROVINCES": ",".join(PROVINCES)}
    up = roadx("up", "--data-dir", str(data_dir), env=env)
    try:
        assert up.returncode == 0, up.stderr
        record = json.loads((data_dir / "stack.json").read_text("utf-8"))
        # The parties publish, each signing with the event secret of its own side.
        party_side = Settings(data_dir=data_dir, provinces=PROVINCES)
        codec, secret = EventCodec(EmbeddedRegistry()), party_side.province_key("44")
        producer = Producer({"bootstrap.servers": record["bootstrap_servers"]})
        for number in range(3):
            event = operator_event(number)
            producer.produce(party_side.topics.province_changes("44"), key=event["entity_key"].encode(),
                             value=codec.encode(event, secret))
        assert producer.flush(30) == 0
        # The hub verified them with the secret registered for 44 and stored them.
        url, deadline, stored = f"http://{record['store_http']}/", time.monotonic() + WAIT_SECONDS, ""
        while stored != "3\n":
            assert time.monotonic() < deadline, f"the events did not reach the store: {stored!r}"
            request = urllib.request.Request(url, data=b"SELECT count() FROM change_log WHERE province = '44'")
            with urllib.request.urlopen(request, timeout=30) as answer:
                stored = answer.read().decode()
            time.sleep(0.2)
    finally:
        down = roadx("down", "--data-dir", str(data_dir), env=env)
        assert down.returncode == 0, down.stderr
        assert wait_until_gone(data_dir) == []

    # The hub's directory holds one private key, its own; each party's is on its side, 0600.
    assert private_key_files(data_dir) == ["keys/hub-sm2.key"]
    parties_dir = Path(f"{data_dir}-parties")
    hub = HubKeys.load(data_dir / "keys")
    for province in PROVINCES:
        own = PartyKeys(parties_dir / province, province)
        (key,) = own.keys()
        private = own.keys_directory / key.key_id / "sm2.key"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE((own.keys_directory / key.key_id).stat().st_mode) == 0o700
        (entry,) = [e for e in hub.entries() if e.party == province]
        assert entry.key_id == key.key_id and entry.revoked is None
        assert own.hub_public_file.read_bytes() == hub.hub_public_pem()
    assert private_key_files(parties_dir) == sorted(
        f"{p}/keys/{k.key_id}/sm2.key" for p in PROVINCES for k in PartyKeys(parties_dir / p, p).keys())


# -- rotation and withdrawal, the stream worker running --------------------------------------------
class Outcomes:
    """What the stream worker made of each message sent, read from national.changes and national.dlq:
    ``accepted`` or the dead-letter rule, by the message's bytes."""

    def __init__(self, settings: Settings) -> None:
        topics = settings.topics
        self.consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{topics.prefix}reader",
                                  "enable.auto.commit": False})
        self.consumer.assign(
            [TopicPartition(topics.national_changes, p, OFFSET_BEGINNING) for p in range(settings.national_partitions)]
            + [TopicPartition(topics.national_dlq, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        self.changes = topics.national_changes
        self.seen: dict[bytes, str] = {}

    def of(self, values: list[bytes], worker: subprocess.Popen, log: Path) -> list[str]:
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(v in self.seen for v in values):
            assert worker.poll() is None, log.read_text("utf-8", errors="replace")
            assert time.monotonic() < deadline, "the stream worker did not take every message in"
            message = self.consumer.poll(0.2)
            if message is not None and message.error() is None:
                accepted = message.topic() == self.changes
                self.seen[message.value()] = "accepted" if accepted else \
                    dict(message.headers())[th.DLQ_RULE].decode()
        return [self.seen[v] for v in values]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def line(bootstrap, unique, tmp_path):
    """A stream worker of a hub that makes no party's keys (as in a cluster), and the parties' side apart."""
    settings = Settings(data_dir=tmp_path / "hub", parties_dir=tmp_path / "parties", bootstrap_servers=bootstrap,
                        topic_prefix=f"t{unique}.", provinces=PROVINCES, stream_batch_size=100, auto_keys=False)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


def test_keys_rotate_and_a_withdrawn_key_is_refused_without_stopping_the_line(line, tmp_path, capsys):
    settings, log = line, tmp_path / "streams.log"
    codec, producer = EventCodec(EmbeddedRegistry()), Producer({"bootstrap.servers": line.bootstrap_servers})
    counter = iter(range(1, 10_000))

    def send(secret: bytes, count: int = 1) -> list[bytes]:
        values = []
        for _ in range(count):
            event = operator_event(next(counter))
            values.append(codec.encode(event, secret))
            producer.produce(settings.topics.province_changes("44"), key=event["entity_key"].encode(),
                             value=values[-1])
        assert producer.flush(30) == 0
        return values

    def keys(*args: str) -> str:
        code = main(["keys", *args, "--data-dir", str(settings.data_dir), "--parties-dir", str(settings.parties_dir)]
                    if args[0] == "init" else ["keys", *args, "--data-dir", str(settings.data_dir)])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    party = PartyKeys(settings.parties_dir / "44", "44")

    def initialised() -> tuple[str, bytes]:
        """`roadx keys init` on the party's side, `roadx keys register` on the hub's: (key id, event secret)."""
        out = keys("init", "--party", "44")
        key_id = out.split()[2]
        keys("register", str(party.keys_directory / key_id / "registration.json"))
        (key,) = [k for k in PartyKeys(party.directory, "44").keys() if k.key_id == key_id]
        return key_id, key.event_secret

    old_id, old = initialised()
    outcomes = Outcomes(settings)
    try:
        with running_part("streams", settings, log) as worker:
            assert outcomes.of(send(old, 3), worker, log) == ["accepted"] * 3

            # A new key set, registered while the worker runs: once the worker has read it (a probe
            # signed with it is accepted; those before may be refused), both keys are accepted.
            new_id, new = initialised()
            while (probe := outcomes.of(send(new), worker, log)) != ["accepted"]:
                assert probe == ["bad_signature"]
            mixed = send(old) + send(new) + send(old) + send(new)
            assert outcomes.of(mixed, worker, log) == ["accepted"] * 4

            # The old key withdrawn at the hub: once the worker has read it, what is signed with it
            # is refused as bad_signature and the rest flows on.
            keys("withdraw", old_id)
            while (probe := outcomes.of(send(old), worker, log)) != ["bad_signature"]:
                assert probe == ["accepted"]
            after = send(new) + send(old) + send(new, 2) + send(old)
            assert outcomes.of(after, worker, log) == ["accepted", "bad_signature", "accepted", "accepted",
                                                       "bad_signature"]
            assert worker.poll() is None
    finally:
        outcomes.close()
    registered = {k.key_id: k for k in HubKeys.load(settings.data_dir / "keys").entries()}
    assert registered[old_id].revoked is not None and registered[new_id].revoked is None
    assert private_key_files(settings.data_dir) == []  # the hub made no key of its own here, nor holds a party's
