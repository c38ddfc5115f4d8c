"""What a change of national.changes does to the service's register, and what a caller may ask:
pure decisions, no broker."""

from __future__ import annotations

import datetime as dt

import pytest

from streams.errors import BadQuestion
from streams.service.openapi import openapi_document
from streams.service.questions import MAX_LOOKUPS, lookup_questions, question
from streams.service.register import Change, entry_key, index_prefix, plan_change, plan_changes

TS = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
USCC = "91440300MA5F00000X"


def event(entity_type, key, record, seq, op="u", province="44"):
    return {"event_id": f"e{seq}", "op": op, "entity_type": entity_type, "entity_key": key,
            "after": None if op == "d" else record, "before": record if op == "d" else None,
            "source": {"province": province, "seq": seq}, "ts_ms": TS}


def licence(holder, number="L-0001"):
    return {"licence_no": number, "licence_type": "operating_permit", "holder_key": holder}


def tokenize(value):
    return f"T{value}"


def apply(store, *events, stale=()):
    changes = [Change(0, n, e, n in stale) for n, e in enumerate(events)]
    for key, value in plan_changes(changes, store.get, tokenize).items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    return store


def test_the_newest_version_wins_and_an_older_or_flagged_one_changes_nothing():
    store = apply({}, event("licence", "licence:a", licence("operator:X"), 5, "c"),
                  event("licence", "licence:a", licence("operator:Y"), 3),  # older
                  event("licence", "licence:a", licence("operator:Z"), 9), stale={2})  # flagged stale
    entry = store[entry_key("licence:a")]
    assert (entry["seq"], entry["version"], entry["record"]["holder_key"]) == (5, 1, "operator:X")
    assert entry["ts_ms"] == int(TS.timestamp() * 1000)


def test_an_update_moves_the_index_entries_with_the_record():
    store = apply({}, event("licence", "licence:a", licence("operator:X"), 1, "c"),
                  event("licence", "licence:a", licence("operator:Y", "L-0002"), 2))
    assert index_prefix("holder", "operator:X") + "licence:a" not in store
    assert index_prefix("holder", "operator:Y") + "licence:a" in store
    assert index_prefix("lic", "L-0001") + "licence:a" not in store
    assert store[entry_key("licence:a")]["version"] == 2


def test_a_delete_leaves_a_tombstone_a_late_older_change_cannot_undo():
    vehicle = {"plate": "粤B12345", "plate_color": 2, "operator_uscc": USCC}
    store = apply({}, event("vehicle", "vehicle:粤B12345:2", vehicle, 1, "c"),
                  event("vehicle", "vehicle:粤B12345:2", vehicle, 4, "d"),
                  event("vehicle", "vehicle:粤B12345:2", vehicle, 3))
    entry = store[entry_key("vehicle:粤B12345:2")]
    assert entry["record"] is None and entry["seq"] == 4 and entry["op"] == "d"
    assert not [k for k in store if k.startswith(index_prefix("opveh", USCC))]


def test_practitioners_are_indexed_by_the_token_of_their_id_number():
    person = {"id_number": "440303199001011237"}
    store = apply({}, event("practitioner", "practitioner:440303199001011237", person, 1, "c"))
    assert index_prefix("idtok", "T440303199001011237") + "practitioner:440303199001011237" in store


def test_a_run_of_changes_sees_its_own_earlier_writes():
    changes = [Change(0, 0, event("licence", "licence:a", licence("operator:X"), 1, "c")),
               Change(0, 1, event("licence", "licence:a", licence("operator:X"), 2))]
    writes = plan_changes(changes, {}.get, tokenize)
    assert writes[entry_key("licence:a")]["version"] == 2
    assert plan_change(Change(0, 0, changes[0].envelope, stale=True), {}.get, tokenize) == {}


@pytest.mark.parametrize("kind, raw, rule", [
    ("operator", "91440300MA5F00000", "invalid_uscc"),
    ("operator", "' OR 1=1 --", "invalid_uscc"),
    ("vehicle", "../../etc", "invalid_plate"),
    ("practitioner", "440304199001011230", "invalid_id_number"),
    ("licence", "a\"b", "ill_formed_licence_no"),
    ("licence", "", "missing_identifier"),
    ("boat", "x", "unknown_kind"),
    ("operator", "9" * 65, "identifier_too_long"),
])
def test_bad_identifiers_name_the_rule(kind, raw, rule):
    with pytest.raises(BadQuestion) as refused:
        question(kind, raw)
    assert (refused.value.status, refused.value.rule) == (400, rule)


def test_identifiers_are_taken_in_canonical_form_and_tokens_as_they_are():
    assert question("vehicle", "粤b·12345", "2").value == "粤B12345"
    assert question("practitioner", "0123456789abcdef0123456789abcdef").token is True
    with pytest.raises(BadQuestion) as refused:
        question("vehicle", "粤B12345", "blue")
    assert refused.value.rule == "invalid_plate_color"


def test_a_batch_keeps_its_good_items_and_refuses_a_bad_body_or_too_many():
    asked = lookup_questions({"lookups": [{"kind": "licence", "id": "L-0001"}, 7, {"kind": "operator"}]})
    assert [type(a).__name__ for a in asked] == ["Question", "BadQuestion", "BadQuestion"]
    assert asked[1].rule == "malformed_item" and "lookups[1]" in asked[1].message
    for body in ([], {"lookups": "x"}, None, {"other": []}):
        with pytest.raises(BadQuestion) as refused:
            lookup_questions(body)
        assert refused.value.rule == "malformed_body"
    with pytest.raises(BadQuestion) as refused:
        lookup_questions({"lookups": [{}] * (MAX_LOOKUPS + 1)})
    assert (refused.value.status, refused.value.rule) == (413, "too_many_identifiers")


def test_the_openapi_document_describes_every_route_and_its_refusals():
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    assert {"/v1/catalog", "/v1/operators/{uscc}", "/v1/vehicles/{plate}", "/v1/practitioners/{id_number}",
            "/v1/licences/{licence_no}", "/v1/licences/{licence_no}/verification", "/v1/lookups",
            "/v1/downloads", "/v1/health", "/v1/openapi.json", "/v1/assists",
            "/v1/licences/verification", "/v1/ships/{ship_id}", "/v1/ships/by-imo/{imo}", "/v1/ships/by-mmsi/{mmsi}",
            "/v1/shipping-enterprises/{uscc}", "/v1/port-enterprises/{uscc}",
            "/v1/waterway-projects/{project_code}", "/v1/registers/{register}/{key}"} == set(doc["paths"])
    scan = doc["paths"]["/v1/licences/verification"]
    assert {"200", "400", "404"} <= set(scan["post"]["responses"]) and "malformed_qr" in scan["post"]["responses"]["400"]["description"]
    assert scan["get"]["parameters"][0]["name"] == "qr"
    assert "unknown_key" in doc["components"]["schemas"]["Verification"]["properties"]["seal"]["enum"]
    assert "413" in doc["paths"]["/v1/lookups"]["post"]["responses"]
    assert {"200", "202", "400", "404", "503"} <= set(doc["paths"]["/v1/assists"]["post"]["responses"])
    assert doc["components"]["securitySchemes"]["party"]["scheme"] == "bearer"


def test_another_provinces_filing_of_a_practitioner_sits_beside_the_home_record():
    key = "practitioner:110105199001011232"
    home = {"id_number": "110105199001011232", "region_code": "110105", "employer_uscc": "91110105MA0000001X"}
    filed = {**home, "employer_uscc": USCC}  # 44 files them working for a 44 operator; still registered in 11
    store = apply({}, event("practitioner", key, home, 5, "c", province="11"),
                  event("practitioner", key, filed, 1, "c", province="44"))  # 44's own seq: not stale
    assert store[entry_key(key)]["province"] == "11" and store[entry_key(key)]["record"] == home
    assert store[entry_key(f"{key}@44")]["record"]["employer_uscc"] == USCC
    assert index_prefix("away", key) + "44" in store
    assert not [k for k in store if k.startswith(index_prefix("idtok", "T110105199001011232")) and "@" in k]
    store = apply(store, event("practitioner", key, filed, 2, "d", province="44"))  # the filing ends
    assert index_prefix("away", key) + "44" not in store and store[entry_key(f"{key}@44")]["record"] is None
    assert store[entry_key(key)]["record"] == home


def test_the_practitioner_answer_lists_the_provinces_they_are_filed_as_working_in():
    from streams.service.answers import Answers
    from schemas.pii import PiiMasker

    class Sorted(dict):
        def items_from(self, prefix):
            return iter(sorted((k, v) for k, v in self.items() if k >= prefix))

    key = "practitioner:110105199001011232"
    home = {"id_number": "110105199001011232", "region_code": "110105", "employer_uscc": "91110105MA0000001X",
            "name": "张三", "qualification_cert_no": "Q", "qualification_types": [], "status": "active"}
    store = apply(Sorted(), event("practitioner", key, home, 5, "c", province="11"),
                  event("practitioner", key, {**home, "employer_uscc": USCC}, 1, "c", province="44"))
    answer = Answers(store, PiiMasker(b"k" * 32)).entity(question("practitioner", "110105199001011232"), "11")
    assert answer["province"] == "11" and answer["record"]["employer_uscc"] == "91110105MA0000001X"
    assert [(f["province"], f["employer_uscc"]) for f in answer["working_away"]] == [("44", USCC)]
