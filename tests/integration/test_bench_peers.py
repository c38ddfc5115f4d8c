"""The bench's peers (faust-streaming and Quix Streams running the stream stage) against the real
embedded broker: each, over a few hundred synthetic events, writes what the worker's stage writes.

The expected outputs are the stage's own: ``process_batch`` in this process over every source
partition in order, on one state; those of entities on two provinces' topics, which depend on the
order the topics are read in, are left out (``deploy.bench.outputs``).
"""

from __future__ import annotations

import importlib.util

import pytest

from deploy.bench.outputs import crossing, read_written, written
from deploy.bench.peers import PeerStage
from deploy.bench.watch import Child, CommitLog, count_messages, wait_until
from deploy.topics import create_topics, exchange_topics
from producers.synthetic import publish_synthetic
from schemas.codec import FindingCodec, SubmissionTallyCodec
from schemas.kafka import read_topics
from schemas.provenance import event_digest
from schemas.settings import Settings
from schemas.topics import TopicNames
from streams.pipeline import Inbound, process_batch
from streams.rules import RULES

pytestmark = pytest.mark.integration

EVENTS = 400


@pytest.fixture(scope="module")
def loaded(broker, tmp_path_factory):
    """Synthetic provinces published through the adapter path (with manifests, so tallies), and the
    stage's expected outputs over them."""
    bootstrap = broker.bootstrap_servers
    settings = Settings(data_dir=tmp_path_factory.mktemp("peers"), bootstrap_servers=bootstrap,
                        topic_prefix="peers-src.", provinces=("11", "44", "31", "51"), partitions=2,
                        national_partitions=2, stream_batch_size=100)
    create_topics(bootstrap, exchange_topics(settings))
    publish_synthetic(settings, EVENTS, seed=11)
    return settings, expected_outputs(settings)


def expected_outputs(settings: Settings):
    stage = PeerStage.from_settings(settings, settings.topic_prefix)
    sources = [settings.topics.province_changes(p) for p in settings.provinces]
    by_partition: dict[tuple[str, int], list[Inbound]] = {}
    for messages in read_topics({"bootstrap.servers": settings.bootstrap_servers}, "peers-expected", sources,
                                error=RuntimeError, what="read the sources"):
        for m in messages:
            by_partition.setdefault((m.topic(), m.partition()), []).append(
                Inbound(m.topic(), m.partition(), m.offset(), m.key(), m.value()))
    state: dict = {}
    outputs = []
    for part in sorted(by_partition):
        outputs += process_batch(by_partition[part], stage.ctx, state, now_ms=1).outputs
    registry = stage.ctx.codec.registry
    apart = crossing(((m.topic, m.key, m.value) for part in by_partition.values() for m in part), event_digest)
    return written(((o.topic, o.key, o.value, o.headers) for o in outputs), settings.topics, settings.provinces,
                   FindingCodec(registry).decode, SubmissionTallyCodec(registry).decode,
                   frozenset(r.code for r in RULES if r.refers_to), apart), apart


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["faust", pytest.param("quix", marks=pytest.mark.skipif(
    importlib.util.find_spec("quixstreams") is None, reason="Quix Streams is the bench extra (pip install 'roadx[bench]')"))])
def test_a_peer_writes_the_outputs_the_worker_stage_writes(loaded, kind, unique, tmp_path):
    settings, (expected, apart) = loaded
    out_prefix = f"peer-{kind}-{unique}."
    create_topics(settings.bootstrap_servers, exchange_topics(Settings(
        data_dir=tmp_path, topic_prefix=out_prefix, provinces=settings.provinces, partitions=2, national_partitions=2)))
    sources = [settings.topics.province_changes(p) for p in settings.provinces]
    total = count_messages(settings.bootstrap_servers, sources)
    group = f"peer-{kind}-{unique}"
    commits = CommitLog(settings.bootstrap_servers, group, sources)
    child = Child.module(kind, "deploy.bench.peer_child", settings, tmp_path, kind, "--group", group,
                         "--out-prefix", out_prefix)
    try:
        wait_until(lambda: commits.latest >= total, 240, f"the {kind} peer to commit {total} messages", child.check,
                   every=0.2)
    finally:
        commits.close()
        child.stop()
    got = read_written(settings.bootstrap_servers, TopicNames(out_prefix), settings.provinces, apart)
    assert all(expected.sets.values()), {kind_of_output: len(items) for kind_of_output, items in expected.sets.items()}
    for kind_of_output, items in expected.sets.items():
        assert got.sets[kind_of_output] == items, kind_of_output
