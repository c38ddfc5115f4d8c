"""A case naming a ship no register holds yet waits for one (``streams.waiting``): the stage keeps
a waiting entry, ``late_routes`` delivers the first version of each stage it reached once the
ownership table holds the ship, and each (case, stage, target) is still delivered once."""

from __future__ import annotations

import base64

import pytest

from schemas import topics as th
from streams import routing
from streams.changes import StateChanges
from streams.handover import Handover, late_label, late_scope, written_origins
from streams.pipeline import ENTITY, OWNER, WAITING
from streams.waiting import WaitingIndex, late_routes

from test_pipeline import TOPICS, case, event, headers
from test_stage_water import registered_enterprise, run, ship, signed, ctx  # noqa: F401 - ctx is a fixture

SHIP = "ship:CN20190001"
CASE_KEY = "case:粤深交执2024001"
WAIT_KEY = routing.wait_key(SHIP, CASE_KEY)


def ship_case(**overrides):
    return case(involved_plate=None, involved_ship_id="CN20190001", **overrides)


def register_ship(ctx, state):
    registered_enterprise(ctx, state)
    run(ctx, state, event("ship", ship(), province="CJ"))
    assert state[OWNER + SHIP] == "CJ/420100"


def route_late(ctx, state):
    """``late_routes`` over every waiting entry in ``state``, its changes applied to ``state``."""
    entries = [(k, v) for k, v in state.items() if k.startswith(routing.WAIT) and v is not None]
    late = late_routes(entries, lambda key: state.get(OWNER + key), state.get, ctx)
    for key, value in late.changes.values.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return late


def test_a_case_naming_an_unregistered_ship_keeps_a_waiting_entry_with_its_bytes(ctx):
    state = {}
    ev = event("case", ship_case())
    result = run(ctx, state, ev)
    assert result.routed == {}
    entry = state[WAIT_KEY]
    assert entry["registry"] == SHIP and entry["case"] == CASE_KEY and entry["field"] == "involved_ship_id"
    assert (entry["source"], entry["partition"]) == ("44", 0)
    assert [(stage, base64.b64decode(value)) for stage, value in entry["stages"]] == [("filed", signed(ev))]
    assert state[ENTITY + CASE_KEY][WAITING] == [SHIP]
    assert (0, WAIT_KEY, entry) in result.changes  # written to the case's partition's changelog


def test_once_the_ship_is_registered_the_case_is_routed_there_once(ctx):
    state = {}
    ev = event("case", ship_case())
    run(ctx, state, ev)
    assert route_late(ctx, state).sends == []  # still nowhere to go: the entry stays
    assert WAIT_KEY in state

    register_ship(ctx, state)
    late = route_late(ctx, state)
    (send,) = late.sends
    assert send.out.topic == TOPICS.province_inbound("CJ") and send.out.value == signed(ev)
    assert send.out.key == CASE_KEY.encode()
    assert headers(send.out) == {
        th.ROUTED_FROM: b"44", th.ROUTED_TO: b"CJ", th.ROUTED_REASON: b"involved_ship_id",
        th.ROUTED_CORRELATION_ID: routing.correlation_id("44", CASE_KEY).encode(), th.ROUTED_STAGE: b"filed",
        th.ROUTED_REGION: b"420100"}
    assert send.label == late_label(("44", 0), "CJ", "filed", CASE_KEY) and send.scope == ("44", 0)
    assert late.routed == {("44", "CJ"): 1}
    assert WAIT_KEY not in state
    assert state[ENTITY + CASE_KEY]["routes"] == {"CJ": ["filed"]} and WAITING not in state[ENTITY + CASE_KEY]
    assert late.changes.scopes[WAIT_KEY] == late.changes.scopes[ENTITY + CASE_KEY] == ("44", 0)
    assert route_late(ctx, state).sends == []


def test_after_a_late_route_the_case_follows_the_usual_way_without_repeating_a_stage(ctx):
    state = {}
    run(ctx, state, event("case", ship_case()))
    register_ship(ctx, state)
    route_late(ctx, state)
    same_stage = run(ctx, state, event("case", ship_case(penalty_cents=50_000)))
    assert same_stage.counts == {("accepted", "44"): 1} and same_stage.routed == {}
    later = run(ctx, state, event("case", ship_case(stage="decided", penalty_cents=50_000)))
    assert later.routed == {("44", "CJ"): 1}
    assert state[ENTITY + CASE_KEY]["routes"] == {"CJ": ["filed", "decided"]}


def test_each_stage_reached_while_waiting_is_delivered_in_order_as_if_the_ship_had_come_first(ctx):
    state = {}
    filed = event("case", ship_case())
    run(ctx, state, filed)
    run(ctx, state, event("case", ship_case(penalty_cents=1_000)))  # the same stage: its first version stands
    investigating = event("case", ship_case(stage="investigating"))
    run(ctx, state, investigating)
    deleted = event("case", ship_case(stage="investigating"), op="d")
    run(ctx, state, deleted)
    assert [stage for stage, _value in state[WAIT_KEY]["stages"]] == ["filed", "investigating", "deleted"]
    register_ship(ctx, state)
    sends = route_late(ctx, state).sends
    assert [s.out.value for s in sends] == [signed(filed), signed(investigating), signed(deleted)]
    assert [headers(s.out)[th.ROUTED_STAGE] for s in sends] == [b"filed", b"investigating", b"deleted"]
    assert len({s.label for s in sends}) == 3
    assert state[ENTITY + CASE_KEY]["routes"] == {"CJ": ["filed", "investigating", "deleted"]}


def test_a_case_routed_the_usual_way_stops_waiting(ctx):
    state = {}
    run(ctx, state, event("case", ship_case()))
    register_ship(ctx, state)
    # the case's next version arrives before the waiting entry is looked at: routed as usual, entry cleared
    result = run(ctx, state, event("case", ship_case(stage="investigating")))
    assert result.routed == {("44", "CJ"): 1}
    assert (0, WAIT_KEY, None) in result.changes and state[WAIT_KEY] is None
    assert WAITING not in state[ENTITY + CASE_KEY]


def test_a_ship_registered_by_the_cases_own_province_ends_the_wait_without_a_route(ctx):
    state = {OWNER + SHIP: "44/440300"}
    state[WAIT_KEY] = {"registry": SHIP, "case": CASE_KEY, "field": "involved_ship_id", "source": "44",
                       "partition": 0, "stages": [["filed", base64.b64encode(b"x").decode()]]}
    state[ENTITY + CASE_KEY] = {"seq": 1, WAITING: [SHIP]}
    late = route_late(ctx, state)
    assert late.sends == [] and WAIT_KEY not in state and WAITING not in state[ENTITY + CASE_KEY]


def test_a_late_label_names_its_partition_and_is_never_taken_for_a_source_messages():
    label = late_label(("44", 7), "CJ", "filed", "case:粤:1:2:3")  # a key whose tail looks like an origin's
    assert late_scope(label) == ("44", 7)
    inbound = TOPICS.province_inbound("CJ")
    assert written_origins([(inbound, label)], {("44", 7): -1}, TOPICS.province_of_changes_topic) == {}
    source = f"{TOPICS.province_changes('44')}:7:120:0"
    assert written_origins([(inbound, source)], {("44", 7): -1}, TOPICS.province_of_changes_topic) != {}
    assert late_scope(source) is None and late_scope("late/44/x/CJ") is None


def test_late_routes_read_back_are_left_out_once_and_then_forgotten():
    handover = Handover(TOPICS, positions=None)
    handover.take(("44", 0), 10, {})
    handover.take(("11", 0), 3, {})
    label = late_label(("44", 0), "CJ", "filed", CASE_KEY)
    other = late_label(("31", 0), "CJ", "filed", CASE_KEY)  # a partition not taken
    inbound = TOPICS.province_inbound("CJ")
    assert handover.found([(inbound, label), (inbound, other)], [("44", 0), ("11", 0)]) == 1
    assert handover.written == {("44", 0): {(inbound, label)}}
    handover.forget_late()
    assert handover.written == {}


def test_the_index_marks_due_what_the_registry_places_and_what_a_partition_taken_holds():
    index = WaitingIndex()
    entry = {"registry": SHIP, "source": "44", "partition": 0}
    index.take([("44", 0)], [(WAIT_KEY, entry), ("wait:ship:X|case:2", {**entry, "partition": 1})])
    assert len(index) == 1 and index.take_due() == [WAIT_KEY] and index.take_due() == []
    index.registered(["operator:1", SHIP])
    assert index.take_due() == [WAIT_KEY]
    written = StateChanges()
    written.put(("44", 0), WAIT_KEY, None)
    written.put(("11", 2), "wait:ship:Y|case:3", {"registry": "ship:Y"})
    index.wrote(written)
    index.registered([SHIP, "ship:Y"])
    assert index.take_due() == ["wait:ship:Y|case:3"]
    index.drop(("11", 2))
    index.registered(["ship:Y"])
    assert len(index) == 0 and index.take_due() == []


@pytest.mark.parametrize("op", ["c", "d"])
def test_case_routes_wait_only_for_entities_no_identifier_places(op):
    ev = event("case", case(involved_ship_id="CN_UNKNOWN", involved_plate="京A12345"), op=op)
    routes = routing.case_routes(ev, "44", frozenset({"44", "11"}), lambda key: None, None)
    assert routes.waiting == {"ship:CN_UNKNOWN": "involved_ship_id"}
    assert set(routes.deliver) == {"11"}  # the plate names its province
