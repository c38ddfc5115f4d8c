"""Shared fixtures: one embedded broker for the whole session, fresh names per test."""

from __future__ import annotations

import uuid

import pytest

from deploy.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real Tansu broker on a free loopback port, stopped at the end of the session."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    running = EmbeddedBroker.start(log_path=log)
    yield running
    running.stop()


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names of one test."""
    return uuid.uuid4().hex[:10]
