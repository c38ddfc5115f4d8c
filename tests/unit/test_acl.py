"""ACLs from the province list: each province its own topics only, the hub what it uses."""

from __future__ import annotations

import pytest
import yaml

from deploy.acl import exchange_acls, kafka_acl_commands, select_provinces, strimzi_users
from deploy.cli import main
from schemas.errors import SettingsError
from schemas.settings import Settings

HEAD = 'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add --allow-principal'
EXPECTED_TWO_PROVINCES = [
    "# roadx ACLs for provinces 11, 12",
    "# analysts: no Kafka ACLs (they query ClickHouse)",
    f"{HEAD} User:prov-11 --operation Write --operation Describe --topic prov.11.changes --resource-pattern-type literal",
    f"{HEAD} User:prov-11 --operation Write --operation Describe --topic prov.11.replies --resource-pattern-type literal",
    f"{HEAD} User:prov-11 --operation Write --operation Describe --topic prov.11.manifests --resource-pattern-type literal",
    f"{HEAD} User:prov-11 --operation Read --operation Describe --topic xprov.11.inbound --resource-pattern-type literal",
    f"{HEAD} User:prov-11 --operation Read --operation Describe --topic xprov.11.receipts --resource-pattern-type literal",
    f"{HEAD} User:prov-11 --operation Read --group prov-11- --resource-pattern-type prefixed",
    f"{HEAD} User:prov-12 --operation Write --operation Describe --topic prov.12.changes --resource-pattern-type literal",
    f"{HEAD} User:prov-12 --operation Write --operation Describe --topic prov.12.replies --resource-pattern-type literal",
    f"{HEAD} User:prov-12 --operation Write --operation Describe --topic prov.12.manifests --resource-pattern-type literal",
    f"{HEAD} User:prov-12 --operation Read --operation Describe --topic xprov.12.inbound --resource-pattern-type literal",
    f"{HEAD} User:prov-12 --operation Read --operation Describe --topic xprov.12.receipts --resource-pattern-type literal",
    f"{HEAD} User:prov-12 --operation Read --group prov-12- --resource-pattern-type prefixed",
    f"{HEAD} User:roadx-streams --operation Read --operation Describe --topic prov.11.changes --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Read --operation Describe --topic prov.12.changes --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Write --operation Describe --topic national.changes --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Write --operation Describe --topic national.quality --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Write --operation Describe --topic national.dlq --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Write --operation Describe --topic national.submissions --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Write --operation Describe --topic xprov.11.inbound --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Write --operation Describe --topic xprov.12.inbound --resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Read --operation Write --operation Describe --topic roadx-streams-state.11 "
    "--resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Read --operation Write --operation Describe --topic roadx-streams-state.12 "
    "--resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Read --operation Write --operation Describe --topic roadx-registry "
    "--resource-pattern-type literal",
    f"{HEAD} User:roadx-streams --operation Read --group roadx-streams --resource-pattern-type prefixed",
    f"{HEAD} User:roadx-service --operation Write --operation Describe --topic national.audit --resource-pattern-type literal",
    f"{HEAD} User:roadx-service --operation Read --operation Describe --topic national.changes --resource-pattern-type literal",
    f"{HEAD} User:roadx-service --operation Read --group roadx-service --resource-pattern-type prefixed",
    f"{HEAD} User:roadx-cases --operation Read --operation Describe --topic prov.11.replies --resource-pattern-type literal",
    f"{HEAD} User:roadx-cases --operation Read --operation Describe --topic prov.12.replies --resource-pattern-type literal",
    f"{HEAD} User:roadx-cases --operation Read --operation Write --operation Describe --topic xprov.11.inbound "
    "--resource-pattern-type literal",
    f"{HEAD} User:roadx-cases --operation Read --operation Write --operation Describe --topic xprov.12.inbound "
    "--resource-pattern-type literal",
    f"{HEAD} User:roadx-cases --operation Write --operation Describe --topic national.alerts --resource-pattern-type literal",
    f"{HEAD} User:roadx-cases --operation Write --operation Describe --topic national.dlq --resource-pattern-type literal",
    f"{HEAD} User:roadx-cases --operation Read --operation Write --operation Describe --operation Create "
    "--topic roadx-cases- --resource-pattern-type prefixed",
    f"{HEAD} User:roadx-cases --operation Read --group roadx-cases --resource-pattern-type prefixed",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic national.changes --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic national.quality --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic national.dlq --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic national.audit --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic national.alerts --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic xprov.11.inbound --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic xprov.12.inbound --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic prov.11.manifests --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic prov.12.manifests --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Describe --topic national.submissions --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Write --operation Describe --topic xprov.11.receipts --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Write --operation Describe --topic xprov.12.receipts --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --operation Write --operation Describe --topic national.evidence --resource-pattern-type literal",
    f"{HEAD} User:roadx-sink --operation Read --group roadx-sink --resource-pattern-type prefixed",
]


def test_kafka_acls_for_two_provinces_match_line_by_line(capsys):
    assert main(["acl", "--format", "kafka", "--provinces", "11,12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXPECTED_TWO_PROVINCES)
    for number, (got, want) in enumerate(zip(lines, EXPECTED_TWO_PROVINCES), 1):
        assert got == want, f"line {number}"


def test_a_province_may_write_only_its_own_changes_replies_and_manifests_and_read_only_its_inbound_and_receipts():
    rules = exchange_acls(Settings(), ("11", "12"))
    own = [r for r in rules if r.principal == "prov-11"]
    writes = {r.name for r in own if "Write" in r.operations}
    reads = {r.name for r in own if r.resource_type == "topic" and "Read" in r.operations}
    assert writes == {"prov.11.changes", "prov.11.replies", "prov.11.manifests"}
    assert reads == {"xprov.11.inbound", "xprov.11.receipts"}


def test_only_the_sink_answers_manifests_and_keeps_the_evidence_log_from_the_stream_workers_tallies():
    settings = Settings()
    rules = exchange_acls(settings, ("11", "44"))
    names = settings.topics

    def holders(topic: str) -> set[tuple[str, tuple[str, ...]]]:
        return {(r.principal, r.operations) for r in rules if r.resource_type == "topic" and r.name == topic}

    assert holders(names.province_manifests("44")) == {("prov-44", ("Write", "Describe")),
                                                       ("roadx-sink", ("Read", "Describe"))}
    assert holders(names.province_receipts("44")) == {("roadx-sink", ("Write", "Describe")),
                                                      ("prov-44", ("Read", "Describe"))}
    assert holders(names.national_submissions) == {("roadx-streams", ("Write", "Describe")),
                                                   ("roadx-sink", ("Read", "Describe"))}
    assert holders(names.national_evidence) == {("roadx-sink", ("Read", "Write", "Describe"))}
    # No party sees another's manifests or receipts.
    other = [r for r in rules if r.principal == "prov-11" and r.name.endswith((".manifests", ".receipts"))]
    assert {r.name for r in other} == {"prov.11.manifests", "xprov.11.receipts"}


def test_topic_prefix_applies_to_topics_and_groups_not_principals():
    rules = exchange_acls(Settings(topic_prefix="t1."), ("44",))
    names = {r.name for r in rules}
    assert "t1.prov.44.changes" in names and "t1.prov-44-" in names and "t1.roadx-streams" in names
    assert {r.principal for r in rules} == {"prov-44", "roadx-streams", "roadx-service", "roadx-cases", "roadx-sink"}
    assert {"t1.national.audit", "t1.prov.44.replies", "t1.national.alerts", "t1.roadx-cases"} <= names


def test_strimzi_users_are_one_kafka_user_per_principal_with_the_same_acls(capsys):
    assert main(["acl", "--format", "strimzi", "--provinces", "11,12", "--cluster", "national"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d is not None]
    assert [d["metadata"]["name"] for d in docs] == ["prov-11", "prov-12", "roadx-streams", "roadx-service",
                                                     "roadx-cases", "roadx-sink"]
    assert all(d["kind"] == "KafkaUser" and d["metadata"]["labels"]["strimzi.io/cluster"] == "national"
               for d in docs)
    prov11 = docs[0]["spec"]["authorization"]["acls"]
    assert prov11[0] == {"resource": {"type": "topic", "name": "prov.11.changes", "patternType": "literal"},
                         "operations": ["Write", "Describe"], "host": "*"}
    assert prov11[-1]["resource"] == {"type": "group", "name": "prov-11-", "patternType": "prefix"}
    assert {"type": "topic", "name": "xprov.11.receipts", "patternType": "literal"} in [a["resource"] for a in prov11]
    total = sum(len(d["spec"]["authorization"]["acls"]) for d in docs)
    assert total == len(exchange_acls(Settings(), ("11", "12")))


def test_the_service_reads_the_register_and_only_it_writes_the_audit_topic_no_party_touches_it():
    settings = Settings()
    rules = [r for r in exchange_acls(settings, tuple(settings.provinces)) if r.name == settings.topics.national_audit]
    assert {(r.principal, r.operations) for r in rules} == {("roadx-service", ("Write", "Describe")),
                                                            ("roadx-sink", ("Read", "Describe"))}
    service = [r for r in exchange_acls(settings, ("11",)) if r.principal == "roadx-service"]
    assert [(r.resource_type, r.name, r.operations) for r in service] == [
        ("topic", "national.audit", ("Write", "Describe")), ("topic", "national.changes", ("Read", "Describe")),
        ("group", "roadx-service", ("Read",))]


def test_only_its_province_writes_a_replies_topic_and_only_the_case_workflows_read_it():
    settings = Settings()
    replies = settings.topics.province_replies("44")
    rules = [r for r in exchange_acls(settings, tuple(settings.provinces)) if r.name == replies]
    assert {(r.principal, r.operations) for r in rules} == {("prov-44", ("Write", "Describe")),
                                                            ("roadx-cases", ("Read", "Describe"))}


def test_the_case_workflows_forward_to_the_inbound_topics_and_alone_write_the_alerts_the_sink_reads():
    settings = Settings()
    rules = exchange_acls(settings, ("11", "12"))
    cases = [(r.resource_type, r.name, r.operations, r.pattern) for r in rules if r.principal == "roadx-cases"]
    assert cases == [
        ("topic", "prov.11.replies", ("Read", "Describe"), "literal"),
        ("topic", "prov.12.replies", ("Read", "Describe"), "literal"),
        ("topic", "xprov.11.inbound", ("Read", "Write", "Describe"), "literal"),
        ("topic", "xprov.12.inbound", ("Read", "Write", "Describe"), "literal"),
        ("topic", "national.alerts", ("Write", "Describe"), "literal"),
        ("topic", "national.dlq", ("Write", "Describe"), "literal"),
        ("topic", "roadx-cases-", ("Read", "Write", "Describe", "Create"), "prefixed"),
        ("group", "roadx-cases", ("Read",), "prefixed"),
    ]
    alerts = {(r.principal, r.operations) for r in rules if r.name == settings.topics.national_alerts}
    assert alerts == {("roadx-cases", ("Write", "Describe")), ("roadx-sink", ("Read", "Describe"))}


def test_analysts_get_no_kafka_acl():
    rules = exchange_acls(Settings(), tuple(Settings().provinces))
    assert not [r for r in rules if "analyst" in r.principal]
    assert "# analysts: no Kafka ACLs (they query ClickHouse)" in kafka_acl_commands(rules, ("11",))
    assert "analysts: no Kafka ACLs" in strimzi_users(rules, ("11",), "roadx")


@pytest.mark.parametrize("provinces, message", [
    ("11,99", "unknown party code.*99"),
    ("1x", "unknown party code.*1x"),
    (" , ", "names no party"),
])
def test_unknown_province_codes_are_a_clear_error(provinces, message):
    with pytest.raises(SettingsError, match=message):
        select_provinces(Settings(), provinces)


def test_a_known_but_unconfigured_province_is_refused():
    with pytest.raises(SettingsError, match="44 do not take part"):
        select_provinces(Settings(provinces=("11", "12")), "11,44")


def test_the_cli_prints_an_error_and_no_acl_for_an_unknown_province(capsys):
    assert main(["acl", "--format", "kafka", "--provinces", "11,99"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "unknown party code(s) 99" in err
