"""Topic spec: derived from settings, read from TOML with validation, planned against broker state."""

from __future__ import annotations

import pytest

from deploy.errors import TopicError
from schemas.settings import Settings
from deploy.topic_apply import (ADD_PARTITIONS, ALTER_CONFIG, CREATE, BrokerTopic, format_plan, managed_pattern,
                                plan_topics)
from deploy.topicspec import TopicSpec, default_spec, dump_spec, load_spec, parse_spec

SETTINGS = Settings(provinces=("11", "44"), bootstrap_servers="kafka-1:9092", topic_prefix="t.")


def _topic(name="t.prov.11.changes", partitions=3, rf=3, **config):
    return TopicSpec(name, partitions, rf, config or {"cleanup.policy": "delete", "retention.ms": "1000"})


def _as_broker(topic: TopicSpec, **changes) -> BrokerTopic:
    values = {"name": topic.name, "partitions": topic.partitions, "replication_factor": topic.replication_factor,
              "config": dict(topic.config)}
    values.update(changes)
    return BrokerTopic(**values)


def test_default_spec_names_every_topic_of_the_exchange():
    names = [t.name for t in default_spec(SETTINGS)]
    assert names == ["t.prov.11.changes", "t.prov.44.changes", "t.xprov.11.inbound", "t.xprov.44.inbound",
                     "t.prov.11.replies", "t.prov.44.replies", "t.prov.11.manifests", "t.prov.44.manifests",
                     "t.xprov.11.receipts", "t.xprov.44.receipts",
                     "t.national.changes", "t.national.quality", "t.national.dlq", "t.national.audit",
                     "t.national.alerts", "t.national.submissions", "t.national.evidence", "t.roadx-streams-state.11", "t.roadx-streams-state.44", "t.roadx-registry",
                     "t.roadx-cases-ticks"]


def test_cluster_topics_are_replicated_three_times_with_two_in_sync():
    spec = default_spec(SETTINGS)
    assert {t.replication_factor for t in spec} == {3}
    assert {t.config["min.insync.replicas"] for t in spec} == {"2"}


def test_embedded_topics_have_one_replica():
    spec = default_spec(Settings(provinces=("11",)))
    assert {t.replication_factor for t in spec} == {1} and {t.config["min.insync.replicas"] for t in spec} == {"1"}


def test_state_changelogs_are_compacted_and_change_topics_deleted_by_age():
    spec = {t.name: t for t in default_spec(SETTINGS)}
    assert spec["t.roadx-streams-state.44"].config["cleanup.policy"] == "compact"
    assert spec["t.roadx-streams-state.44"].partitions == spec["t.prov.44.changes"].partitions
    assert spec["t.prov.44.changes"].config == {"cleanup.policy": "delete", "min.insync.replicas": "2",
                                                "retention.ms": str(7 * 24 * 3600 * 1000)}
    assert spec["t.national.changes"].partitions == SETTINGS.national_partitions


def test_the_audit_topic_is_national_kept_a_month_like_the_quality_findings():
    spec = {t.name: t for t in default_spec(SETTINGS)}
    assert spec["t.national.audit"].partitions == SETTINGS.national_partitions
    assert spec["t.national.audit"].config == spec["t.national.quality"].config == {
        "cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": str(30 * 24 * 3600 * 1000)}


def test_replies_are_co_partitioned_with_the_inbound_topic_and_kept_a_month_like_it():
    spec = {t.name: t for t in default_spec(SETTINGS)}
    assert SETTINGS.topics.province_replies("44") == "t.prov.44.replies"
    assert spec["t.prov.44.replies"].partitions == spec["t.xprov.44.inbound"].partitions == SETTINGS.partitions
    assert spec["t.prov.44.replies"].config == spec["t.xprov.44.inbound"].config == {
        "cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": str(30 * 24 * 3600 * 1000)}


def test_the_alerts_topic_is_national_kept_a_month():
    spec = {t.name: t for t in default_spec(SETTINGS)}
    assert SETTINGS.topics.national_alerts == "t.national.alerts"
    assert spec["t.national.alerts"].partitions == SETTINGS.national_partitions
    assert spec["t.national.alerts"].config == spec["t.national.quality"].config


def test_the_spec_holds_every_topic_the_embedded_stack_creates():
    from deploy.topics import exchange_topics

    spec = {t.name: t for t in default_spec(SETTINGS)}
    for name, partitions, *config in exchange_topics(SETTINGS):
        assert spec[name].partitions == partitions
        assert all(spec[name].config[k] == v for k, v in (config[0] if config else {}).items())


def test_a_dumped_spec_reads_back_unchanged(tmp_path):
    spec = default_spec(SETTINGS)
    path = tmp_path / "topics.toml"
    path.write_text(dump_spec(spec), "utf-8")
    assert load_spec(path, SETTINGS) == spec


GOOD = '''
version = 1
[[topic]]
name = "t.prov.11.changes"
partitions = 3
replication_factor = 3
config = { "cleanup.policy" = "delete", "retention.ms" = 604800000, "min.insync.replicas" = "2" }
'''


def test_numbers_in_configs_are_read_as_kafka_strings():
    (topic,) = parse_spec(GOOD, SETTINGS)
    assert topic.config == {"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "2"}


@pytest.mark.parametrize("text, message", [
    ("[[topic]\nname=1", "not valid TOML"),
    ("version = 1\n", "no \\[\\[topic\\]\\] entries"),
    (GOOD + "owner = 'me'\n", "unknown key\\(s\\) owner"),
    (GOOD.replace("version = 1", "version = 2"), "version 2 is not supported"),
    (GOOD.replace("partitions = 3", "partitions = 0"), "partitions must be a whole number of at least 1, not 0"),
    (GOOD.replace("partitions = 3", "partitions = '3'"), "partitions must be a whole number"),
    (GOOD.replace("replication_factor = 3", "replication_factor = true"), "replication_factor must be"),
    (GOOD.replace("partitions = 3", "partitions = 3\nreplicas = 3"), "topic #1 \\(t.prov.11.changes\\): unknown key"),
    (GOOD.replace('"delete"', '"forever"'), "cleanup.policy 'forever' must be one of"),
    (GOOD.replace('"retention.ms"', '"retention.days"'), "unknown topic config 'retention.days'"),
    (GOOD.replace("604800000", "'a week'"), "config retention.ms must be a whole number"),
    (GOOD.replace('"min.insync.replicas" = "2"', '"min.insync.replicas" = "4"'), "exceeds replication_factor 3"),
    (GOOD.replace("t.prov.11.changes", "t.prov.99.changes"), "unknown party code '99'"),
    (GOOD.replace("t.prov.11.changes", "t.xprov.46.inbound"), "party 46 is not one of the parties taking part"),
    (GOOD.replace("t.prov.11.changes", "t.prov.46.replies"), "party 46 is not one of the parties taking part"),
    (GOOD.replace("t.prov.11.changes", "t.prov.97.replies"), "unknown party code '97'"),
    (GOOD.replace("t.prov.11.changes", "bad topic/name"), "not a legal topic name"),
    (GOOD + GOOD.replace("version = 1", ""), "topic #2 \\(t.prov.11.changes\\): topic named twice"),
    (GOOD.replace("t.prov.11.changes", "t.roadx-streams-state.11"), "must have cleanup.policy"),
    (GOOD.replace("t.prov.11.changes", "t.roadx-streams-state.98"), "unknown party code '98'"),
])
def test_a_malformed_spec_is_rejected_naming_the_topic_and_the_rule(text, message):
    with pytest.raises(TopicError, match=message):
        parse_spec(text, SETTINGS)


def test_every_problem_of_a_spec_is_listed_at_once():
    bad = GOOD.replace("partitions = 3", "partitions = -1").replace("t.prov.11", "t.prov.99")
    with pytest.raises(TopicError) as caught:
        parse_spec(bad, SETTINGS)
    assert "unknown party code '99'" in str(caught.value) and "partitions must be" in str(caught.value)
    assert "nothing was changed" in str(caught.value)


def test_a_missing_spec_file_is_a_topic_error(tmp_path):
    with pytest.raises(TopicError, match="cannot read topic spec"):
        load_spec(tmp_path / "nope.toml", SETTINGS)


def test_missing_topics_are_created():
    spec = default_spec(SETTINGS)
    plan = plan_topics(spec, {})
    assert [a.kind for a in plan.actions] == [CREATE] * len(spec) and not plan.drift


def test_a_matching_broker_plans_nothing():
    spec = default_spec(SETTINGS)
    plan = plan_topics(spec, {t.name: _as_broker(t) for t in spec})
    assert plan.changes_nothing and not plan.drift and len(plan.unchanged) == len(spec)


def test_a_broker_that_reports_every_config_still_plans_nothing():
    topic = _topic(**{"cleanup.policy": "compact,delete"})
    broker = _as_broker(topic, config={"cleanup.policy": "delete,compact", "segment.ms": "1", "retention.ms": "5"})
    assert plan_topics([topic], {topic.name: broker}).changes_nothing


def test_a_config_difference_is_altered_with_only_the_changed_keys():
    topic = _topic()
    broker = _as_broker(topic, config={"cleanup.policy": "delete", "retention.ms": "99"})
    (action,) = plan_topics([topic], {topic.name: broker}).actions
    assert action.kind == ALTER_CONFIG and action.config_changes == {"retention.ms": "1000"}
    assert "retention.ms: 99 -> 1000" in action.detail


def test_fewer_partitions_than_the_spec_are_increased():
    topic = _topic(partitions=6)
    (action,) = plan_topics([topic], {topic.name: _as_broker(topic, partitions=3)}).actions
    assert action.kind == ADD_PARTITIONS and action.detail == "partitions 3 -> 6"


def test_more_partitions_or_another_replication_factor_is_reported_as_drift():
    topic = _topic(partitions=3)
    plan = plan_topics([topic], {topic.name: _as_broker(topic, partitions=5, replication_factor=1)})
    assert plan.changes_nothing and len(plan.drift) == 2
    assert "has 5 partitions, the spec asks for 3" in plan.drift[0]
    assert "replication factor is 1, the spec asks for 3" in plan.drift[1]
    assert "drift" in format_plan(plan)


def test_exchange_topics_missing_from_the_spec_are_listed_but_left_alone():
    topic = _topic()
    old = BrokerTopic("t.prov.12.changes", 3, 3, {})
    other = BrokerTopic("someone.else", 1, 1, {})
    replies = BrokerTopic("t.prov.12.replies", 3, 3, {})
    plan = plan_topics([topic], {topic.name: _as_broker(topic), old.name: old, other.name: other,
                                 replies.name: replies}, managed_pattern(SETTINGS))
    assert plan.unmanaged == ["t.prov.12.changes", "t.prov.12.replies"] and plan.changes_nothing


def test_national_changes_keeps_a_week_of_history_then_each_entitys_newest_for_good():
    spec = {t.name: t for t in default_spec(Settings())}
    config = spec[Settings().topics.national_changes].config
    assert config["cleanup.policy"] == "compact" and "retention.ms" not in config
    assert int(config["min.compaction.lag.ms"]) == 7 * 24 * 3600 * 1000
