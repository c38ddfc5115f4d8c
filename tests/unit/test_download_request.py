"""A download request from query-string parameters: what is accepted, and each refusal naming its parameter."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from schemas.contract import ENTITY_TYPES
from sinks.downloads import DownloadRequest, parse_download_request
from sinks.errors import DownloadError, SinkError

PARTIES = ("11", "12", "44")
UTC = dt.timezone.utc


def refusal(params, parties=PARTIES) -> DownloadError:
    with pytest.raises(DownloadError) as caught:
        parse_download_request(params, parties)
    return caught.value


def test_a_register_alone_is_every_current_record_as_csv():
    assert parse_download_request({"register": "vehicle"}, PARTIES) == DownloadRequest(
        register="vehicle", format="csv", party=None, changed_since=None, limit=None)


@pytest.mark.parametrize("register", ENTITY_TYPES)
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_every_register_in_every_format(register, fmt):
    request = parse_download_request({"register": register, "format": fmt}, PARTIES)
    assert (request.register, request.format) == (register, fmt)


def test_every_parameter_given():
    request = parse_download_request({"register": "case", "party": "44", "changed_since": "2024-06-01T08:00:00+08:00",
                                      "format": "parquet", "limit": "25"}, iter(PARTIES))
    assert request == DownloadRequest(register="case", format="parquet", party="44",
                                      changed_since=dt.datetime(2024, 6, 1, tzinfo=UTC), limit=25)


@pytest.mark.parametrize("text, moment", [
    ("2024-06-01", dt.datetime(2024, 6, 1, tzinfo=UTC)),
    ("2024-06-01T08:30:00", dt.datetime(2024, 6, 1, 8, 30, tzinfo=UTC)),
    ("2024-06-01 08:30:00.250", dt.datetime(2024, 6, 1, 8, 30, 0, 250_000, tzinfo=UTC)),
    ("2024-06-01T08:30:00Z", dt.datetime(2024, 6, 1, 8, 30, tzinfo=UTC)),
    ("2024-06-01T08:30:00+08:00", dt.datetime(2024, 6, 1, 0, 30, tzinfo=UTC)),
    ("2024-06-01T00:30:00-02:00", dt.datetime(2024, 6, 1, 2, 30, tzinfo=UTC)),
])
def test_changed_since_is_a_date_or_date_time_in_utc(text, moment):
    since = parse_download_request({"register": "operator", "changed_since": text}, PARTIES).changed_since
    assert since == moment and since.utcoffset() == dt.timedelta(0)


def test_the_message_names_the_parameter_and_the_rule():
    error = refusal({"register": "ships"})
    assert isinstance(error, SinkError)
    assert (error.parameter, str(error)) == (
        "register", "register: unknown register 'ships'; one of operator, vehicle, practitioner, licence, case, "
                     "ship, shipping_enterprise, port_enterprise, waterway_project")


@pytest.mark.parametrize("params, parameter, rule", [
    ({}, "register", "required; one of operator"),
    ({"party": "44"}, "register", "required"),
    ({"register": "Vehicle"}, "register", "unknown register 'Vehicle'"),
    ({"register": "vehicles"}, "register", "unknown register"),
    ({"register": "vehicle", "party": "99"}, "party", "unknown party '99'; one of 11, 12, 44"),
    ({"register": "vehicle", "changed_since": "yesterday"}, "changed_since", "not an ISO 8601 date"),
    ({"register": "vehicle", "changed_since": "2024-13-01"}, "changed_since", "not an ISO 8601 date"),
    ({"register": "vehicle", "changed_since": "2024-02-30"}, "changed_since", "not an ISO 8601 date"),
    ({"register": "vehicle", "changed_since": "01/06/2024"}, "changed_since", "not an ISO 8601 date"),
    ({"register": "vehicle", "changed_since": "0001-01-01T00:00:00+01:00"}, "changed_since", "not an ISO 8601"),
    ({"register": "vehicle", "format": "json"}, "format", "unknown format 'json'; one of csv, xlsx, parquet"),
    ({"register": "vehicle", "format": "CSV"}, "format", "unknown format 'CSV'"),
    ({"register": "vehicle", "format": "xls"}, "format", "unknown format"),
    ({"register": "vehicle", "limit": "0"}, "limit", "'0' is not a whole number from 1 to"),
    ({"register": "vehicle", "limit": "-1"}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": "1.5"}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": "1e3"}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": "ten"}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": " 5"}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": "٣"}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": "9" * 19}, "limit", "not a whole number"),
    ({"register": "vehicle", "limit": "9" * 5000}, "limit", "not a whole number"),
    ({"register": "vehicle", "party": ""}, "party", "empty; give a value or leave the parameter out"),
    ({"register": ""}, "register", "empty"),
    ({"register": "vehicle", "format": ""}, "format", "empty"),
    ({"register": "vehicle", "changed_since": ""}, "changed_since", "empty"),
    ({"register": "vehicle", "limit": ""}, "limit", "empty"),
])
def test_bad_values_are_refused_naming_the_parameter(params, parameter, rule):
    error = refusal(params)
    assert error.parameter == parameter
    assert str(error).startswith(f"{parameter}: ") and rule in str(error)


@pytest.mark.parametrize("name", ["registers", "Format", "offset", "page", "sql", "param_party", "register "])
def test_an_unknown_parameter_is_refused(name):
    error = refusal({"register": "vehicle", name: "1"})
    assert error.parameter == repr(name)
    assert str(error) == (f"{name!r}: unknown parameter; the parameters are "
                          "register, party, changed_since, format, limit")


HOSTILE = [
    "vehicle' OR '1'='1", "44'; DROP TABLE roadx.change_log; --", "../../etc/passwd", "..\\..\\boot.ini",
    "44/../12", "{party:String}", "44\x00", "%27%20OR%201=1", "`roadx`.`change_log`", "44 UNION SELECT 1",
    "1; SELECT 1", "$(rm -rf /)", "44\n", "csv\r\nContent-Type: text/html",
]


@pytest.mark.parametrize("parameter", ["register", "party", "changed_since", "format", "limit"])
@pytest.mark.parametrize("value", HOSTILE)
def test_sql_and_path_characters_are_refused_in_every_parameter(parameter, value):
    params = {"register": "vehicle", parameter: value}
    error = refusal(params, parties=(*PARTIES, value))  # even a party list holding the value
    assert error.parameter == parameter and str(error).startswith(f"{parameter}: ")


@pytest.mark.parametrize("value", ["44' OR '1'='1", "../44", "4 4", "44;", ""])
def test_a_party_list_holding_odd_codes_still_lets_none_of_them_through(value):
    error = refusal({"register": "vehicle", "party": value}, parties=(*PARTIES, value))
    assert error.parameter == "party"


@pytest.mark.parametrize("name", ["a' OR '1'='1", "../x", "x\ny"])
def test_an_odd_parameter_name_is_shown_quoted(name):
    assert refusal({"register": "vehicle", name: "1"}).parameter == repr(name)


def test_a_long_value_is_cut_in_the_message():
    error = refusal({"register": "x" * 10_000})
    assert len(str(error)) < 200 and "…" in str(error)


def test_the_request_is_frozen():
    request = parse_download_request({"register": "vehicle"}, PARTIES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.register = "case"  # type: ignore[misc]


@pytest.mark.parametrize("fields, parameter", [
    ({"register": "ships"}, "register"),
    ({"register": "vehicle", "format": "pdf"}, "format"),
    ({"register": "vehicle", "party": "44'"}, "party"),
    ({"register": "vehicle", "changed_since": dt.datetime(2024, 6, 1)}, "changed_since"),
    ({"register": "vehicle", "limit": 0}, "limit"),
    ({"register": "vehicle", "limit": True}, "limit"),
    ({"register": "vehicle", "limit": 10**18}, "limit"),
])
def test_a_request_made_by_hand_is_checked_too(fields, parameter):
    with pytest.raises(DownloadError) as caught:
        DownloadRequest(**fields)
    assert caught.value.parameter == parameter
