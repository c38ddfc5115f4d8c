"""Planning changes from polled rows (creates, updates, deletes, rejects) and the adapter's state file."""

from __future__ import annotations

import json

import pytest

from producers.database.adapter import DbAdapterConfig, plan_changes
from producers.database.source import Position
from producers.database.store import AdapterStore, Known
from producers.errors import ProducerError

TOPIC = "prov.44.changes"


def operator(uscc="91350100M000100Y43", name="甲运输", status="active", **extra):
    return {"uscc": uscc, "name": name, "region_code": "440100", "status": status, **extra}


def config(**overrides) -> DbAdapterConfig:
    values = dict(province="44", url="sqlite:///x.db", table="operators", entity="operator", key="id",
                  cursor="version", deleted_column="deleted")
    values.update(overrides)
    return DbAdapterConfig(**values)


def plan(rows, known=None, cfg=None, next_seq=1):
    known = known or {}
    encode = lambda event: json.dumps(event, ensure_ascii=False).encode()  # noqa: E731
    return plan_changes(cfg or config(), rows, known.get, encode, TOPIC, next_seq, now_ms=1000)


def events(result):
    return [json.loads(value) for _topic, _key, value in result.entries]


def test_a_key_seen_first_is_a_create_and_later_an_update_with_its_before_image():
    first = plan([{"id": 1, "version": 1, **operator()}])
    created = events(first)[0]
    assert created["op"] == "c" and created["before"] is None and created["entity_key"] == "operator:91350100M000100Y43"
    second = plan([{"id": 1, "version": 2, **operator(name="乙运输")}], known=first.known, next_seq=first.next_seq)
    updated = events(second)[0]
    assert updated["op"] == "u" and updated["before"]["name"] == "甲运输" and updated["after"]["name"] == "乙运输"
    assert updated["source"]["seq"] == created["source"]["seq"] + 1


def test_two_versions_of_one_key_in_one_batch_are_a_create_then_an_update():
    result = plan([{"id": 1, "version": 1, **operator()}, {"id": 1, "version": 2, **operator(status="closed")}])
    assert [e["op"] for e in events(result)] == ["c", "u"]
    assert [e["source"]["seq"] for e in events(result)] == [1, 2] and result.next_seq == 3


def test_a_set_soft_delete_flag_deletes_the_last_record_sent():
    known = {"1": Known("operator:91350100M000100Y43", operator())}
    result = plan([{"id": 1, "version": 5, "deleted": 1, **operator(name="changed")}], known=known)
    deleted = events(result)[0]
    assert deleted["op"] == "d" and deleted["after"] is None and deleted["before"]["name"] == "甲运输"
    assert result.known == {"1": None}


def test_a_soft_deleted_row_never_sent_is_ignored():
    result = plan([{"id": 9, "version": 1, "deleted": "Y", **operator()}])
    assert result.entries == [] and result.ignored == 1 and result.position == Position(1, 9)


def test_a_changed_natural_key_deletes_the_old_entity_and_creates_the_new_one():
    known = {"1": Known("operator:91350100M000100Y43", operator())}
    result = plan([{"id": 1, "version": 2, **operator(uscc="91110000600037341L")}], known=known)
    assert [(e["op"], e["entity_key"]) for e in events(result)] == [
        ("d", "operator:91350100M000100Y43"), ("c", "operator:91110000600037341L")]
    assert len({e["event_id"] for e in events(result)}) == 2


def test_a_row_breaking_a_rule_is_rejected_and_the_rest_of_the_batch_flows():
    rows = [{"id": 1, "version": 1, **operator()}, {"id": 2, "version": 2, **operator(uscc="91110000600037341L", name=None)},
            {"id": 3, "version": 3, **operator(uscc="91440300MA5DB8XK3P")}]
    result = plan(rows)
    assert [e["after"]["uscc"] for e in events(result)] == ["91350100M000100Y43", "91440300MA5DB8XK3P"]
    (problem, raw), = result.rejected
    assert (problem.key, problem.field, problem.rule) == ("2", "name", "required") and raw["id"] == 2
    assert result.position == Position(3, 3) and "2" not in result.known


def test_a_row_that_does_not_encode_is_rejected_without_touching_the_state():
    def refuse(event):
        raise ProducerError("too big")

    result = plan_changes(config(), [{"id": 1, "version": 1, **operator()}], {}.get, refuse, TOPIC, 1, 0)
    assert result.entries == [] and result.known == {} and result.rejected[0][0].rule == "does_not_encode"


def test_replanning_the_same_rows_gives_the_same_events():
    rows = [{"id": i, "version": i, **operator(uscc=f"9135010{i}M000100Y43")} for i in range(1, 4)]
    assert plan(rows).entries == plan(rows).entries


def test_outbox_rows_carry_their_op_and_a_json_payload():
    cfg = config(outbox=True, deleted_column=None, cursor="outbox_id", key="entity_id")
    rows = [{"outbox_id": 1, "entity_id": "a", "op": "c", "payload": json.dumps(operator())},
            {"outbox_id": 2, "entity_id": "a", "op": "UPDATE", "payload": json.dumps(operator(status="suspended"))},
            {"outbox_id": 3, "entity_id": "a", "op": "d", "payload": None}]
    result = plan(rows, cfg=cfg)
    assert [(e["op"], (e["after"] or e["before"])["status"]) for e in events(result)] == [
        ("c", "active"), ("u", "suspended"), ("d", "suspended")]


@pytest.mark.parametrize("row, rule", [
    ({"outbox_id": 1, "entity_id": "a", "op": "x", "payload": "{}"}, "unknown_op"),
    ({"outbox_id": 1, "entity_id": "a", "op": "c", "payload": "[1]"}, "bad_payload"),
    ({"outbox_id": 1, "entity_id": "a", "op": "c", "payload": "{oops"}, "bad_payload"),
    ({"outbox_id": 1, "entity_id": "a", "op": "c", "payload": None}, "required"),
    ({"outbox_id": 1, "entity_id": "a", "op": "d", "payload": None}, "unknown_key"),
])
def test_bad_outbox_rows_are_rejected_by_rule(row, rule):
    cfg = config(outbox=True, deleted_column=None, cursor="outbox_id", key="entity_id")
    result = plan([row], cfg=cfg)
    assert result.entries == [] and result.rejected[0][0].rule == rule


def test_a_soft_delete_column_is_refused_in_outbox_mode():
    with pytest.raises(ProducerError, match="cursor mode"):
        config(outbox=True)


def test_state_name_differs_per_source_and_hides_the_password():
    a = config(url="postgresql://u:one@h/db").state_name
    assert a == config(url="postgresql://u:two@h/db").state_name != config(table="vehicles").state_name
    assert a.startswith("db-44-operators-")


def test_the_store_commits_events_position_and_known_records_together(tmp_path):
    result = plan([{"id": 1, "version": 1, **operator()}, {"id": 2, "version": 2, "deleted": 1, **operator()}])
    with AdapterStore(tmp_path / "state.db") as store:
        store.commit_plan(result)
    with AdapterStore(tmp_path / "state.db") as store:
        assert store.depth() == 1 and Position.from_json(store.checkpoint()) == Position(2, 2)
        assert store.known("1") == Known("operator:91350100M000100Y43", operator(
            permit_no=None, business_scope=None, legal_rep_id_number=None, contact_phone=None))
        assert store.meta("next_seq") == "2" and store.meta("acked_position") is None


def test_a_row_with_a_non_canonical_credit_code_is_sent_canonical_and_noted_by_key():
    result = plan([{"id": 7, "version": 1, **operator(uscc="９1350100M000100Y43")}])
    assert events(result)[0]["entity_key"] == "operator:91350100M000100Y43"
    assert result.normalised == [("7", "uscc", "９1350100M000100Y43", "91350100M000100Y43")]
    assert result.rejected == []
