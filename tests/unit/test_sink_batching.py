"""How the sink batches: messages taken per batch, one insert per table, masking shortcuts."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from hypothesis import given, settings, strategies as st

from sinks.inserts import CombinedInsert, TableInsert, combined_token, dedup_token
from schemas.pii import PiiMasker, mask_id_number, mask_phone, may_hold_personal_number
from sinks.rows import CHANGE_LOG_COLUMNS, _json_default, change_log_row, to_json
from sinks.sink import COLUMNS, plan_batch, take_batch, write_then_commit

from test_sink_plan import CODEC, PII, ROLES, Consumer, Message, Store, vehicle_event


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Broker:
    """Hands out queued messages per ``consume`` call; an empty call lets ``timeout`` pass on the clock."""

    def __init__(self, clock, arrivals):
        self.clock, self.arrivals, self.calls = clock, list(arrivals), []

    def consume(self, num_messages, timeout):
        self.calls.append((num_messages, timeout))
        got = self.arrivals.pop(0) if self.arrivals else []
        if not got:
            self.clock.now += timeout
        return got[:num_messages]


def test_full_batch_is_taken_in_one_call():
    clock = Clock()
    broker = Broker(clock, [list(range(5))])
    assert take_batch(broker, 5, 0.5, clock=clock) == [0, 1, 2, 3, 4]
    assert broker.calls == [(5, 0.05)]


def test_partial_batch_closes_once_a_top_up_brings_nothing():
    clock = Clock()
    broker = Broker(clock, [[1, 2], [3], [], [4]])
    assert take_batch(broker, 10, 0.5, clock=clock) == [1, 2, 3]
    assert [n for n, _ in broker.calls] == [10, 8, 7]


def test_idle_topics_are_waited_on_until_the_flush_time():
    clock = Clock()
    broker = Broker(clock, [])
    assert take_batch(broker, 10, 0.2, clock=clock) == []
    assert len(broker.calls) == 4 and clock.now == pytest.approx(0.2)


def test_messages_arriving_late_in_the_flush_time_are_taken():
    clock = Clock()
    broker = Broker(clock, [[], [], [1], [2], []])
    assert take_batch(broker, 10, 0.5, clock=clock) == [1, 2]


def test_combined_token_is_the_same_for_the_same_ranges_in_any_order():
    ranges = [("n", 0, 1, 5), ("n", 1, 3, 9)]
    assert combined_token("change_log", ranges) == combined_token("change_log", ranges[::-1])


@pytest.mark.parametrize("other", [
    ("change_log", [("n", 0, 1, 5), ("n", 1, 3, 10)]),
    ("change_log", [("n", 0, 1, 5), ("n", 2, 3, 9)]),
    ("change_log", [("n", 0, 1, 5)]),
    ("dlq", [("n", 0, 1, 5), ("n", 1, 3, 9)]),
])
def test_combined_token_differs_when_any_range_differs(other):
    assert combined_token(*other) != combined_token("change_log", [("n", 0, 1, 5), ("n", 1, 3, 9)])


def test_a_combined_insert_of_one_group_keeps_the_group_token():
    group = TableInsert("change_log", "n", 0, 1, 5, [("a",)])
    assert CombinedInsert("change_log", [group]).token == dedup_token("change_log", "n", 0, 1, 5)


def test_a_combined_insert_holds_one_table_only():
    with pytest.raises(ValueError, match="groups of change_log only"):
        CombinedInsert("change_log", [TableInsert("dlq", "n", 0, 1, 1)])


def test_groups_of_one_table_from_several_partitions_go_in_one_insert():
    msgs = [Message("national.changes", p, o, vehicle_event(o)) for p in (0, 1, 2) for o in (3, 4)]
    msgs += [Message("national.dlq", p, 7, b"x") for p in (0, 1)]
    plan = plan_batch(msgs, ROLES, CODEC.decode, PII)
    log: list = []
    write_then_commit(Store(log), Consumer(log), plan, "roadx")
    ranges = [("national.changes", p, 3, 4) for p in (0, 1, 2)]
    assert log[:2] == [("insert", "change_log", combined_token("change_log", ranges)),
                       ("insert", "dlq", combined_token("dlq", [("national.dlq", 0, 7, 7), ("national.dlq", 1, 7, 7)]))]
    assert log[2][0] == "commit" and len(log) == 3


def test_every_row_of_a_batch_has_the_same_ingested_at():
    msgs = [Message("national.changes", 0, o, vehicle_event(o)) for o in range(3)]
    msgs += [Message("national.dlq", 0, 0, b"x")]
    plan = plan_batch(msgs, ROLES, CODEC.decode, PII)
    stamps = {row[COLUMNS[i.table].index("ingested_at")] for i in plan.inserts for row in i.rows}
    assert len(stamps) == 1 and next(iter(stamps)).tzinfo is not None


@pytest.mark.parametrize("text, holds", [
    ("粤B12345", False), ("91350100M000100Y43", False), ("call 1381234567", False),
    ("call 13812345678", True), ("11010519491231002X", True), ("x" * 40, False),
])
def test_only_text_with_eleven_digits_in_a_row_may_hold_a_personal_number(text, holds):
    assert may_hold_personal_number(text) is holds


_ID = re.compile(r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}"
                 r"[0-9Xx](?![0-9Xx])")
_PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def _masked_everywhere(value: str) -> str:
    masked = _ID.sub(lambda m: mask_id_number(m.group(0)), value)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), masked)


pieces = st.sampled_from(["13812345678", "11010519491231002X", "110105194912310029", "8613912345678", "1", "0",
                          "X", " ", "粤", "a", ":", "19"])


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces, max_size=12).map("".join))
def test_text_is_masked_exactly_as_every_match_would_be(text):
    assert PII.text(text) == _masked_everywhere(text)


def test_tokens_stay_the_same_when_remembered():
    masker = PiiMasker(b"t" * 32)
    first = masker.token("11010519491231002X")
    assert masker.token("11010519491231002X") == first == PiiMasker(b"t" * 32).token("11010519491231002x")


def test_json_of_a_record_matches_the_standard_encoder():
    record = {"name": "粤B12345 \"quoted\"\n", "issued": dt.date(2024, 5, 1), "n": -2 ** 63, "flag": True,
              "at": dt.datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
              "naive": dt.datetime(2024, 5, 1), "types": ["a", None], "raw": b"\x00\xff", "id": uuid.UUID(int=7)}
    expected = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    assert to_json(record) == expected
    assert json.loads(to_json(record))["at"] == "2024-05-01T00:30:15.123Z"


def test_json_of_a_value_it_cannot_hold_is_a_type_error():
    with pytest.raises(TypeError):
        to_json({"when": dt.time(8, 30)})


def test_change_log_row_keeps_the_decoded_event_id():
    schema_id, event = CODEC.decode(vehicle_event())
    row = dict(zip(CHANGE_LOG_COLUMNS, change_log_row(event, schema_id, "t", 0, 0, PII)))
    assert row["event_id"] == event["event_id"] and isinstance(row["event_id"], str)
    assert str(uuid.UUID(row["event_id"])) == row["event_id"]


def test_the_sinks_consumer_prefetches_a_bounded_backlog(tmp_path):
    from confluent_kafka import Consumer as KafkaConsumer

    from schemas.settings import Settings
    from sinks.sink import SINK_PREFETCH_KIB, consumer_conf

    conf = consumer_conf(Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:9"))
    assert conf["queued.max.messages.kbytes"] == SINK_PREFETCH_KIB < 65536  # the client's default
    KafkaConsumer(conf).close()  # the client takes the setting
