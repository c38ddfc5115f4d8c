"""A stream worker processes the next batch while the batch before is written, on the real broker:
the next batch sees the state the batch before wrote, and its own writing starts only once the
batch before is written and committed."""

from __future__ import annotations

import threading

import pytest

from streams import commit as commit_module
from streams import runner as runner_module
from streams.runner import StreamRunner
from streams.state import StateStore

from test_stream_handover import run_until_quiet
from test_stream_scale import CODEC, _read, change, exchange_of_three, send, signed
from test_stream_worker import USCC_44, operator

pytestmark = pytest.mark.integration

VERSIONS = 10  # the batch size: the versions fill the first batch, their repeats the second


@pytest.fixture
def settings(bootstrap, unique, tmp_path):
    return exchange_of_three(bootstrap, unique, tmp_path, stream_batch_size=VERSIONS)


def test_a_batch_processed_while_the_one_before_is_written_sees_its_state(settings, monkeypatch):
    versions = [change("operator", {**operator(USCC_44), "name": f"运输公司{n}"}, province="44", seq=n)
                for n in range(1, VERSIONS + 1)]
    items = [(settings.topics.province_changes("44"), ev["entity_key"], signed(settings, ev)) for ev in versions]
    send(settings, items + items)  # one entity, so one partition: the versions, then each sent again

    timeline: list[tuple[str, object]] = []
    first_state_written = threading.Event()  # the first batch's state flush is held until the second is processed
    overlapped: list[bool] = []
    real_flush = commit_module._flush
    real_process, real_write, real_commit = (runner_module.process_batch, runner_module.write_batch,
                                             runner_module.commit_offsets)

    def held_flush(producer, deliveries, events, what):
        if what == "state changes" and not first_state_written.is_set():
            assert first_state_written.wait(60), "the next batch was never processed beside this one's writing"
        real_flush(producer, deliveries, events, what)
        timeline.append(("flushed", what))

    def recorded_write(producer, store, settings, write, positions):
        timeline.append(("writing", [m.offset for m in write.consumed]))
        real_write(producer, store, settings, write, positions)

    def recorded_process(batch, *args, **kwargs):
        result = real_process(batch, *args, **kwargs)
        in_flight = worker.in_flight
        if in_flight is not None:
            overlapped.append(not in_flight.done.done())
            first_state_written.set()
        timeline.append(("processed", [m.offset for m in batch]))
        return result

    def recorded_commit(consumer, batch):
        timeline.append(("commit", max(m.offset for m in batch)))
        real_commit(consumer, batch)

    monkeypatch.setattr(commit_module, "_flush", held_flush)
    monkeypatch.setattr(runner_module, "write_batch", recorded_write)
    monkeypatch.setattr(runner_module, "process_batch", recorded_process)
    monkeypatch.setattr(runner_module, "commit_offsets", recorded_commit)

    worker = StreamRunner(settings, StateStore(settings.data_dir / "w"))
    run_until_quiet(worker)

    assert overlapped[:1] == [True], "the second batch was not processed while the first was written"
    processed = [offsets for what, offsets in timeline if what == "processed"]
    assert processed[:2] == [list(range(VERSIONS)), list(range(VERSIONS, 2 * VERSIONS))]
    # The second batch is written after the first is written in full and committed.
    first_state = timeline.index(("flushed", "state changes"))
    first_commit = timeline.index(("commit", VERSIONS - 1))
    assert first_state < first_commit < timeline.index(("writing", processed[1]))
    assert timeline.index(("processed", processed[1])) < first_state
    assert timeline[-1] == ("commit", 2 * VERSIONS - 1)

    forwarded = _read(settings, [settings.topics.national_changes])[settings.topics.national_changes]
    ids = [str(CODEC.decode(m.value())[1]["event_id"]) for m in forwarded]
    assert sorted(ids) == sorted(ev["event_id"] for ev in versions)  # each version once: the repeats dropped
