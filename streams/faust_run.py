"""Running a faust app inside the worker shell: started, kept until the shell's stop event is
set (SIGTERM, SIGINT), then stopped — without faust's own ``Worker``, whose signal handling
and terminal output the shell already does its own way. ``broker_credentials`` gives a faust
app the Kafka security every other client of the process gets from ``settings.kafka_conf``
(TLS, SASL PLAIN or SCRAM)."""

from __future__ import annotations

import asyncio
import ssl
import threading

import faust
from faust.types.auth import CredentialsT

from schemas.settings import Settings

STOP_POLL_SECONDS = 0.2


def run_until_stopped(app: faust.App, stop: threading.Event) -> None:
    asyncio.run(_serve(app, stop))


async def _serve(app: faust.App, stop: threading.Event) -> None:
    await app.start()
    try:
        while not stop.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)
    finally:
        await app.stop()


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """faust's credentials for ``ROADX_KAFKA_SECURITY_PROTOCOL`` and its SASL and TLS settings;
    None for plaintext."""
    protocol = settings.kafka_security_protocol or "PLAINTEXT"
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None)
        if settings.kafka_ssl_certificate_file and settings.kafka_ssl_key_file:
            context.load_cert_chain(str(settings.kafka_ssl_certificate_file), str(settings.kafka_ssl_key_file))
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    conf = settings.kafka_security_conf()
    return faust.SASLCredentials(username=conf.get("sasl.username"), password=conf.get("sasl.password"),
                                 mechanism=conf.get("sasl.mechanism"), ssl_context=context)
