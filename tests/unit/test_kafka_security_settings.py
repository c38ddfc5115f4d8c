"""Kafka client security settings: passed to every client, the password never shown."""

from __future__ import annotations

import pytest

from schemas.errors import SettingsError
from schemas.settings import resolve, to_environ

SECRET = "s3cr3t-Pa55word"


@pytest.fixture
def secured(tmp_path):
    password = tmp_path / "kafka.password"
    password.write_text(SECRET + "\n", "utf-8")
    env = {
        "ROADX_DATA_DIR": str(tmp_path),
        "ROADX_BOOTSTRAP_SERVERS": "kafka-1:9093",
        "ROADX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ROADX_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ROADX_KAFKA_SASL_USERNAME": "roadx-streams",
        "ROADX_KAFKA_SASL_PASSWORD_FILE": str(password),
        "ROADX_KAFKA_SSL_CA_FILE": str(tmp_path / "ca.crt"),
    }
    return resolve(env), password


def test_kafka_conf_carries_tls_and_scram_settings_with_the_password_from_its_file(secured):
    settings, _ = secured
    conf = settings.kafka_conf(**{"group.id": "g"})
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "roadx-streams" and conf["sasl.password"] == SECRET
    assert conf["ssl.ca.location"].endswith("ca.crt") and conf["group.id"] == "g"


def test_the_password_never_appears_in_repr_or_in_the_child_environment(secured):
    settings, password_file = secured
    settings.kafka_conf()
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    env = to_environ(settings)
    assert not any(SECRET in value for value in env.values())
    assert env["ROADX_KAFKA_SASL_PASSWORD_FILE"] == str(password_file.resolve())
    assert resolve(env) == settings


def test_no_security_settings_means_a_plain_client():
    conf = resolve({"ROADX_BOOTSTRAP_SERVERS": "k:9092"}).kafka_conf()
    assert conf == {"bootstrap.servers": "k:9092"}


def test_a_missing_password_file_is_named_without_any_secret(tmp_path):
    settings = resolve({"ROADX_BOOTSTRAP_SERVERS": "k:9092", "ROADX_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                        "ROADX_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "ROADX_KAFKA_SASL_USERNAME": "u",
                        "ROADX_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="cannot read the SASL password file .*missing"):
        settings.kafka_conf()


@pytest.mark.parametrize("env, message", [
    ({"ROADX_KAFKA_SECURITY_PROTOCOL": "TLS"}, "use one of PLAINTEXT"),
    ({"ROADX_KAFKA_SASL_MECHANISM": "GSSAPI"}, "use one of PLAIN"),
    ({"ROADX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs ROADX_KAFKA_SASL_MECHANISM"),
    ({"ROADX_KAFKA_SASL_PASWORD_FILE": "/x"}, "unknown setting ROADX_KAFKA_SASL_PASWORD_FILE"),
    ({"ROADX_REPLICATION_FACTOR": "-1"}, "ROADX_REPLICATION_FACTOR"),
])
def test_bad_security_settings_are_refused_at_resolve(env, message):
    with pytest.raises(SettingsError, match=message):
        resolve(env)
