"""The initial load's generator: valid, distinct entities from their index alone, any stretch made anew."""

from __future__ import annotations

import pytest

from producers.errors import GeneratorConfigError
from producers.synthetic.initial_load import initial_load
from schemas import contract
from streams import rules
from streams.checks import Facts

PROVINCES = ("44", "11", "65")


def test_every_event_passes_the_stages_rules_without_an_error_and_names_a_distinct_entity():
    events = list(initial_load(PROVINCES, 0, 3_000, seed=7))
    keys = [event["entity_key"] for _province, event in events]
    assert len(set(keys)) == len(keys) == 3_000
    assert len({event["event_id"] for _p, event in events}) == 3_000
    registered: set[str] = set()
    for province, event in events:
        record = event["after"]
        assert event["source"]["province"] == province and event["op"] == "r"
        assert event["entity_key"] == contract.entity_key(event["entity_type"], record)
        found = rules.evaluate(event["entity_type"], record, Facts(lambda k: "x" if k in registered else None,
                                                                   None, province))
        assert [f.rule.code for f in found] == [], (event["entity_key"], [f.text for f in found])
        registered.add(event["entity_key"])  # a vehicle's operator came before it


def test_a_stretch_of_the_load_is_the_same_events_as_that_part_of_the_whole():
    whole = list(initial_load(PROVINCES, 0, 500, seed=3))
    assert list(initial_load(PROVINCES, 200, 150, seed=3)) == whole[200:350]
    assert [e["source"]["seq"] for p, e in whole if p == "11"] == sorted(e["source"]["seq"] for p, e in whole
                                                                          if p == "11")


def test_one_in_ten_entities_of_a_province_is_an_operator_owning_the_nine_after_it():
    events = [event for province, event in initial_load(("44",), 0, 20)]
    assert [e["entity_type"] for e in events] == (["operator"] + ["vehicle"] * 9) * 2
    assert {e["after"]["operator_uscc"] for e in events[1:10]} == {events[0]["after"]["uscc"]}


@pytest.mark.parametrize("provinces,first,count", [((), 0, 1), (("CJ",), 0, 1), (("44",), -1, 1), (("44",), 0, -1)])
def test_a_load_for_no_province_or_a_negative_stretch_is_refused(provinces, first, count):
    with pytest.raises(GeneratorConfigError):
        list(initial_load(provinces, first, count))


def test_a_province_out_of_plates_is_refused_by_name():
    with pytest.raises(GeneratorConfigError, match="province 44: more than 2,400,000 vehicles"):
        list(initial_load(("44",), 26_666_670, 2))
