"""Sealed licences at the information service, on the real broker: the seal answered beside
the status, a scanned QR payload checked against the register, and the refusals of bad payloads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse

import pytest

from schemas import seals
from schemas.credentials import Credentials, credentials_file
from schemas.keys import HubKeys, PartyKeys

from test_service import ID_44, NOW, TODAY, Caller, change, licence, new_settings, publish, running_service, wait_until

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Sealed:
    caller44: Caller
    caller11: Caller
    key_id: str
    old_qr: str
    new_qr: str
    valid_qr: str


@pytest.fixture(scope="module")
def sealed(broker, tmp_path_factory):
    settings = new_settings(broker.bootstrap_servers, tmp_path_factory.mktemp("service-seals"))
    sides = tmp_path_factory.mktemp("parties")
    hub = HubKeys(settings.data_dir / "keys")
    key = PartyKeys(sides / "44", "44").init(NOW - dt.timedelta(days=1))
    revoked = PartyKeys(sides / "44-old", "44").init(NOW - dt.timedelta(days=1))
    stray = PartyKeys(sides / "44-stray", "44").init(NOW - dt.timedelta(days=1))  # never registered
    for k in (key, revoked):
        hub.register(k.registration(), NOW, settings.provinces)
    hub.revoke(revoked.key_id, NOW)

    def seal(record, with_key=key, at=NOW):
        return seals.seal_licence({**record, "seal": None}, with_key, at)

    good = seal(licence("粤交运许可440300000101"))
    renewed_v1 = seal(licence("粤交运许可440300000107"))
    renewed_v2 = seal({**renewed_v1, "valid_until": TODAY + dt.timedelta(days=900)})
    personal = seal(licence("粤交运许可440300000106", holder=f"practitioner:{ID_44}"))
    publish(settings, [
        change("licence", good, "44"),
        change("licence", {**seal(licence("粤交运许可440300000102")), "holder_key": "operator:91440300MA5FXXXXXX"}, "44"),
        change("licence", seal(licence("粤交运许可440300000103"), stray), "44"),
        change("licence", {**licence("粤交运许可440300000104"), "seal": None}, "44"),
        change("licence", seal(licence("粤交运许可440300000105"), revoked, NOW + dt.timedelta(hours=1)), "44"),
        change("licence", personal, "44"),
        change("licence", renewed_v1, "44", seq=1),
        change("licence", renewed_v2, "44", seq=2, op="u"),
    ])
    store = Credentials.load(credentials_file(settings.data_dir))
    _c, token44 = store.issue("44", NOW, settings.provinces)
    _c, token11 = store.issue("11", NOW, settings.provinces)
    log_path = settings.data_dir / "service.log"
    with running_service(settings, log_path) as proc:
        caller = Caller(settings)
        wait_until(lambda: caller.json("/v1/health")[0] == 200, proc, log_path, "the register to catch up")
        yield Sealed(Caller(settings, token44), Caller(settings, token11), key.key_id, seals.qr_payload(renewed_v1),
                     seals.qr_payload(renewed_v2), seals.qr_payload(good))


@pytest.mark.parametrize("number, seal, why", [
    ("粤交运许可440300000101", "valid", None),
    ("粤交运许可440300000102", "invalid", "changed after sealing"),
    ("粤交运许可440300000103", "unknown_key", "unknown_key"),
    ("粤交运许可440300000104", "unsealed", "no seal"),
    ("粤交运许可440300000105", "unknown_key", "revoked_key"),
    ("粤交运许可440300000107", "valid", None),
])
def test_verification_answers_the_seal_beside_the_status(sealed, number, seal, why):
    status, answer = sealed.caller11.json(f"/v1/licences/{urllib.parse.quote(number)}/verification")
    assert status == 200 and answer["status"] == "valid"
    assert answer["seal"] == seal, answer
    assert (answer["seal_reason"] is None) if why is None else (why in answer["seal_reason"])
    if seal != "unsealed":
        assert answer["seal_key_id"].startswith("44-") and answer["sealed_at"].endswith("Z")


def test_a_scanned_qr_is_checked_against_the_register(sealed):
    status, answer = sealed.caller11.json("/v1/licences/verification", {"qr": sealed.valid_qr})
    assert status == 200 and (answer["status"], answer["seal"], answer["seal_key_id"]) == ("valid", "valid", sealed.key_id)
    status, answer = sealed.caller11.json("/v1/licences/verification?qr=" + urllib.parse.quote(sealed.new_qr))
    assert status == 200 and answer["seal"] == "valid"
    # printed before the licence was renewed: the register's licence is no longer what was sealed
    status, answer = sealed.caller11.json("/v1/licences/verification", {"qr": sealed.old_qr})
    assert status == 200 and answer["seal"] == "invalid" and answer["status"] == "valid"
    status, answer = sealed.caller44.json("/v1/lookups", {"lookups": [
        {"kind": "verification", "id": "粤交运许可440300000101"}]})
    assert status == 200 and answer["answers"][0]["answer"]["seal"] == "valid"


@pytest.mark.parametrize("body, status, rule", [
    ({"qr": "RDXL1:粤交运许可440300000101:44-0123abcd"}, 400, "malformed_qr"),
    ({"qr": "https://example.org/licence/1"}, 400, "malformed_qr"),
    ({"qr": 42}, 400, "malformed_body"),
    (b"not json", 400, "malformed_body"),
])
def test_malformed_payloads_are_refused_with_their_rule(sealed, body, status, rule):
    answer_status, answer = sealed.caller11.json("/v1/licences/verification", body)
    assert (answer_status, answer["rule"]) == (status, rule), answer


def test_a_payload_of_an_unregistered_licence_is_not_found(sealed):
    unknown = sealed.valid_qr.replace("440300000101", "440300000999")
    status, answer = sealed.caller11.json("/v1/licences/verification", {"qr": unknown})
    assert status == 404 and answer["rule"] == "not_found"
    assert sealed.caller11.json("/v1/licences/verification?qr=x")[1]["rule"] == "malformed_qr"


def test_another_partys_masked_licence_shows_no_signature(sealed):
    number = urllib.parse.quote("粤交运许可440300000106")
    status, theirs = sealed.caller11.json(f"/v1/licences/{number}")
    assert status == 200 and theirs["masked"] is True
    assert set(theirs["record"]["seal"]) == {"key_id", "sealed_at"}
    status, own = sealed.caller44.json(f"/v1/licences/{number}")
    assert status == 200 and own["record"]["seal"]["signature"]
    status, answer = sealed.caller11.json(f"/v1/licences/{number}/verification")
    assert answer["seal"] == "valid" and ID_44 not in str(answer)
