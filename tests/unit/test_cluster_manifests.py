"""Cluster files parse, and every roadx service's settings resolve and agree with each other."""

from __future__ import annotations

import ast
import datetime as dt
import functools
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.acl import CASES_PRINCIPAL, SERVICE_PRINCIPAL, SINK_PRINCIPAL, STREAMS_PRINCIPAL
from schemas.credentials import Credentials, credentials_file
from schemas.errors import SettingsError
from schemas.keys import HubKeys, PartyKeys
from schemas.settings import Settings, resolve

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "cluster"
ROADX_SERVICES = ("roadx-topics", "roadx-streams", "roadx-sink", "roadx-service", "roadx-cases")
# The hub's workers: each reads the parties' registered keys and the hub's own in <data-dir>/keys.
HUB_WORKERS = ("roadx-streams", "roadx-sink", "roadx-service", "roadx-cases")
# The series a prometheus_client metric of each kind exposes, after the name it is given.
SERIES_SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count"),
                   "Summary": ("_sum", "_count")}


def _load_yaml(path: Path):
    return yaml.safe_load(path.read_text("utf-8"))


@functools.cache
def _defined() -> frozenset[str]:
    """Every roadx_* series the code's metrics expose, read from where they are defined."""
    series = set()
    for package in ("schemas", "producers", "streams", "sinks", "deploy"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                    continue
                kind = getattr(node.func, "id", getattr(node.func, "attr", None))
                name = node.args[0].value
                if kind in SERIES_SUFFIXES and isinstance(name, str) and name.startswith("roadx_"):
                    base = name.removesuffix("_total") if kind == "Counter" else name
                    series |= {base + suffix for suffix in SERIES_SUFFIXES[kind]}
    return frozenset(series)


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\broadx_[a-z0-9_]+", expr))


def _roadx_env(env: dict) -> dict[str, str]:
    return {k: str(v) for k, v in env.items() if k.startswith("ROADX_")}


def test_the_metrics_the_code_defines_are_found():
    assert {"roadx_stream_events_total", "roadx_consumer_lag", "roadx_sink_insert_seconds_bucket",
            "roadx_service_requests_total", "roadx_service_request_seconds_bucket",
            "roadx_service_changes_applied_total", "roadx_service_changes_unreadable_total",
            "roadx_service_last_change_timestamp_seconds"} <= _defined()
    assert "roadx_consumer_lag_total" not in _defined() and "roadx_sink_insert_seconds" not in _defined()


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


def test_compose_runs_the_information_service_replicas_with_health_check_and_credentials(compose):
    services = compose["services"]
    service = services["roadx-service"]
    settings = resolve(_roadx_env(service["environment"]))
    assert service["command"] == ["roadx", "worker", "service"]
    assert service["depends_on"]["roadx-topics"] == {"condition": "service_completed_successfully"}
    assert settings.service_host == "0.0.0.0" and settings.service_port == 8080
    replicas = service["deploy"]["replicas"]
    assert replicas >= 2 and "container_name" not in service
    (published,) = service["ports"]  # HOST_IP:FIRST-LAST:CONTAINER_PORT, one host port per replica
    host_ip, host_ports, container_port = published.split(":")
    first, _, last = host_ports.partition("-")
    assert int(container_port) == settings.service_port and int(last or first) - int(first) + 1 >= replicas
    check = service["healthcheck"]["test"]
    assert check[0] == "CMD" and f"http://127.0.0.1:{settings.service_port}/v1/health" in " ".join(check)
    # The credentials: read-only in the service, written by the roadx-hub-keys tool (not started by up).
    keys_dir = str(credentials_file(settings.data_dir).parent)
    (keys,) = [v for v in service["volumes"] if v.split(":")[1] == keys_dir]
    volume = keys.split(":")[0]
    assert keys.endswith(":ro") and volume in compose["volumes"]
    tool = services["roadx-hub-keys"]
    assert tool["profiles"] == ["tools"] and tool["entrypoint"] == ["roadx", "keys"]
    tool_settings = resolve(_roadx_env(tool["environment"]))
    assert f"{volume}:{str(credentials_file(tool_settings.data_dir).parent)}" in tool["volumes"]
    # A new volume takes the owner and mode of the image's directory: the roadx user's, 0700.
    dockerfile = (CLUSTER / "Dockerfile").read_text("utf-8")
    assert f"chmod 700 {keys_dir}" in dockerfile and f"mkdir -p {keys_dir}" in dockerfile


def test_compose_runs_the_case_workflows_after_the_topics_with_the_registered_keys(compose):
    services = compose["services"]
    cases = services["roadx-cases"]
    assert cases["command"] == ["roadx", "worker", "cases"]
    assert cases["depends_on"]["roadx-topics"] == {"condition": "service_completed_successfully"}
    assert cases["depends_on"]["roadx-keys"] == {"condition": "service_completed_successfully"}
    assert "container_name" not in cases and "ports" not in cases  # scaled by partitions, no HTTP API
    settings = resolve(_roadx_env(cases["environment"]))
    # It verifies replies with the parties' registered event secrets, in the hub's key directory.
    assert f"roadx-hub-keys:{settings.data_dir / 'keys'}:ro" in cases["volumes"]
    assert not settings.auto_keys
    assert min(settings.case_receipt_seconds, settings.case_answer_seconds, settings.case_check_seconds,
               settings.case_reply_grace_seconds) > 0
    # The deadlines are shared: the sink judges timeliness by the ones the workflows alert by.
    sink = resolve(_roadx_env(services["roadx-sink"]["environment"]))
    assert (sink.case_receipt_seconds, sink.case_answer_seconds) == (settings.case_receipt_seconds,
                                                                     settings.case_answer_seconds)


def _hub_keys_dir(settings: Settings) -> Path:
    """Where the hub's workers read the parties' registered keys and the hub's own key pair."""
    keys = HubKeys(settings.data_dir / "keys")
    assert keys.registry_file.parent == keys.hub_private_file.parent == settings.data_dir / "keys"
    return keys.directory


def test_every_compose_hub_worker_reads_the_hub_keys_volume_and_makes_no_party_key(compose):
    services = compose["services"]
    for name in HUB_WORKERS:
        settings = resolve(_roadx_env(services[name]["environment"]))
        assert settings.auto_keys is False, name
        volumes = services[name]["volumes"]
        assert f"roadx-hub-keys:{_hub_keys_dir(settings)}:ro" in volumes, name
        # Nothing of a party's own side: no volume where the parties' keys would be.
        mounts = [Path(v.split(":")[1]) for v in volumes]
        assert not [m for m in mounts if m == settings.party_keys_dir or settings.party_keys_dir in m.parents], name
        assert services[name]["depends_on"]["roadx-keys"] == {"condition": "service_completed_successfully"}
    assert "roadx-hub-keys" in compose["volumes"] and "roadx-province-keys" not in compose["volumes"]


def test_compose_makes_the_hub_key_pair_once_and_its_tool_registers_and_withdraws_party_keys(compose):
    services = compose["services"]
    once = services["roadx-keys"]
    settings = resolve(_roadx_env(once["environment"]))
    command = once["entrypoint"][-1]
    assert once["restart"] == "no" and "roadx keys hub-public" in command
    assert f"test -s {settings.master_key_file}" in command  # the master key is kept, for PII tokens
    assert f"roadx-hub-keys:{_hub_keys_dir(settings)}" in once["volumes"]  # written: no ":ro"
    tool = services["roadx-hub-keys"]
    assert tool["entrypoint"] == ["roadx", "keys"] and tool["profiles"] == ["tools"]
    assert f"roadx-hub-keys:{_hub_keys_dir(resolve(_roadx_env(tool['environment'])))}" in tool["volumes"]
    text = (CLUSTER / "compose.yaml").read_text("utf-8")
    assert "run --rm -T roadx-hub-keys register - < registration.json" in text
    assert "roadx-hub-keys withdraw" in text and "roadx-hub-keys hub-public" in text


def test_prometheus_scrapes_each_roadx_service_on_its_metrics_port(compose):
    config = _load_yaml(CLUSTER / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    for name in ("roadx-streams", "roadx-sink"):
        settings = resolve(_roadx_env(compose["services"][name]["environment"]))
        assert f"{name}:{settings.metrics_port}" in targets
        assert jobs[name]["static_configs"][0]["labels"]["component"] == name.removeprefix("roadx-")
    # Every replica of the service: each address compose's DNS gives for its name.
    settings = resolve(_roadx_env(compose["services"]["roadx-service"]["environment"]))
    (dns,) = jobs["roadx-service"]["dns_sd_configs"]
    assert dns == {"names": ["roadx-service"], "type": "A", "port": settings.metrics_port}
    assert {"target_label": "component", "replacement": "service"} in jobs["roadx-service"]["relabel_configs"]
    # Every worker of the case workflows, however many compose runs.
    settings = resolve(_roadx_env(compose["services"]["roadx-cases"]["environment"]))
    (dns,) = jobs["roadx-cases"]["dns_sd_configs"]
    assert dns == {"names": ["roadx-cases"], "type": "A", "port": settings.metrics_port}
    assert {"target_label": "component", "replacement": "cases"} in jobs["roadx-cases"]["relabel_configs"]
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
    assert {w["metadata"]["name"] for w in workloads} == {"roadx-streams", "roadx-sink", "roadx-service",
                                                         "roadx-cases", "roadx-topics-apply"}
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
    principals = {"roadx-streams": STREAMS_PRINCIPAL, "roadx-sink": SINK_PRINCIPAL, "roadx-service": SERVICE_PRINCIPAL,
                  "roadx-cases": CASES_PRINCIPAL}
    for workload in [w for w in k8s_docs if w["kind"] == "Deployment"]:
        template = workload["spec"]["template"]
        (container,) = template["spec"]["containers"]
        settings = resolve(_container_env(container, configmaps))
        assert settings.kafka_sasl_username == principals[workload["metadata"]["name"]]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == settings.metrics_port
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(settings.metrics_port)


HUB_KEYS_FILES = ("hub-sm2.key", "hub.pem", "parties.json")


def _hub_keys_sidecar(k8s_docs, name: str):
    """(settings, pod spec, container, sidecar) of a hub worker Deployment."""
    configmaps = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    spec = _k8s_named(k8s_docs, "Deployment", name)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (sidecar,) = spec["initContainers"]
    return resolve(_container_env(container, configmaps)), spec, container, sidecar


@pytest.mark.parametrize("name", HUB_WORKERS)
def test_every_k8s_hub_worker_reads_the_hub_keys_0600_copied_from_their_secret(k8s_docs, name):
    settings, spec, container, sidecar = _hub_keys_sidecar(k8s_docs, name)
    assert settings.auto_keys is False
    keys_dir = _hub_keys_dir(settings)
    volumes = {v["name"]: v for v in spec["volumes"]}
    (keys,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(keys_dir)]
    assert keys["readOnly"] is True and volumes[keys["name"]]["emptyDir"]["medium"] == "Memory"
    # The sidecar copies every file of its source directory into that volume, and keeps doing so.
    assert sidecar["restartPolicy"] == "Always"
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    assert mounts[keys["name"]]["mountPath"] == str(keys_dir) and not mounts[keys["name"]].get("readOnly")
    (source_name,) = [n for n in mounts if n != keys["name"]]
    source = volumes[source_name]
    secrets = ([source["secret"]["secretName"]] if "secret" in source
               else [s["secret"]["name"] for s in source["projected"]["sources"]])
    assert "roadx-hub-keys" in secrets
    hub_keys = source["secret"] if "secret" in source else next(
        s["secret"] for s in source["projected"]["sources"] if s["secret"]["name"] == "roadx-hub-keys")
    assert "items" not in hub_keys  # the whole Secret: hub-sm2.key, hub.pem, parties.json
    script = sidecar["command"][-1]
    assert f"src={mounts[source_name]['mountPath']}\n" in script and f"dst={keys_dir}\n" in script
    assert "install -m 0600" in script
    probe = " ".join(sidecar["startupProbe"]["exec"]["command"])
    assert f"test -s {keys_dir}/hub-sm2.key" in probe and f"test -s {keys_dir}/hub.pem" in probe


def test_the_k8s_sidecars_are_one_script_and_no_manifest_names_a_province_key():
    texts = {p.name: p.read_text("utf-8") for p in (CLUSTER / "k8s").glob("*.yaml")}
    texts["compose.yaml"] = (CLUSTER / "compose.yaml").read_text("utf-8")
    for name, text in texts.items():
        assert "roadx-province-keys" not in text and "provinces/" not in text, name
        # No party's private key file: the only private keys are the hub's and the master key.
        assert not re.search(r"\bsm2\.key\b", text.replace("hub-sm2.key", "")), name
        assert not re.search(r"\b\d\d\.key\b", text), name


def test_the_k8s_workers_mount_no_secret_but_the_hub_keys_the_master_key_and_kafka_credentials(k8s_docs):
    allowed = {"roadx-hub-keys", "roadx-secrets", "roadx-kafka-ca", "roadx-service-credentials"}
    for workload in [d for d in k8s_docs if d["kind"] == "Deployment"]:
        for volume in workload["spec"]["template"]["spec"]["volumes"]:
            names = ([volume["secret"]["secretName"]] if "secret" in volume
                     else [s["secret"]["name"] for s in volume.get("projected", {}).get("sources", [])])
            for secret in names:
                assert secret in allowed or secret.endswith("-kafka"), (workload["metadata"]["name"], secret)
            if "secret" in volume and volume["secret"]["secretName"] == "roadx-secrets":
                assert [i["key"] for i in volume["secret"]["items"]] == ["master.key"]


def _k8s_named(docs, kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_the_k8s_information_service_is_probed_on_health_and_served_on_port_80(k8s_docs):
    configmaps = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    deployment = _k8s_named(k8s_docs, "Deployment", "roadx-service")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    settings = resolve(_container_env(container, configmaps))
    assert container["args"] == ["roadx", "worker", "service"] and deployment["spec"]["replicas"] >= 2
    assert settings.service_host == "0.0.0.0" and settings.clickhouse_url
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == settings.service_port == 8080
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/health", "port": "http"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    # Its copy of the register: a cache in an emptyDir holding the data directory.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[str(settings.data_dir)]["name"]]
    # Any ready replica answers: a plain Service, port 80 to the http port.
    service = _k8s_named(k8s_docs, "Service", "roadx-service")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and port["targetPort"] == "http"
    assert service["spec"].get("sessionAffinity", "None") == "None"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    budget = _k8s_named(k8s_docs, "PodDisruptionBudget", "roadx-service")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_the_k8s_case_workflows_run_as_their_principal_with_no_service(k8s_docs):
    configmaps = {d["metadata"]["name"]: d["data"] for d in k8s_docs if d["kind"] == "ConfigMap"}
    deployment = _k8s_named(k8s_docs, "Deployment", "roadx-cases")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    settings = resolve(_container_env(container, configmaps))
    assert container["args"] == ["roadx", "worker", "cases"] and deployment["spec"]["replicas"] == 2
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "cases"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert settings.kafka_sasl_username == CASES_PRINCIPAL
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert {p["name"] for p in container["ports"]} == {"metrics"}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    password = volumes[mounts[str(settings.kafka_sasl_password_file.parent)]]
    assert password["secret"]["secretName"] == "roadx-cases-kafka"
    assert "emptyDir" in volumes[mounts[str(settings.data_dir)]]
    assert min(settings.case_receipt_seconds, settings.case_answer_seconds, settings.case_check_seconds,
               settings.case_reply_grace_seconds) > 0
    # No HTTP API: nothing routes to it.
    assert not [d for d in k8s_docs if d["kind"] == "Service" and d["metadata"]["name"] == "roadx-cases"]


def test_the_k8s_information_service_reads_its_credentials_beside_the_hub_keys(k8s_docs):
    settings, spec, container, sidecar = _hub_keys_sidecar(k8s_docs, "roadx-service")
    path = credentials_file(settings.data_dir)
    assert path.parent == _hub_keys_dir(settings)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    (source,) = [volumes[n] for n in mounts if "projected" in volumes[n]]
    credentials = next(s["secret"] for s in source["projected"]["sources"]
                       if s["secret"]["name"] == "roadx-service-credentials")
    assert credentials["items"] == [{"key": path.name, "path": path.name}]
    assert f"test -s {path}" in " ".join(sidecar["startupProbe"]["exec"]["command"])


@pytest.mark.skipif(not all(shutil.which(tool) for tool in ("sh", "cmp", "install")), reason="needs sh, cmp, install")
def test_the_keys_sidecar_copies_each_file_0600_and_again_when_it_changes(k8s_docs, tmp_path):
    _settings, _spec, _container, sidecar = _hub_keys_sidecar(k8s_docs, "roadx-service")
    script = sidecar["command"][-1]
    assert "sleep 30" in script
    # Every worker runs the same sidecar.
    assert {_hub_keys_sidecar(k8s_docs, name)[3]["command"][-1] for name in HUB_WORKERS} == {script}
    source_dir, keys_dir, party_dir = tmp_path / "secret", tmp_path / "keys", tmp_path / "party"
    source_dir.mkdir()
    keys_dir.mkdir()
    script = re.sub(r"src=\S+", f"src={source_dir}", script)
    script = re.sub(r"dst=\S+", f"dst={keys_dir}", script).replace("sleep 30", "sleep 0.05")
    now = dt.datetime.now(dt.timezone.utc)
    # The hub's side, made as roadx keys would, then left in the Secret's mode (0440 with fsGroup).
    hub = HubKeys.load(source_dir)
    hub.hub_public_pem()
    party = PartyKeys(party_dir, "44")
    hub.register(party.init(now).registration(), now, ("44",))
    Credentials.load(source_dir / "api-credentials.json").issue("44", now)
    for path in source_dir.iterdir():
        if not path.name.endswith(".lock"):
            path.chmod(0o440)
    for path in source_dir.glob("*.lock"):
        path.unlink()

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "the sidecar did not copy the files"
            time.sleep(0.02)

    def copied() -> bool:
        return all((keys_dir / p.name).exists() and (keys_dir / p.name).read_bytes() == p.read_bytes()
                   for p in source_dir.iterdir())

    process = subprocess.Popen([*sidecar["command"][:-1], script])
    try:
        wait_for(copied)
        assert sorted(p.name for p in keys_dir.iterdir()) == sorted(
            [*HUB_KEYS_FILES, "api-credentials.json"])
        assert {p.stat().st_mode & 0o777 for p in keys_dir.iterdir()} == {0o600}
        copy = HubKeys.load(keys_dir)
        assert [k.party for k in copy.entries()] == ["44"] and copy.hub_public_pem() == hub.hub_public_pem()
        assert [c.party for c in Credentials.load(keys_dir / "api-credentials.json").entries()] == ["44"]
        # The Secret changes: a key withdrawn; the copy follows and a worker sees it on reload.
        (source_dir / "parties.json").chmod(0o600)
        withdrawn = hub.revoke(copy.entries()[0].key_id, now)
        (source_dir / "parties.json").chmod(0o440)
        wait_for(copied)
        assert copy.reload_if_changed() and copy.entries()[0].revoked == withdrawn.revoked
        assert (keys_dir / "parties.json").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_pod_monitor_scrapes_every_roadx_deployment_labelled_with_its_component(k8s_docs):
    monitor = _k8s_named(k8s_docs, "PodMonitor", "roadx")
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "targetLabel": "component"} in endpoint["relabelings"]
    deployments = [d for d in k8s_docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"roadx-streams", "roadx-sink", "roadx-service",
                                                           "roadx-cases"}
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
        assert labels["app.kubernetes.io/component"] == deployment["metadata"]["name"].removeprefix("roadx-")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert endpoint["port"] in {p["name"] for p in container["ports"]}


def _alert_rules() -> list[dict]:
    return [r for g in _load_yaml(CLUSTER / "alerts.yml")["groups"] for r in g["rules"]]


def test_alert_rules_cover_stalls_lag_dlq_and_quality_with_metrics_the_code_defines():
    rules = _alert_rules()
    names = {r["alert"] for r in rules}
    assert {"RoadxProvinceStalled", "RoadxConsumerLagGrowing", "RoadxDlqSpike", "RoadxQualityDrop"} <= names
    for rule in rules:
        assert rule["labels"]["severity"] in ("info", "warning", "critical") and rule["annotations"]["summary"]
        used = _metric_names(rule["expr"])
        assert used <= _defined(), (rule["alert"], used - _defined())
        # A rule reads a roadx metric, up, or (readiness, Kubernetes only) kube-state-metrics.
        assert used or re.search(r"\bup\b|\bkube_deployment_", rule["expr"]), rule["alert"]


def test_alert_rules_cover_the_information_service():
    rules = {r["alert"]: r for r in _alert_rules()}
    service = {name: rule["expr"] for name, rule in rules.items() if name.startswith("RoadxService")}
    assert {"RoadxServiceDown", "RoadxServiceNotReady", "RoadxServiceRegisterStale", "RoadxServiceErrors",
            "RoadxServiceSlow"} <= service.keys()
    assert 'up{component="service"}' in service["RoadxServiceDown"]
    assert 'deployment="roadx-service"' in service["RoadxServiceNotReady"]
    assert {"roadx_service_changes_applied_total", "roadx_stream_events_total"} <= _metric_names(
        service["RoadxServiceRegisterStale"])
    assert 'status=~"5.."' in service["RoadxServiceErrors"]
    assert "histogram_quantile(0.99" in service["RoadxServiceSlow"] and "> 0.02" in service["RoadxServiceSlow"]


def test_alert_rules_cover_the_case_workflows():
    rules = {r["alert"]: r for r in _alert_rules()}
    cases = {name: rule for name, rule in rules.items() if name.startswith("RoadxCases")}
    assert {"RoadxCasesDown", "RoadxCasesRepliesRefused", "RoadxCasesDeadlinesMissed"} <= cases.keys()
    assert 'up{component="cases"}' in cases["RoadxCasesDown"]["expr"]
    refused = cases["RoadxCasesRepliesRefused"]
    assert 'roadx_cases_replies_total{outcome="refused"}' in refused["expr"] and "[15m]" in refused["expr"]
    assert refused["labels"]["severity"] == "warning"
    missed = cases["RoadxCasesDeadlinesMissed"]
    assert _metric_names(missed["expr"]) == {"roadx_cases_alerts_total"} and "target" in missed["expr"]
    assert missed["labels"]["severity"] in ("info", "warning") and "$labels.target" in missed["annotations"]["summary"]


def test_the_dashboard_is_importable_json_using_only_metrics_the_code_defines():
    dashboard = json.loads((CLUSTER / "grafana" / "roadx-dashboard.json").read_text("utf-8"))
    assert dashboard["uid"] and dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used <= _defined(), used - _defined()
    assert {"roadx_stream_events_total", "roadx_consumer_lag", "roadx_sink_insert_seconds_bucket",
            "roadx_stream_dlq_total", "roadx_quality_findings_total"} <= used
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "province" in variables


def test_the_dashboard_has_an_information_service_row_with_every_service_metric():
    panels = json.loads((CLUSTER / "grafana" / "roadx-dashboard.json").read_text("utf-8"))["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    start = next(i for i in rows if panels[i]["title"] == "Information service")
    end = min([i for i in rows if i > start], default=len(panels))
    section = panels[start + 1:end]
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in section}
    used = set().union(*(_metric_names(e) for e in exprs.values()))
    # Every metric of the service is on its row (a new one needs a panel).
    assert {name for name in _defined() if name.startswith("roadx_service_")} - used <= {
        "roadx_service_request_seconds_sum", "roadx_service_request_seconds_count"}
    requests = next(e for e in exprs.values() if "roadx_service_requests_total" in e)
    assert "by (endpoint, status)" in requests
    latency = next(e for e in exprs.values() if "roadx_service_request_seconds_bucket" in e)
    assert "histogram_quantile(0.5," in latency and "histogram_quantile(0.99," in latency and "endpoint" in latency
    freshness = next(e for e in exprs.values() if "roadx_service_last_change_timestamp_seconds" in e)
    assert "time() -" in freshness
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels[:start])
    assert panels[start]["gridPos"]["y"] >= bottom


def test_the_dashboard_has_a_case_workflows_row_with_every_cases_metric():
    panels = json.loads((CLUSTER / "grafana" / "roadx-dashboard.json").read_text("utf-8"))["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    start = next(i for i in rows if panels[i]["title"] == "Case workflows")
    end = min([i for i in rows if i > start], default=len(panels))
    exprs = [" ".join(t["expr"] for t in p["targets"]) for p in panels[start + 1:end]]
    used = set().union(*(_metric_names(e) for e in exprs))
    cases = {name for name in _defined() if name.startswith("roadx_cases_")}
    assert {"roadx_cases_routed_total", "roadx_cases_replies_total", "roadx_cases_alerts_total"} <= cases
    assert cases <= used  # a new metric of the case workflows needs a panel
    assert "by (target)" in next(e for e in exprs if "roadx_cases_routed_total" in e)
    assert "by (province, outcome)" in next(e for e in exprs if "roadx_cases_replies_total" in e)
    assert "by (target, deadline)" in next(e for e in exprs if "roadx_cases_alerts_total" in e)
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels[:start])
    assert panels[start]["gridPos"]["y"] >= bottom


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
