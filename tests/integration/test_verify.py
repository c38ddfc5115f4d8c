"""``roadx verify`` against a real chDB store, opened directly (no stack running)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from deploy.cli import main
from schemas import contract
from schemas.settings import Settings
from schemas.pii import PiiMasker
from sinks.rows import CHANGE_LOG_COLUMNS, change_log_row
from sinks.store import ensure_schema, open_store
from sinks.verify import verify_licence

pytestmark = pytest.mark.integration

FAR = dt.date(2099, 12, 31)
LICENCES = {  # licence_no -> (type, status code, valid_until, expected answer)
    "津交运管许可德字120128300595号": ("operating_permit", "valid", FAR, "valid"),
    "120101000063": ("transport_cert", "suspended", FAR, "suspended"),
    "440300000001": ("transport_cert", "revoked", FAR, "revoked"),
    "440300000002": ("transport_cert", "expired", FAR, "expired"),
    "440300000003": ("transport_cert", "valid", dt.date(2020, 1, 1), "expired"),
    "11010519491231002X": ("qualification", "valid", FAR, "valid"),
}


def licence_event(seq, number, ltype, status, until):
    holder = "practitioner:11010519491231002X" if ltype == "qualification" else "operator:91120000600037341L"
    record = {"licence_no": number, "licence_type": ltype, "holder_key": holder, "issuer_region_code": "120128",
              "valid_from": dt.date(2019, 1, 1), "valid_until": until, "status": status}
    return {"event_id": str(uuid.uuid4()), "op": "c", "entity_type": "licence",
            "entity_key": contract.entity_key("licence", record), "before": None, "after": record,
            "source": {"province": "12", "system": "yz12", "table": "licences", "seq": seq, "snapshot": False},
            "ts_ms": dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=seq)}


def store_holding(data_dir, licences):
    """Settings of a store under ``data_dir`` holding ``licences`` (licence_no -> (type, status,
    valid_until, ...)), written as the sink writes them."""
    settings = Settings(data_dir=data_dir)
    pii = PiiMasker(settings.pii_key())
    rows = [change_log_row(licence_event(seq, number, *spec[:3]), 1, "national.changes", 0, seq, pii)
            for seq, (number, spec) in enumerate(licences.items())]
    client = open_store(settings)
    try:
        ensure_schema(client, settings.clickhouse_database)
        client.insert("change_log", rows, column_names=CHANGE_LOG_COLUMNS, database=settings.clickhouse_database)
    finally:
        client.close()
    return settings


@pytest.fixture
def store(tmp_path):
    """A store holding one licence per status."""
    return store_holding(tmp_path, LICENCES)


def test_each_status_is_answered_from_the_store(store):
    client = open_store(store)
    try:
        answers = {n: verify_licence(client, "roadx", n, PiiMasker(store.pii_key())) for n in LICENCES}
    finally:
        client.close()
    assert {n: a.status for n, a in answers.items()} == {n: spec[3] for n, spec in LICENCES.items()}
    permit = answers["津交运管许可德字120128300595号"]
    assert (permit.licence_type, permit.issuing_province, permit.valid_until) == ("operating_permit", "12", "2099-12-31")


def test_qualification_holder_is_shown_masked(store, capsys):
    assert main(["verify", "--data-dir", str(store.data_dir), "11010519491231002X", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "valid" and answer["licence_type"] == "qualification"
    assert "11010519491231002X" not in answer["holder"] and answer["holder"].startswith("practitioner:tok_")


@pytest.mark.parametrize("number", ["x' OR '1'='1", "440300000001' --", "1; DROP TABLE roadx.change_log",
                                    "440300000009", "%", "120101********0063"])
def test_injection_or_unknown_number_is_unknown(store, capsys, number):
    assert main(["verify", "--data-dir", str(store.data_dir), number]) == 1
    assert "unknown" in capsys.readouterr().out
    client = open_store(store)
    try:
        assert client.command("SELECT count() FROM roadx.change_log") == len(LICENCES)
    finally:
        client.close()


SEALED_AT = dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
ID_12 = "11010519491231002X"


@pytest.fixture
def sealed_store(tmp_path):
    """A store holding sealed, tampered, stray-keyed and unsealed licences of party 12, whose key the hub
    registered; the QR payloads printed on two of them."""
    from schemas import seals
    from schemas.keys import PartyKeys

    settings = Settings(data_dir=tmp_path / "hub")
    key = PartyKeys(tmp_path / "parties" / "12", "12").init(SEALED_AT - dt.timedelta(days=1))
    stray = PartyKeys(tmp_path / "stray" / "12", "12").init(SEALED_AT - dt.timedelta(days=1))
    settings.hub_keys().register(key.registration(), SEALED_AT, settings.provinces)

    def permit(number, holder="operator:91120000600037341L", ltype="operating_permit"):
        return {"licence_no": number, "licence_type": ltype, "holder_key": holder, "issuer_region_code": "120128",
                "valid_from": dt.date(2023, 1, 1), "valid_until": FAR, "status": "valid", "seal": None}

    good = seals.seal_licence(permit("津交运管许可德字120128300601号"), key, SEALED_AT)
    original = seals.seal_licence(permit("津交运管许可德字120128300602号"), key, SEALED_AT)
    personal = seals.seal_licence(permit(ID_12, f"practitioner:{ID_12}", "qualification"), key, SEALED_AT)
    records = [good, {**original, "valid_until": dt.date(2199, 1, 1)},
               seals.seal_licence(permit("津交运管许可德字120128300603号"), stray, SEALED_AT),
               permit("津交运管许可德字120128300604号"), personal]
    pii = PiiMasker(settings.pii_key())
    rows = []
    for seq, record in enumerate(records, start=1):
        event = licence_event(seq, "x", "operating_permit", "valid", FAR)
        event.update(after=record, entity_key=contract.entity_key("licence", record))
        rows.append(change_log_row(event, 1, "national.changes", 0, seq, pii))
    client = open_store(settings)
    try:
        ensure_schema(client, settings.clickhouse_database)
        client.insert("change_log", rows, column_names=CHANGE_LOG_COLUMNS, database=settings.clickhouse_database)
    finally:
        client.close()
    return settings, {"good": seals.qr_payload(good), "original": seals.qr_payload(original),
                      "personal": seals.qr_payload(personal)}


def test_the_store_answers_each_seal_beside_the_status(sealed_store):
    settings, _qr = sealed_store
    client = open_store(settings)
    try:
        answers = {n: verify_licence(client, "roadx", n, PiiMasker(settings.pii_key()),
                                     public_key_for=settings.hub_keys().public_key)
                   for n in ("津交运管许可德字120128300601号", "津交运管许可德字120128300602号",
                             "津交运管许可德字120128300603号", "津交运管许可德字120128300604号", ID_12)}
        kept = client.query("SELECT seal_key_id, seal_signature FROM roadx.current_licences "
                            "WHERE licence_type = 'qualification'").result_rows
    finally:
        client.close()
    assert [(a.status, a.seal) for a in answers.values()] == [
        ("valid", "valid"), ("valid", "invalid"), ("valid", "unknown_key"), ("valid", "unsealed"),
        ("valid", "unchecked")]
    assert answers[ID_12].seal_key_id.startswith("12-") and "personal number" in answers[ID_12].seal_reason
    assert kept[0][0].startswith("12-") and kept[0][1] is None  # no signature to test guesses of the masked ID against


def test_roadx_verify_answers_the_seal_and_exits_by_it(sealed_store, capsys):
    settings, _qr = sealed_store
    base = ["verify", "--data-dir", str(settings.data_dir), "--json"]
    assert main([*base, "津交运管许可德字120128300601号"]) == 0
    assert json.loads(capsys.readouterr().out)["seal"] == "valid"
    assert main([*base, "津交运管许可德字120128300602号"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert (answer["status"], answer["seal"]) == ("valid", "invalid") and "changed after sealing" in answer["seal_reason"]
    assert main(["verify", "--data-dir", str(settings.data_dir), "津交运管许可德字120128300604号"]) == 0
    assert "电子印章 seal" in capsys.readouterr().out


def test_roadx_verify_checks_a_scanned_qr_against_the_store(sealed_store, capsys):
    settings, qr = sealed_store
    base = ["verify", "--data-dir", str(settings.data_dir), "--json", "--qr"]
    assert main([*base, qr["good"]]) == 0
    assert json.loads(capsys.readouterr().out)["seal"] == "valid"
    assert main([*base, qr["personal"]]) == 0  # rebuilt from the scanned number: the store keeps it masked
    answer = json.loads(capsys.readouterr().out)
    assert answer["seal"] == "valid" and ID_12 not in answer["holder"]
    assert main([*base, qr["original"]]) == 1  # printed before the register's licence was edited
    assert json.loads(capsys.readouterr().out)["seal"] == "invalid"
    assert main([*base, "RDXL1:not-a-payload"]) == 2
    assert "malformed_qr" in capsys.readouterr().err
