"""A province's daily files, loaded by ``roadx produce files``, through the real stream stage,
answered by the information service with the right records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse

import pytest

from deploy.broker import free_port
from schemas.credentials import Credentials, credentials_file
from streams.worker import run as run_stream_worker
from test_adapter_to_store import (Background, operator_rows, produce_files, settings,  # noqa: F401 (fixture)
                                   vehicle_rows, write_operators_xlsx, write_vehicles_gbk_csv)
from test_service import Caller, running_service, wait_until

pytestmark = pytest.mark.integration


def test_files_loaded_by_produce_files_are_answered_by_the_service(monkeypatch, settings, tmp_path):  # noqa: F811
    operators = operator_rows()
    vehicles = vehicle_rows([row[0] for row in operators])
    assert produce_files(monkeypatch, settings, "operator",  # no sink here: no hub to answer with a receipt
                         write_operators_xlsx(tmp_path / "经营业户_20240601.xlsx", operators), "0") == 0
    assert produce_files(monkeypatch, settings, "vehicle",
                         write_vehicles_gbk_csv(tmp_path / "营运车辆_20240601.csv", vehicles), "0") == 0
    served = dataclasses.replace(settings, service_port=free_port(), service_rate_per_second=1000)
    now = dt.datetime.now(dt.timezone.utc)
    _c, own = Credentials.load(credentials_file(served.data_dir)).issue("44", now, served.provinces)
    _c, other = Credentials.load(credentials_file(served.data_dir)).issue("11", now, served.provinces)
    as44, as11 = Caller(served, own), Caller(served, other)
    log_path = tmp_path / "service.log"
    worker = Background("stream-worker", lambda stop: run_stream_worker(settings, stop))
    try:
        with running_service(served, log_path) as proc:
            last_plate = urllib.parse.quote(vehicles[-1][0])
            wait_until(lambda: as44.json(f"/v1/vehicles/{last_plate}?color=2")[0] == 200, proc, log_path,
                       "the last vehicle of the file to be answered")
            for uscc, name, region, permit, scope, _status in operators:
                status, answer = as11.json(f"/v1/operators/{uscc}")
                assert status == 200 and answer["province"] == "44"
                assert answer["record"] == {
                    "uscc": uscc, "name": name, "region_code": region, "permit_no": permit, "business_scope": scope,
                    "status": "active", "legal_rep_id_number": None, "legal_rep_id_number_token": None,
                    "contact_phone": None, "contact_phone_token": None}
                assert sorted(answer["vehicles"]) == sorted(
                    f"vehicle:{v[0]}:2" for v in vehicles if v[3] == uscc)
            for i, (plate, _color, _cls, owner, seats, tonnage, _status) in enumerate(vehicles, start=1):
                status, answer = as44.json(f"/v1/vehicles/{urllib.parse.quote(plate)}")
                assert status == 200 and answer["masked"] is False
                record = answer["record"]
                assert (record["plate"], record["plate_color"], record["operator_uscc"]) == (plate, 2, owner)
                assert record["seats"] == (int(seats) if seats else None)
                assert record["tonnage_kg"] == ((18 + i) * 1000 if tonnage else None)
    finally:
        worker.stop()
