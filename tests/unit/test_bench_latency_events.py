"""The latency runs' events go on from the adapter's generator: the stage accepts every one."""

from __future__ import annotations

from collections import Counter

from deploy.bench.phases import later_events
from producers.synthetic import SyntheticProvinces
from schemas import signing
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.topics import TopicNames
from streams.pipeline import Inbound, StageContext, process_batch

PROVINCES = ("11", "44", "65")
TOPICS = TopicNames("t.")
CODEC = EventCodec(EmbeddedRegistry())
KEYS = {p: signing.mac(b"test-master", p.encode()) for p in PROVINCES}
CTX = StageContext(CODEC, TOPICS, {p: (key,) for p, key in KEYS.items()}, frozenset(PROVINCES))


def through_the_stage(events: list[dict], state: dict) -> tuple[Counter, Counter]:
    """(outcomes, rejecting rules) of ``events`` run through the stage with ``state``."""
    messages = [Inbound(TOPICS.province_changes(e["source"]["province"]), 0, i, e["entity_key"].encode(),
                        CODEC.encode(e, KEYS[e["source"]["province"]])) for i, e in enumerate(events)]
    outcomes, rejects = Counter(), Counter()
    for start in range(0, len(messages), 1000):
        result = process_batch(messages[start:start + 1000], CTX, state, now_ms=1)
        for (outcome, _province), n in result.counts.items():
            outcomes[outcome] += n
        for (rule, _province), n in result.rejects.items():
            rejects[rule] += n
    return outcomes, rejects


def test_every_latency_event_is_new_to_the_line_and_accepted():
    published, counts = 3_000, [400, 900]
    state: dict = {}
    adapter = [item.event for item in SyntheticProvinces(PROVINCES, 11).events(published)]
    through_the_stage(adapter, state)
    loads = later_events(PROVINCES, 11, published, counts)
    assert [len(load) for load in loads] == counts
    for load in loads:
        outcomes, rejects = through_the_stage(load, state)
        assert outcomes == Counter({"accepted": len(load)}), (outcomes, rejects)


def test_a_generator_of_another_seed_takes_cases_back_and_is_stale():
    """Why: the runs used generators of their own seeds, whose numbers start again."""
    state: dict = {}
    through_the_stage([item.event for item in SyntheticProvinces(PROVINCES, 11).events(3_000)], state)
    outcomes, rejects = through_the_stage(
        [item.event for item in SyntheticProvinces(PROVINCES, 12, 0.0, 0.0).events(900)], state)
    assert outcomes["accepted"] < 900
    assert outcomes["stale"] > 0 or rejects["case_stage_backwards"] > 0
