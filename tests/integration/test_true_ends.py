"""Where reading a partition ends and goes on, on the embedded broker: its reported high
watermark stops at its last batch, ``schemas.kafka.true_ends`` reads on to the last message;
``schemas.kafka.committed_offsets`` says where a group goes on (none where it never committed)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.kafka import committed_offsets, reader_conf, true_ends

pytestmark = pytest.mark.integration


def test_the_end_is_after_the_last_message_not_where_the_broker_says(bootstrap, unique):
    conf = {"bootstrap.servers": bootstrap}
    topic = f"ends{unique}"
    admin = AdminClient(conf)
    for created in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        created.result(30)
    producer = Producer({**conf, "linger.ms": 200})
    for batch in (10, 5):  # two batches in partition 0; partition 1 stays empty
        for _ in range(batch):
            producer.produce(topic, b"v", b"k", partition=0)
        assert producer.flush(30) == 0
    reader = Consumer(reader_conf(conf, f"g{unique}"))
    try:
        _low, reported = reader.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        reader.close()
    ends = true_ends(conf, f"g{unique}", [(topic, 0), (topic, 1)], error=AssertionError, what="read the ends")
    assert ends == {(topic, 0): 15, (topic, 1): 0}
    assert reported <= 15  # what a reader trusting the watermark would stop at (11 on the embedded broker)


def test_a_group_goes_on_where_it_committed_and_has_no_offset_where_it_never_did(bootstrap, unique):
    conf = {"bootstrap.servers": bootstrap}
    topic, group = f"goes{unique}", f"g{unique}"
    admin = AdminClient(conf)
    for created in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        created.result(30)
    producer = Producer(conf)
    for partition in (0, 1):
        for _ in range(4):
            producer.produce(topic, b"v", b"k", partition=partition)
    assert producer.flush(30) == 0
    committer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        committer.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 0)], asynchronous=False)
    finally:
        committer.close()
    parts = [(topic, 0), (topic, 1), (topic, 2)]
    assert committed_offsets(conf, group, parts, error=AssertionError, what="x") == {
        (topic, 0): 3, (topic, 1): 0, (topic, 2): None}
    assert committed_offsets(conf, f"other{unique}", parts, error=AssertionError, what="x") == dict.fromkeys(parts)
    assert committed_offsets(conf, group, [], error=AssertionError, what="x") == {}
    with pytest.raises(LookupError, match="cannot find where the group goes on"):
        committed_offsets({"bootstrap.servers": "127.0.0.1:1", "socket.timeout.ms": 1000}, group, parts,
                          error=LookupError, what="find where the group goes on")
