"""The information service (``roadx worker service``) on the real broker: the register read
from ``national.changes``, answers by key, masking by party, verification, lookups, and
every refusal a caller can provoke."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from confluent_kafka import Producer
from stdnum.cn import uscc

from deploy.broker import free_port
from deploy.topics import create_topics, exchange_topics
from schemas import contract
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.credentials import Credentials, credentials_file
from schemas.pii import mask_id_number
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from parts import running_part

pytestmark = pytest.mark.integration

WAIT_SECONDS = 120
USCC_44 = "91440300MA5F0000X" + uscc.calc_check_digit("91440300MA5F0000X")
USCC_11 = "91110105MA0000001" + uscc.calc_check_digit("91110105MA0000001")
ID_44 = "440303199001011237"  # passes GB 11643 (schemas.identifiers.check_id_number)
NOW = dt.datetime.now(dt.timezone.utc)
TODAY = NOW.date()


def change(entity_type, record, province, seq=1, op="c"):
    return {
        "event_id": str(uuid.uuid4()), "op": op, "entity_type": entity_type,
        "entity_key": contract.entity_key(entity_type, record), "before": None if op != "d" else record,
        "after": None if op == "d" else record,
        "source": {"province": province, "system": "yunzheng", "table": entity_type, "seq": seq, "snapshot": False},
        "ts_ms": int(NOW.timestamp() * 1000),
    }


def operator(uscc_value, region, phone="13800138000"):
    return {"uscc": uscc_value, "name": "运输有限公司", "region_code": region, "permit_no": None, "business_scope": None,
            "status": "active", "legal_rep_id_number": ID_44, "contact_phone": phone}


def vehicle(plate, color, operator_uscc):
    return {"plate": plate, "plate_color": color, "vin": None, "vehicle_class": "bus", "operator_uscc": operator_uscc,
            "transport_cert_no": None, "seats": None, "tonnage_kg": None, "status": "active"}


def practitioner(id_number):
    return {"id_number": id_number, "name": "张三", "qualification_cert_no": "Q-1", "qualification_types": [],
            "region_code": "440304", "employer_uscc": USCC_44, "status": "active"}


def licence(number, status="valid", until=None, holder=None):
    return {"licence_no": number, "licence_type": "operating_permit", "holder_key": holder or f"operator:{USCC_44}",
            "issuer_region_code": "440300", "valid_from": TODAY - dt.timedelta(days=365),
            "valid_until": until or TODAY + dt.timedelta(days=365), "status": status}


def publish(settings, events, stale=()):
    codec = EventCodec(EmbeddedRegistry())
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"})
    for n, event in enumerate(events):
        headers = [(th.STALE, b"true")] if n in stale else None
        producer.produce(settings.topics.national_changes, codec.encode(event), event["entity_key"].encode(),
                         headers=headers)
    assert producer.flush(30) == 0


def new_settings(bootstrap, data_dir):
    settings = Settings(data_dir=data_dir, bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                        provinces=("11", "44"), service_port=free_port(), service_rate_per_second=500)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


@pytest.fixture
def service_settings(bootstrap, tmp_path):
    return new_settings(bootstrap, tmp_path)


def running_service(settings, log_path):
    return running_part("service", settings, log_path)


class Caller:
    def __init__(self, settings, token=None):
        self.base = f"http://127.0.0.1:{settings.service_port}"
        self.token = token

    def call(self, path, body=None, token=...):
        token = self.token if token is ... else token
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data is not None else "GET")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()

    def json(self, path, body=None, token=...):
        status, ctype, raw = self.call(path, body, token)
        assert "application/json" in ctype, (status, ctype, raw[:200])
        return status, json.loads(raw)


def wait_until(condition, proc, log_path, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the service exited: {log_path.read_text()}"
        with contextlib.suppress(OSError, AssertionError, ValueError):
            if condition():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def served(broker, tmp_path_factory):
    """A running service over a register of two provinces, and a credential of each."""
    settings = new_settings(broker.bootstrap_servers, tmp_path_factory.mktemp("service"))
    events = [
        change("operator", operator(USCC_44, "440300"), "44"),
        change("operator", operator(USCC_11, "110105", phone="13900139000"), "11"),
        change("vehicle", vehicle("粤B12345", 2, USCC_44), "44"),
        change("vehicle", vehicle("粤B12345", 1, USCC_44), "44"),
        change("practitioner", practitioner(ID_44), "44"),
        change("licence", licence("粤交运许可440300000001"), "44"),
        change("licence", licence("粤交运许可440300000002", status="revoked"), "44"),
        change("licence", licence("粤交运许可440300000003", until=TODAY - dt.timedelta(days=1)), "44"),
        change("licence", licence("粤交运许可440300000004", holder=f"practitioner:{ID_44}"), "44"),
    ]
    # a newer version of the 11 operator, then a stale older one that must not overwrite it
    newer = operator(USCC_11, "110105", phone="13900139000") | {"name": "北京新名称"}
    events.append(change("operator", newer, "11", seq=5, op="u"))
    events.append(change("operator", operator(USCC_11, "110105") | {"name": "旧名称"}, "11", seq=3, op="u"))
    events.append(change("operator", operator(USCC_11, "110105") | {"name": "标为过期"}, "11", seq=9, op="u"))
    publish(settings, events, stale={len(events) - 1})
    store = Credentials.load(credentials_file(settings.data_dir))
    _c44, token44 = store.issue("44", NOW, settings.provinces)
    c11, token11 = store.issue("11", NOW, settings.provinces)
    log_path = settings.data_dir / "service.log"
    with running_service(settings, log_path) as proc:
        caller = Caller(settings)
        wait_until(lambda: caller.json("/v1/health")[0] == 200, proc, log_path, "the register to catch up")
        yield settings, proc, log_path, Caller(settings, token44), Caller(settings, token11), store


def test_answers_by_key_with_masking_by_party(served):
    settings, _proc, _log, as44, as11, _ = served
    status, own = as44.json(f"/v1/operators/{USCC_44}")
    assert status == 200
    assert own["province"] == "44" and own["masked"] is False
    assert own["record"]["legal_rep_id_number"] == ID_44 and own["record"]["contact_phone"] == "13800138000"
    assert sorted(own["vehicles"]) == ["vehicle:粤B12345:1", "vehicle:粤B12345:2"]
    assert len(own["licences"]) == 3
    status, other = as11.json(f"/v1/operators/{USCC_44}")
    assert status == 200 and other["masked"] is True
    assert other["record"]["legal_rep_id_number"] == mask_id_number(ID_44)
    assert other["record"]["contact_phone"] == "138****8000"
    assert len(other["record"]["legal_rep_id_number_token"]) == 32

    status, person = as11.json(f"/v1/practitioners/{ID_44}")
    assert status == 200 and ID_44 not in json.dumps(person, ensure_ascii=False)
    token = person["record"]["id_number_token"]
    assert as11.json(f"/v1/practitioners/{token}")[1]["entity_key"] == person["entity_key"]
    assert as44.json(f"/v1/practitioners/{ID_44}")[1]["record"]["id_number"] == ID_44


def test_newest_version_wins_and_stale_changes_are_left_out(served):
    _s, _p, _l, as44, _as11, _ = served
    status, answer = as44.json(f"/v1/operators/{USCC_11}")
    assert status == 200
    assert answer["record"]["name"] == "北京新名称" and answer["seq"] == 5 and answer["version"] == 2


def test_vehicles_by_plate_and_colour(served):
    _s, _p, _l, as44, _as11, _ = served
    status, both = as44.json("/v1/vehicles/粤B12345".replace("粤", "%E7%B2%A4"))
    assert status == 200 and len(both["matches"]) == 2
    status, one = as44.json("/v1/vehicles/%E7%B2%A4B12345?color=2")
    assert status == 200 and one["record"]["plate_color"] == 2
    status, none = as44.json("/v1/vehicles/%E7%B2%A4B12345?color=5")
    assert status == 404 and none["rule"] == "not_found"


def test_verification_decides_at_the_moment_of_the_question(served):
    _s, _p, _l, as44, as11, _ = served
    base = "/v1/licences/{}/verification"
    quoted = urllib.parse.quote
    assert as11.json(base.format(quoted("粤交运许可440300000001")))[1]["status"] == "valid"
    assert as11.json(base.format(quoted("粤交运许可440300000002")))[1]["status"] == "revoked"
    assert as11.json(base.format(quoted("粤交运许可440300000003")))[1]["status"] == "expired"
    assert as11.json(base.format("NOSUCH0001"))[1]["status"] == "unknown"
    verdict = as11.json(base.format(quoted("粤交运许可440300000004")))[1]
    assert ID_44 not in json.dumps(verdict, ensure_ascii=False) and verdict["holder"].startswith("practitioner:tok_")
    assert as44.json(base.format(quoted("粤交运许可440300000004")))[1]["holder"] == f"practitioner:{ID_44}"


def test_lookups_answer_in_order_and_keep_the_rest_of_the_batch(served):
    _s, _p, _l, as44, _as11, _ = served
    status, body = as44.json("/v1/lookups", {"lookups": [
        {"kind": "operator", "id": USCC_44},
        {"kind": "operator", "id": "91440300MA5F00000"},  # check digit wrong
        {"kind": "licence", "id": "粤交运许可440300000002"},
        {"kind": "boat", "id": "x"},  # no such kind ("ship" is one: the water registers)
        "not an object",
        {"kind": "verification", "id": "粤交运许可440300000003"},
        {"kind": "practitioner", "id": "' OR 1=1 --"},
    ]})
    assert status == 200
    answers = body["answers"]
    assert [a["status"] for a in answers] == [200, 400, 200, 400, 400, 200, 400]
    assert answers[1]["rule"] == "invalid_uscc" and "lookups[1]" in answers[1]["error"]
    assert answers[3]["rule"] == "unknown_kind"
    assert answers[5]["answer"]["status"] == "expired"
    assert answers[6]["rule"] == "invalid_id_number"


@pytest.mark.parametrize("path, status, rule", [
    ("/v1/operators/91440300MA5F00000", 400, "invalid_uscc"),
    ("/v1/operators/%27%20OR%201%3D1", 400, "invalid_uscc"),
    ("/v1/vehicles/ABC", 400, "invalid_plate"),
    ("/v1/vehicles/%E7%B2%A4B12345?color=7", 400, "invalid_plate_color"),
    ("/v1/vehicles/%E7%B2%A4B12345?color=blue", 400, "invalid_plate_color"),
    ("/v1/practitioners/440304199001011230", 400, "invalid_id_number"),
    ("/v1/licences/a%22b", 400, "ill_formed_licence_no"),
    ("/v1/licences/..%2F..%2Fetc%2Fpasswd", 400, "ill_formed_licence_no"),
    ("/v1/licences/NOSUCH0001", 404, "not_found"),
    ("/v1/operators/" + "9" * 300, 400, "identifier_too_long"),
])
def test_bad_identifiers_are_refused_naming_the_rule(served, path, status, rule):
    _s, _p, _l, as44, _as11, _ = served
    got, body = as44.json(path)
    assert (got, body["rule"]) == (status, rule), body
    assert body["status"] == status and body["error"]


def test_credentials_and_bodies(served):
    settings, _p, _l, as44, _as11, store = served
    assert as44.json(f"/v1/operators/{USCC_44}", token=None)[1]["rule"] == "no_credential"
    assert as44.json(f"/v1/operators/{USCC_44}", token="rdx_00000000_nope")[0] == 401
    assert as44.json("/v1/lookups", b"{not json")[1]["rule"] == "malformed_body"
    assert as44.json("/v1/lookups", {"lookups": "x"})[0] == 400
    status, body = as44.json("/v1/lookups", {"lookups": [{"kind": "operator", "id": USCC_44}] * 1001})
    assert (status, body["rule"]) == (413, "too_many_identifiers")
    assert as44.json("/v1/openapi.json", token=None)[1]["openapi"].startswith("3.")
    credential, token = store.issue("11", NOW, settings.provinces)
    revoked = Caller(settings, token)
    assert revoked.json(f"/v1/operators/{USCC_44}")[0] == 200
    store.revoke(credential.id, NOW)  # the running service reads the file again when it changes
    status, body = revoked.json(f"/v1/operators/{USCC_44}")
    assert (status, body["rule"]) == (401, "bad_credential")


def test_over_the_rate_is_429(service_settings):
    settings = service_settings
    store = Credentials.load(credentials_file(settings.data_dir))
    _c, token = store.issue("44", NOW, settings.provinces)
    slow = dataclasses.replace(settings, service_rate_per_second=2.0)
    log_path = settings.data_dir / "service.log"
    with running_service(slow, log_path) as proc:
        caller = Caller(slow, token)
        wait_until(lambda: caller.json("/v1/health")[0] == 200, proc, log_path, "the service")
        statuses = [caller.json(f"/v1/operators/{USCC_44}")[0] for _ in range(10)]
    assert 429 in statuses and statuses[0] == 404, statuses


def test_roadx_verify_asks_the_service_with_a_token(served, capsys):
    from deploy.cli import main

    settings, _p, _l, as44, _as11, _store = served
    service = f"http://127.0.0.1:{settings.service_port}/v1/"
    argv = ["--data-dir", str(settings.data_dir), "--service", service, "--token", as44.token, "--json"]
    assert main(["verify", "粤交运许可440300000001", *argv]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "valid"
    assert main(["verify", "粤交运许可440300000002", *argv]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "revoked"
    assert main(["verify", "a'b", *argv]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "unknown" and answer["reason"].startswith("ill_formed_licence_no")
    bad = ["--data-dir", str(settings.data_dir), "--service", service, "--token", "rdx_00000000_x"]
    assert main(["verify", "粤交运许可440300000001", *bad]) == 2
    assert "answered 401" in capsys.readouterr().err


def test_every_request_is_recorded_on_the_audit_topic_with_identifiers_tokenised(served):
    from schemas.codec import ServiceRequestCodec
    from schemas.kafka import read_topics

    settings, _p, _l, as44, _as11, _store = served
    assert as44.json(f"/v1/practitioners/{ID_44}")[0] == 200
    assert as44.json("/v1/operators/91440300MA5F00000")[0] == 400
    assert as44.json(f"/v1/operators/{USCC_44}", token=None)[0] == 401
    codec = ServiceRequestCodec(EmbeddedRegistry())
    topic = settings.topics.national_audit
    records = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        records = [codec.decode(m.value()) for batch in read_topics(
            {"bootstrap.servers": settings.bootstrap_servers}, f"audit-{uuid.uuid4().hex[:6]}", [topic],
            error=AssertionError, what="read the audit topic") for m in batch]
        if any(r["status"] == 401 and r["endpoint"] == "/v1/operators/{uscc}" for r in records):
            break
        time.sleep(0.2)
    assert ID_44 not in json.dumps([r["asked"] for r in records], ensure_ascii=False)
    person = [r for r in records if r["endpoint"] == "/v1/practitioners/{id_number}" and r["party"] == "44"]
    assert person and all(a.startswith("tok_") for r in person for a in r["asked"])
    refused = [r for r in records if r["status"] == 400 and r["asked"] == ["91440300MA5F00000"]]
    assert refused and refused[0]["outcome"] == "invalid" and refused[0]["party"] == "44"
    denied = [r for r in records if r["status"] == 401]
    assert denied and all(r["outcome"] == "denied" and r["party"] == "" for r in denied)
    assert all(r["latency_ms"] >= 0 and r["method"] in ("GET", "POST") for r in records)
