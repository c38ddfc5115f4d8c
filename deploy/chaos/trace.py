"""Why a routed case is missing after a chaos run, told from the topics and the workers' logs (pure).

For each missing (event, target province) the run finds the event's outputs on the broker
(``deploy.chaos.probe.locate``): where its ``national.changes`` copy lies, the origin label it
carries (``<source topic>:<partition>:<offset>:<n>``, which names the source message) and
when it was written. The stream workers log at INFO, one file per worker, the partitions
they take and give up and every output they leave out as already written
(``streams.runner``). ``explain_missing_route`` puts the two together: the source
partition and offset, the worker that owned that partition when the event was forwarded
(the last to process it), whether the routed copy is on the inbound topic at all, and what
each worker's read-back decided about it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from schemas.topics import ORIGIN

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\S+) (\w+) (.*)$")
TOOK = re.compile(r"^took (\S+)\[(\d+)\]")


@dataclass(frozen=True)
class LogEntry:
    worker: str
    at: float  # epoch seconds
    text: str


@dataclass(frozen=True)
class Located:
    """One message of an event on an output topic."""

    topic: str
    partition: int
    offset: int
    origin: str | None  # the roadx.origin header
    timestamp_ms: int


def origin_of(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    for name, value in headers or ():
        if name == ORIGIN and value is not None:
            return value.decode("utf-8", "replace")
    return None


def parse_worker_log(worker: str, lines: Iterable[str]) -> list[LogEntry]:
    """The timestamped lines of one worker's log (its local clock, as the chaos run's)."""
    entries = []
    for line in lines:
        found = LINE.match(line.rstrip("\n"))
        if found is None:
            continue
        at = dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        entries.append(LogEntry(worker, at, found.group(4)))
    return entries


def owner_at(entries: Sequence[LogEntry], topic: str, partition: int, at: float) -> LogEntry | None:
    """The last ``took`` of ``topic[partition]`` at or before ``at``, by any worker."""
    best = None
    for entry in entries:
        took = TOOK.match(entry.text)
        if took and took.group(1) == topic and int(took.group(2)) == partition and entry.at <= at:
            if best is None or entry.at >= best.at:
                best = entry
    return best


def _clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


def explain_missing_route(event_id: str, target: str, inbound_topic: str, national_topic: str,
                          found: Sequence[Located], entries: Sequence[LogEntry]) -> str:
    """One line saying where a missing routed case's source message is, who processed it last,
    and what the read-back decided about its routed copy."""
    head = f"routed case ({event_id}, {target})"
    national = [m for m in found if m.topic == national_topic]
    routed = [m for m in found if m.topic == inbound_topic]
    if not national:
        return f"{head}: not on {national_topic} either: the event itself never left the stream stage"
    forwarded = national[-1]
    parts = [f"{head}: on {national_topic}[{forwarded.partition}]@{forwarded.offset} "
             f"written {_clock(forwarded.timestamp_ms / 1000)}"]
    if forwarded.origin is None:
        parts.append("with no origin header")
    else:
        source = forwarded.origin.rsplit(":", 1)[0]  # <topic>:<partition>:<offset>
        topic, partition, offset = source.rsplit(":", 2)
        parts.append(f"from source {topic}[{partition}]@{offset}")
        owner = owner_at(entries, topic, int(partition), forwarded.timestamp_ms / 1000)
        parts.append(f"processed last by {owner.worker} (took the partition {_clock(owner.at)})" if owner
                     else "by a worker whose taking of the partition is not in the logs")
    if routed:
        parts.append(f"its copy IS on {inbound_topic}[{routed[0].partition}]@{routed[0].offset}, so the sink "
                     f"did not store it")
    else:
        parts.append(f"no copy on {inbound_topic}")
        wanted = f"{inbound_topic} {forwarded.origin}" if forwarded.origin else None
        decided = [e for e in entries if wanted and wanted in e.text]
        if decided:
            parts += [f"{e.worker} at {_clock(e.at)} "
                      f"{'left it out as already written' if e.text.startswith('left out') else 'read it back as written'}"
                      for e in decided]
        else:
            parts.append("no worker's read-back took it for already written")
    return "; ".join(parts)


def explain_missing_routes(missing: Sequence[tuple[str, str]], inbound_topics: Mapping[str, str],
                           national_topic: str, located: Mapping[str, Sequence[Located]],
                           entries: Sequence[LogEntry]) -> list[str]:
    """``explain_missing_route`` for each (event id, target province)."""
    return [explain_missing_route(event_id, target, inbound_topics[target], national_topic,
                                  located.get(event_id, ()), entries) for event_id, target in missing]
