"""Cluster files parse, and every roadx service's settings resolve and agree with each other."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.acl import SINK_PRINCIPAL, STREAMS_PRINCIPAL
from schemas.errors import SettingsError
from schemas.settings import Settings, resolve

CLUSTER = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
COUNTERS = {
    "roadx_stream_events_total", "roadx_stream_rejected_total", "roadx_stream_routed_total",
    "roadx_sink_rows_total", "roadx_sink_batches_total", "roadx_adapter_events_read_total",
    "roadx_adapter_events_sent_total", "roadx_adapter_spool_depth", "roadx_consumer_lag",
    "roadx_stream_dlq_total", "roadx_stream_deduplicated_total", "roadx_quality_findings_total",
}
HISTOGRAMS = {"roadx_sink_batch_size", "roadx_sink_insert_seconds", "roadx_sink_source_to_store_seconds"}
ROADX_SERVICES = ("roadx-topics", "roadx-streams", "roadx-sink")


def _load_yaml(path: Path):
    return yaml.safe_load(path.read_text("utf-8"))


def _metric_names(expr: str) -> set[str]:
    names = set()
    for name in re.findall(r"\broadx_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def _roadx_env(env: dict) -> dict[str, str]:
    return {k: str(v) for k, v in env.items() if k.startswith("ROADX_")}


@pytest.fixture(scope="module")
def compose():
    return _load_yaml(CLUSTER / "compose.yaml")


@pytest.fixture(scope="module")
def k8s_docs():
    docs = []
    for path in sorted((CLUSTER / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
    return docs


def test_compose_runs_three_kraft_brokers_and_the_whole_stack(compose):
    services = compose["services"]
    for name in ("kafka-1", "kafka-2", "kafka-3", "schema-registry", "clickhouse", "prometheus", "grafana",
                 *ROADX_SERVICES):
        assert name in services, name
    brokers = [services[f"kafka-{i}"] for i in (1, 2, 3)]
    assert {b["image"].split(":")[0] for b in brokers} == {"apache/kafka"}
    assert {b["environment"]["KAFKA_NODE_ID"] for b in brokers} == {"1", "2", "3"}
    voters = brokers[0]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert all("controller" in b["environment"]["KAFKA_PROCESS_ROLES"] for b in brokers)
    assert brokers[0]["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == "2"


def test_every_compose_roadx_service_resolves_settings_that_point_at_compose_services(compose):
    services = compose["services"]
    for name in ROADX_SERVICES:
        settings = resolve(_roadx_env(services[name]["environment"]))
        hosts = {server.split(":")[0] for server in settings.bootstrap_servers.split(",")}
        assert hosts == {"kafka-1", "kafka-2", "kafka-3"}, name
        assert urlsplit(settings.clickhouse_url).hostname in services
        assert urlsplit(settings.schema_registry_url).hostname in services
        assert settings.topic_replication_factor == 3 and settings.metrics_host == "0.0.0.0"
        assert settings.master_key_file is not None
        mounts = [v.split(":")[1] for v in services[name].get("volumes", [])]
        assert any(str(settings.master_key_file).startswith(m + "/") for m in mounts), name


def test_prometheus_scrapes_each_roadx_service_on_its_metrics_port(compose):
    config = _load_yaml(CLUSTER / "prometheus.yml")
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    for name in ("roadx-streams", "roadx-sink"):
        settings = resolve(_roadx_env(compose["services"][name]["environment"]))
        assert f"{name}:{settings.metrics_port}" in targets
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    mounted = compose["services"]["prometheus"]["volumes"]
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in mounted


def test_a_service_with_an_unknown_setting_is_refused(compose):
    env = _roadx_env(compose["services"]["roadx-sink"]["environment"])
    env["ROADX_SINK_BATCH"] = "100"
    with pytest.raises(SettingsError, match="unknown setting ROADX_SINK_BATCH"):
        resolve(env)


def _workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]


def _container_env(container, configmaps) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        # A value from a Secret is only known in the cluster; any URL stands in for it here.
        env[item["name"]] = item.get("value", "http://from-secret:8123/roadx")
    return _roadx_env(env)


def test_k8s_workloads_resolve_settings_with_their_files_mounted(k8s_docs):
    configmaps = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    workloads = _workloads(k8s_docs)
    assert {w["metadata"]["name"] for w in workloads} == {"roadx-streams", "roadx-sink", "roadx-topics-apply"}
    for workload in workloads:
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        settings = resolve(_container_env(container, configmaps))
        assert settings.bootstrap_servers and settings.kafka_security_protocol == "SASL_SSL"
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        files = [settings.kafka_sasl_password_file, settings.kafka_ssl_ca_file]
        if workload["kind"] == "Deployment":
            files.append(settings.master_key_file)
        for path in files:
            assert any(str(path).startswith(m + "/") for m in mounts), (workload["metadata"]["name"], path)


def test_k8s_workers_use_their_acl_principal_and_expose_the_metrics_port(k8s_docs):
    configmaps = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    principals = {"roadx-streams": STREAMS_PRINCIPAL, "roadx-sink": SINK_PRINCIPAL}
    for workload in [w for w in k8s_docs if w["kind"] == "Deployment"]:
        template = workload["spec"]["template"]
        (container,) = template["spec"]["containers"]
        settings = resolve(_container_env(container, configmaps))
        assert settings.kafka_sasl_username == principals[workload["metadata"]["name"]]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == settings.metrics_port
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(settings.metrics_port)


def test_the_k8s_stream_worker_mounts_a_key_for_every_configured_province(k8s_docs):
    configmaps = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    streams = next(d for d in k8s_docs if d["metadata"]["name"] == "roadx-streams")
    spec = streams["spec"]["template"]["spec"]
    settings = resolve(_container_env(spec["containers"][0], configmaps))
    volume = next(v for v in spec["volumes"] if v["name"] == "secrets")
    paths = {item["path"] for source in volume["projected"]["sources"] for item in source["secret"]["items"]}
    keys_dir = settings.province_keys_dir.relative_to(settings.master_key_file.parent)
    assert {f"{keys_dir}/{p}.key" for p in settings.provinces} <= paths
    assert settings.master_key_file.name in paths


def test_alert_rules_cover_stalls_lag_dlq_and_quality_with_known_metrics():
    groups = _load_yaml(CLUSTER / "alerts.yml")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"RoadxProvinceStalled", "RoadxConsumerLagGrowing", "RoadxDlqSpike", "RoadxQualityDrop"} <= names
    for rule in rules:
        assert rule["labels"]["severity"] in ("info", "warning", "critical") and rule["annotations"]["summary"]
        used = _metric_names(rule["expr"])
        assert used <= COUNTERS | HISTOGRAMS, (rule["alert"], used - COUNTERS - HISTOGRAMS)
        assert used or re.search(r"\bup\b", rule["expr"]), rule["alert"]


def test_the_dashboard_is_importable_json_using_only_known_metrics():
    dashboard = json.loads((CLUSTER / "grafana" / "roadx-dashboard.json").read_text("utf-8"))
    assert dashboard["uid"] and dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used <= COUNTERS | HISTOGRAMS, used - COUNTERS - HISTOGRAMS
    assert {"roadx_stream_events_total", "roadx_consumer_lag", "roadx_sink_insert_seconds",
            "roadx_stream_dlq_total", "roadx_quality_findings_total"} <= used
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "province" in variables


def test_the_dashboard_provisioning_points_at_the_mounted_dashboard(compose):
    provider = _load_yaml(CLUSTER / "grafana" / "provisioning" / "dashboards" / "roadx.yaml")["providers"][0]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/roadx-dashboard.json:{provider['options']['path']}/roadx-dashboard.json:ro" in mounts


def test_the_settings_fields_used_by_the_manifests_exist():
    fields = set(Settings.__dataclass_fields__)
    for text in ((CLUSTER / "compose.yaml").read_text("utf-8"),
                 *(p.read_text("utf-8") for p in (CLUSTER / "k8s").glob("*.yaml"))):
        for var in re.findall(r"\bROADX_[A-Z0-9_]+", text):
            assert var[len("ROADX_"):].lower() in fields, var
