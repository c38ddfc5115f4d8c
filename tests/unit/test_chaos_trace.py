"""How a chaos run explains a missing routed case from the topics and the stream workers' own logs."""

from __future__ import annotations

import datetime as dt
import logging

from deploy.chaos.trace import (
    Located, LogEntry, explain_missing_route, explain_missing_routes, origin_of, owner_at, parse_worker_log,
)
from deploy.worker import LOG_FORMAT
from schemas.settings import Settings
from streams import handover as ho
from streams.pipeline import BatchResult, Inbound, Outbound
from streams.changes import state_changes
from streams.commit import write_then_commit
from streams.state import StateStore

from test_stream_runner import KnownPositions, RecordingConsumer, RecordingProducer

SETTINGS = Settings(topic_prefix="tx.", provinces=("11", "44"))
NAMES = SETTINGS.topics
T44, CHANGES, INBOUND_11 = NAMES.province_changes("44"), NAMES.national_changes, NAMES.province_inbound("11")
LABEL = f"{T44}:2:57:0"
AT = dt.datetime(2026, 11, 29, 10, 0, 0).timestamp()


def line(seconds, text):
    stamp = dt.datetime.fromtimestamp(AT + seconds).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    return f"{stamp} streams.runner INFO {text}\n"


def took(seconds, partition=2):
    return line(seconds, f"took {T44}[{partition}]: restored 3 state changes, done mark 40, since marks {{}}")


def forwarded(seconds=20.0, origin=LABEL):
    return Located(CHANGES, 1, 300, origin, int((AT + seconds) * 1000))


def test_log_lines_are_parsed_with_their_time_and_other_lines_skipped():
    entries = parse_worker_log("streams-1", [took(1.5), "%3|1795946795.628|FAIL|rdkafka#producer-7| refused\n", ""])
    assert entries == [LogEntry("streams-1", AT + 1.5, f"took {T44}[2]: restored 3 state changes, done mark 40, "
                                                       "since marks {}")]


def test_the_owner_is_the_last_worker_to_take_the_partition_before_the_output():
    entries = [*parse_worker_log("streams-1", [took(1), took(2, partition=3)]),
               *parse_worker_log("streams-2", [took(10), took(30)])]
    assert owner_at(entries, T44, 2, AT + 20).worker == "streams-2"
    assert owner_at(entries, T44, 2, AT + 5).worker == "streams-1"
    assert owner_at(entries, T44, 3, AT + 0.5) is None


def test_a_routed_copy_left_out_as_written_names_the_source_the_worker_and_the_decision():
    entries = [*parse_worker_log("streams-1", [took(1)]),
               *parse_worker_log("streams-2", [took(25), line(26, f"left out 2 outputs already written by the "
                                                             f"partitions' last owner: {CHANGES} {LABEL}; "
                                                             f"{INBOUND_11} {LABEL}")])]
    text = explain_missing_route("e1", "11", INBOUND_11, CHANGES, [forwarded()], entries)
    assert f"from source {T44}[2]@57" in text
    assert "processed last by streams-1" in text
    assert f"no copy on {INBOUND_11}" in text
    assert "streams-2 at 10:00:26.000 left it out as already written" in text


def test_a_routed_copy_nobody_left_out_says_so():
    text = explain_missing_route("e1", "11", INBOUND_11, CHANGES, [forwarded()], parse_worker_log("s", [took(1)]))
    assert "no worker's read-back took it for already written" in text


def test_a_routed_copy_on_its_topic_points_at_the_sink_and_an_event_never_forwarded_at_the_stage():
    on_topic = Located(INBOUND_11, 0, 9, LABEL, int(AT * 1000))
    assert "IS on" in explain_missing_route("e1", "11", INBOUND_11, CHANGES, [forwarded(), on_topic], [])
    assert "never left the stream stage" in explain_missing_route("e1", "11", INBOUND_11, CHANGES, [], [])
    assert "with no origin header" in explain_missing_route("e1", "11", INBOUND_11, CHANGES,
                                                            [forwarded(origin=None)], [])


def test_origin_header_is_read_from_message_headers():
    assert origin_of([("x", b"1"), ("roadx.origin", LABEL.encode())]) == LABEL
    assert origin_of(None) is None and origin_of([("roadx.origin", None)]) is None


def test_what_the_runner_logs_when_it_leaves_an_output_out_is_what_the_trace_reads(tmp_path):
    """The contract between the worker's log and the chaos trace, on the runner's real log call."""
    handover = ho.Handover(NAMES, KnownPositions())
    handover.take(("44", 2), 56, {CHANGES: [0, 0], INBOUND_11: [0, 0]})
    handover.found([(INBOUND_11, LABEL)], [("44", 2)])
    batch = [Inbound(T44, 2, 57, b"k", b"v")]
    result = BatchResult(outputs=[Outbound(CHANGES, b"k", b"v", [], 0), Outbound(INBOUND_11, b"k", b"v", [], 0)],
                         changes=[(0, "entity:a", [1, "44", 2])])
    captured: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record):
            captured.append(self.format(record))

    handler = Lines()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    runner_log = logging.getLogger("streams.runner")
    runner_log.addHandler(handler)
    level = runner_log.level
    runner_log.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the logger's is-enabled cache
    disabled, runner_log.disabled = runner_log.disabled, False  # a library's dictConfig may have disabled it
    store = StateStore(tmp_path / "s")
    try:
        assert write_then_commit(RecordingProducer(), RecordingConsumer(), store, SETTINGS, batch, result,
                                 state_changes(batch, result, SETTINGS), handover) == 1
    finally:
        store.close()
        runner_log.removeHandler(handler)
        runner_log.setLevel(level)
        runner_log.disabled = disabled
    entries = parse_worker_log("streams-2", captured)
    assert len(entries) == 1
    [text] = explain_missing_routes([("e1", "11")], {"11": INBOUND_11}, CHANGES, {"e1": [forwarded()]}, entries)
    assert "streams-2 at" in text and "left it out as already written" in text
