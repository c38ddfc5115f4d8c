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
