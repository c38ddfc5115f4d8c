"""A faust app gets the Kafka security the rest of the process gets from the settings."""

from __future__ import annotations

import faust

from schemas.settings import Settings
from streams.faust_run import broker_credentials


def test_plaintext_needs_no_credentials(tmp_path):
    assert broker_credentials(Settings(data_dir=tmp_path)) is None
    assert broker_credentials(Settings(data_dir=tmp_path, kafka_security_protocol="PLAINTEXT")) is None


def test_sasl_over_tls_carries_the_user_the_password_file_and_the_mechanism(tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\\n")
    password.chmod(0o600)
    settings = Settings(data_dir=tmp_path, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_sasl_username="roadx-cases", kafka_sasl_password_file=password)
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("roadx-cases", settings.kafka_security_conf()["sasl.password"])
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context is not None


def test_sasl_without_tls_and_tls_alone(tmp_path):
    password = tmp_path / "password"
    password.write_text("pw")
    plain = broker_credentials(Settings(data_dir=tmp_path, kafka_security_protocol="SASL_PLAINTEXT",
                                        kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
                                        kafka_sasl_password_file=password))
    assert plain.protocol.value == "SASL_PLAINTEXT" and plain.ssl_context is None
    tls = broker_credentials(Settings(data_dir=tmp_path, kafka_security_protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials) and tls.protocol.value == "SSL"
