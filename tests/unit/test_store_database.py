"""Readers of the store default to the configured database, wherever the store is."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from sinks import store as store_mod
from sinks.errors import StoreError
from sinks.store_client import store_client


@pytest.fixture
def opened(monkeypatch):
    """The arguments clickhouse_connect.get_client is called with (no connection is made)."""
    calls = []

    def fake_get_client(**kwargs):
        calls.append(kwargs)
        return object()
    monkeypatch.setattr(store_mod.clickhouse_connect, "get_client", fake_get_client)
    return calls


def test_a_server_url_is_queried_in_the_configured_database_not_the_urls(opened, tmp_path):
    settings = Settings(data_dir=tmp_path, clickhouse_url="http://u:p@ch:8123/other", clickhouse_database="exchange")
    store_client(settings)
    assert opened == [{"dsn": "http://u:p@ch:8123/other", "database": "exchange"}]


def test_the_embedded_store_is_queried_in_the_configured_database(opened, tmp_path):
    settings = Settings(data_dir=tmp_path, clickhouse_database="exchange")
    settings.store_path.mkdir()
    store_client(settings)
    assert opened == [{"dsn": f"chdb://{Path(settings.store_path).resolve()}", "database": "exchange"}]


def test_the_sink_opens_without_a_database_since_it_creates_it(opened, tmp_path):
    store_mod.open_store(Settings(data_dir=tmp_path))
    assert opened[0]["database"] is None


def test_a_store_without_the_database_says_the_sink_creates_it(tmp_path):
    settings = Settings(data_dir=tmp_path, clickhouse_database="exchange")
    settings.store_path.mkdir()
    with pytest.raises(StoreError, match="has no database 'exchange' yet: the sink creates it"):
        store_client(settings)
