"""The consumer-lag gauge: lag rows from positions and watermarks, stale partitions dropped, throttling."""

from __future__ import annotations

from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from deploy.consumer_lag import LagRecorder, PartitionLag, lag_rows, record_lag, set_lag


def gauge(group: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("roadx_consumer_lag", {"group": group, "topic": topic, "partition": str(partition)})


def test_lag_is_high_watermark_minus_position():
    rows = lag_rows([("a", 0), ("a", 1)], {("a", 0): 7, ("a", 1): 10}, {("a", 0): (0, 10), ("a", 1): (0, 10)})
    assert rows == [PartitionLag("a", 0, 3), PartitionLag("a", 1, 0)]


def test_lag_never_goes_below_zero():
    # Tansu reports the last batch's base offset + 1 as the high watermark: the position can pass it
    assert lag_rows([("a", 0)], {("a", 0): 100}, {("a", 0): (0, 1)}) == [PartitionLag("a", 0, 0)]


def test_unread_partition_counts_from_the_committed_offset():
    rows = lag_rows([("a", 0)], {("a", 0): -1001}, {("a", 0): (0, 50)}, committed={("a", 0): 40})
    assert rows == [PartitionLag("a", 0, 10)]


def test_partition_without_position_or_commit_counts_from_the_low_watermark():
    rows = lag_rows([("a", 0)], {}, {("a", 0): (20, 50)}, committed={("a", 0): -1001})
    assert rows == [PartitionLag("a", 0, 30)]


def test_partition_with_unknown_high_watermark_is_left_out():
    assert lag_rows([("a", 0), ("b", 0)], {}, {("a", 0): (-1001, -1001), ("b", 0): (0, 0)}) == [
        PartitionLag("b", 0, 0)]


def test_rows_are_sorted_and_unique():
    rows = lag_rows([("b", 1), ("a", 2), ("b", 1)], {}, {("b", 1): (0, 1), ("a", 2): (0, 2)})
    assert [(r.topic, r.partition) for r in rows] == [("a", 2), ("b", 1)]


def test_partitions_no_longer_held_leave_the_gauge():
    set_lag("g-stale", [PartitionLag("t", 0, 5), PartitionLag("t", 1, 6)])
    assert gauge("g-stale", "t", 0) == 5 and gauge("g-stale", "t", 1) == 6
    set_lag("g-stale", [PartitionLag("t", 1, 2)])
    assert gauge("g-stale", "t", 0) is None
    assert gauge("g-stale", "t", 1) == 2


def test_groups_are_kept_apart():
    set_lag("g-one", [PartitionLag("t", 0, 1)])
    set_lag("g-two", [PartitionLag("t", 0, 9)])
    set_lag("g-one", [])
    assert gauge("g-one", "t", 0) is None and gauge("g-two", "t", 0) == 9


class FakeConsumer:
    """What record_lag reads from a confluent-kafka consumer."""

    def __init__(self, assigned, positions, cached, broker, committed=None):
        self.assigned, self.positions, self.cached, self.broker = assigned, positions, cached, broker
        self.committed_offsets = committed or {}
        self.broker_asked: list[tuple[str, int]] = []
        self.committed_asked: list[tuple[str, int]] = []

    def assignment(self):
        return [TopicPartition(t, p) for t, p in self.assigned]

    def position(self, partitions):
        return [TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def committed(self, partitions, timeout=None):
        self.committed_asked += [(tp.topic, tp.partition) for tp in partitions]
        return [TopicPartition(tp.topic, tp.partition, self.committed_offsets.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        key = (tp.topic, tp.partition)
        if cached:
            return self.cached.get(key, (-1001, -1001))
        self.broker_asked.append(key)
        return self.broker[key]


def test_record_lag_asks_the_broker_only_where_nothing_is_cached():
    consumer = FakeConsumer([("t", 0), ("t", 1)], {("t", 0): 3, ("t", 1): 4},
                            cached={("t", 0): (0, 10)}, broker={("t", 1): (0, 6)})
    record_lag(consumer, "g-record")
    assert consumer.broker_asked == [("t", 1)]
    assert consumer.committed_asked == []
    assert gauge("g-record", "t", 0) == 7 and gauge("g-record", "t", 1) == 2


def test_record_lag_reads_committed_offsets_of_unread_partitions_only():
    consumer = FakeConsumer([("t", 0), ("t", 1)], {("t", 0): 3}, cached={("t", 0): (0, 3), ("t", 1): (0, 8)},
                            broker={}, committed={("t", 1): 8})
    record_lag(consumer, "g-unread")
    assert consumer.committed_asked == [("t", 1)]
    assert gauge("g-unread", "t", 0) == 0 and gauge("g-unread", "t", 1) == 0


def test_broker_errors_do_not_reach_the_worker():
    from confluent_kafka import KafkaError, KafkaException

    class Broken(FakeConsumer):
        def assignment(self):
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    record_lag(Broken([], {}, {}, {}), "g-broken")  # logged, not raised
    assert gauge("g-broken", "t", 0) is None


def test_recorder_reads_at_most_once_per_interval():
    now = [100.0]
    consumer = FakeConsumer([("t", 0)], {("t", 0): 1}, cached={("t", 0): (0, 5)}, broker={})
    recorder = LagRecorder(consumer, "g-throttle", interval=2.0, clock=lambda: now[0])
    assert recorder.tick() is True
    now[0] += 1.0
    assert recorder.tick() is False
    consumer.positions[("t", 0)] = 5
    now[0] += 1.5
    assert recorder.tick() is True
    assert gauge("g-throttle", "t", 0) == 0


# Kafka clients built in deploy/ take the client settings whole, TLS/SASL included.

def secured_settings(tmp_path):
    from schemas.settings import Settings

    password = tmp_path / "sasl.password"
    password.write_text("s3cret\n", "utf-8")
    return Settings(bootstrap_servers="127.0.0.1:1", kafka_security_protocol="SASL_PLAINTEXT",
                    kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="hub", kafka_sasl_password_file=password)


def test_client_settings_keep_the_security_settings(tmp_path):
    from deploy.topics import client_conf

    conf = client_conf(secured_settings(tmp_path).kafka_conf())
    assert conf["security.protocol"] == "SASL_PLAINTEXT" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "hub" and conf["sasl.password"] == "s3cret"
    assert client_conf("127.0.0.1:9092") == {"bootstrap.servers": "127.0.0.1:9092"}


def test_group_lag_reader_passes_the_client_settings_to_librdkafka(tmp_path):
    import pytest

    from deploy.errors import StackError
    from deploy.consumer_lag import GroupLag

    conf = secured_settings(tmp_path).kafka_conf()
    GroupLag(conf, "g-secured").close()
    with pytest.raises(StackError, match="g-secured"):  # librdkafka itself refuses the unknown mechanism
        GroupLag({**conf, "sasl.mechanism": "NO-SUCH-MECHANISM"}, "g-secured")


def test_client_settings_without_bootstrap_servers_are_refused():
    import pytest

    from deploy.errors import TopicError
    from deploy.topics import create_topics

    with pytest.raises(TopicError, match="bootstrap.servers"):
        create_topics({"security.protocol": "SSL"}, [("t", 1)])
