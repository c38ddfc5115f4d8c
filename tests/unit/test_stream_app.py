"""The thin parts around the pure stage: the batch view of the seen table, metrics, app wiring."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import REGISTRY

from deploy.settings import Settings
from streams import metrics
from streams.app import SEEN_TABLE, BatchSeen, create_app
from streams.errors import WorkerError
from streams.pipeline import BatchResult


def test_batch_seen_sees_stored_and_pending_ids_but_writes_only_pending():
    table = {"stored": 1}
    seen = BatchSeen(table)
    seen["new"] = 2
    assert "stored" in seen and "new" in seen and "other" not in seen
    assert seen["new"] == 2 and seen["stored"] == 1
    assert table == {"stored": 1}
    assert seen.pending == {"new": 2}
    assert sorted(seen) == ["new", "stored"] and len(seen) == 2


def test_metrics_count_outcomes_rules_and_routes():
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("roadx_stream_events_total", outcome="accepted", province="44"),
        value("roadx_stream_rejected_total", rule="invalid_uscc", province="44"),
        value("roadx_stream_routed_total", source="44", target="11"),
    )
    metrics.observe(BatchResult(
        counts=Counter({("accepted", "44"): 3, ("rejected", "44"): 1}),
        rejects=Counter({("invalid_uscc", "44"): 1}),
        routed=Counter({("44", "11"): 2}),
    ))
    after = (
        value("roadx_stream_events_total", outcome="accepted", province="44"),
        value("roadx_stream_rejected_total", rule="invalid_uscc", province="44"),
        value("roadx_stream_routed_total", source="44", target="11"),
    )
    assert [a - b for a, b in zip(after, before)] == [3, 1, 2]


def test_app_subscribes_to_every_province_topic_with_a_seen_table(tmp_path):
    settings = Settings(
        data_dir=tmp_path, bootstrap_servers="127.0.0.1:9", topic_prefix="tx.", provinces=("11", "44"),
        master_key_file=None,
    )
    app = create_app(settings)
    assert app.conf.id == "tx.roadx-streams"
    assert app.conf.web_enabled is False
    assert app.conf.broker_session_timeout == 6.0
    agent = next(iter(app.agents.values()))
    assert set(agent.channel.topics) == {"tx.prov.11.changes", "tx.prov.44.changes"}
    table = app.tables[SEEN_TABLE]
    assert table.partitions == settings.partitions
    assert table.changelog_topic.get_topic_name() == f"tx.roadx-streams-{SEEN_TABLE}-changelog"


def test_app_without_a_broker_is_refused(tmp_path):
    with pytest.raises(WorkerError, match="bootstrap servers"):
        create_app(Settings(data_dir=tmp_path))
