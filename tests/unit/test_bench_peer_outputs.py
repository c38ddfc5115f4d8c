"""What the bench compares between the worker's outputs and a peer's (``deploy.bench.outputs``), and the
peers' stage adapter (``deploy.bench.peers``): topics renamed, writes and registry entries handed back."""

from __future__ import annotations

import pytest

from deploy.bench.outputs import crossing, differences, verdict, written
from deploy.bench.peers import PeerStage
from schemas.topics import ORIGIN, TopicNames
from streams.pipeline import OWNER

NAMES = TopicNames("w.")
PROVINCES = ("11", "44")


def finding(rule: str, detected_ms: int, event_id: str = "e1") -> dict:
    return {"finding_id": f"{event_id}/{rule}", "rule": rule, "severity": "warning", "detected_ms": detected_ms}


def tally(ids: list[str], outcomes: str) -> dict:
    return {"party": "44", "submission_id": "s1", "event_ids": ids, "seqs": list(range(len(ids))),
            "digests": b"".join(bytes([i]) * 32 for i in range(len(ids))), "outcomes": outcomes}


def reduce(messages, names=NAMES):
    return written(messages, names, PROVINCES, lambda value: value, lambda value: value,
                   frozenset({"unknown_operator"}))


def test_the_worker_s_origin_label_the_clock_and_batches_do_not_count():
    worker = reduce([
        ("w.national.changes", b"k", b"v", [("roadx.source.offset", b"3"), (ORIGIN, b"p0@3")]),
        ("w.national.quality", b"k", finding("invalid_plate", detected_ms=1), None),
        ("w.national.submissions", b"44/s1", tally(["a", "b"], "AD"), None),
    ])
    peer = reduce([
        ("p.national.changes", b"k", b"v", [("roadx.source.offset", b"3")]),
        ("p.national.changes", b"k", b"v", [("roadx.source.offset", b"3")]),  # written twice: at-least-once
        ("p.national.quality", b"k", finding("invalid_plate", detected_ms=99), None),
        ("p.national.submissions", b"44/s1", tally(["a"], "A"), None),  # the same events, in two batches' tallies
        ("p.national.submissions", b"44/s1", {**tally(["b", "a"], "DA"), "seqs": [1, 0],
                                               "digests": bytes([1]) * 32 + bytes([0]) * 32}, None),
    ], TopicNames("p."))
    assert differences(worker, peer) == {}
    assert peer.messages == 5 and worker.count() == 4
    assert verdict(worker, peer).startswith("same outputs as the worker (changes 1, dlq 0, routed 0, findings 1, tallies 2")


def test_reference_findings_are_counted_apart_not_compared():
    worker = reduce([("w.national.quality", b"k", finding("unknown_operator", 1), None)])
    peer = reduce([])
    assert differences(worker, peer) == {}
    assert worker.provisional == 1


def test_a_missing_route_and_an_extra_dead_letter_are_told_apart():
    worker = reduce([("w.xprov.11.inbound", b"case:1", b"v", [("roadx.routed.to", b"11")])])
    peer = reduce([("w.national.dlq", b"case:1", b"v", [("roadx.dlq.rule", b"bad_signature")]),
                   ("w.roadx-registry", b"case:1", b"44", None)])  # the registry is not an output compared
    assert differences(worker, peer) == {"dlq": (0, 1), "routed": (1, 0)}
    assert verdict(worker, peer).startswith("outputs DIFFER from the worker's (dlq: 0 missing, 1 extra; "
                                            "routed: 1 missing, 0 extra;")


class _Ctx:
    topics = NAMES
    provinces = frozenset(PROVINCES)


def test_a_peer_writes_every_output_on_its_own_prefix():
    stage = PeerStage(_Ctx(), "peer.")  # type: ignore[arg-type]
    assert stage.topic("w.national.changes") == "peer.national.changes"
    assert stage.registry_topic == "peer.roadx-registry"
    assert "peer.xprov.44.inbound" in stage.output_topics()
    with pytest.raises(ValueError, match="is not on the prefix"):
        stage.topic("other.national.changes")


def test_the_registry_is_read_under_its_prefix_and_its_entries_written_as_the_worker_does():
    from deploy.bench.peers import StageRun, _Reader

    reader = _Reader({"entity:e1": [1, "44", 0]}.get, {"vehicle:粤B1": "44/440300"}.get)
    assert reader.get(OWNER + "vehicle:粤B1") == "44/440300"
    assert reader.get("entity:e1") == [1, "44", 0]
    stage = PeerStage(_Ctx(), "peer.")  # type: ignore[arg-type]
    [out] = stage.registry_outputs(StageRun([], [], [("vehicle:粤B1", "44/440300")]))
    assert (out.topic, out.key, out.value) == ("peer.roadx-registry", "vehicle:粤B1".encode(), b'"44/440300"')


def test_an_entity_on_two_provinces_topics_is_counted_apart_in_every_kind_of_output():
    apart = crossing([("w.prov.11.changes", b"vehicle:A", b"e1"), ("w.prov.44.changes", b"vehicle:A", b"e2"),
                      ("w.prov.44.changes", b"vehicle:B", b"e3"), ("w.prov.44.changes", b"vehicle:B", b"e4")],
                     digest=lambda value: value.upper())
    assert apart.keys == {b"vehicle:A"} and apart.digests == {b"E1", b"E2"}
    tallied = {**tally(["a", "b"], "AS"), "digests": b"E1" + b"E3"}
    got = written([("w.national.changes", b"vehicle:A", b"e2", [("roadx.stale", b"true")]),
                   ("w.national.changes", b"vehicle:B", b"e3", None),
                   ("w.national.submissions", b"44/s1", tallied, None)],
                  NAMES, PROVINCES, lambda v: v, lambda v: v, frozenset(), apart)
    assert got.crossing == 2  # vehicle:A's change and its tallied event
    assert got.sets["changes"] == {(b"vehicle:B", b"e3", ())}
    assert [entry[2] for entry in got.sets["tallies"]] == ["b"]
