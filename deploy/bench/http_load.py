"""Load on the information service's HTTP API from this process (aiohttp client, asyncio).

``offered_load`` is an open loop: request ``i`` is sent at ``start + i / rate`` whether or not
earlier ones were answered, and its time runs from that scheduled moment to its answer, so
time spent queueing (in this client, the network or the service) counts.
``freshness`` sends changes at a fixed rate through a Kafka producer and, for a sample of
them, asks the service for the entity every ``POLL_SECONDS`` until the answer holds the
change: the time from its send to that answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import aiohttp
import orjson
from confluent_kafka import Producer

from schemas.kafka import produce

from ..errors import StackError

REQUEST_TIMEOUT = 30.0
POLL_SECONDS = 0.01
FRESHNESS_TIMEOUT = 60.0


@dataclass
class Answers:
    """What a load got back: each answer's time (ms) and the count of each status or client error."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def not_ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")

    def describe_not_ok(self) -> str:
        return ", ".join(f"{status}: {n:,}" for status, n in sorted(self.statuses.items()) if status != "200")


@dataclass(frozen=True)
class Change:
    """One change to send: its Kafka key and value, the path that shows the entity, the seq it brings."""

    key: bytes
    value: bytes
    path: str
    seq: int


def session(base_url: str, token: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                                 connector=aiohttp.TCPConnector(limit=0))


async def offered_load(base_url: str, token: str, paths: Sequence[str], per_second: float, seconds: float) -> Answers:
    """GET ``paths`` in turn at ``per_second`` for ``seconds``, open loop."""
    answers = Answers()
    count = max(1, int(per_second * seconds))
    async with session(base_url, token) as client:
        loop = asyncio.get_running_loop()

        async def one(path: str, due: float) -> None:
            try:
                async with client.get(path) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                answers.statuses[type(exc).__name__] += 1
                return
            answers.latencies_ms.append((loop.time() - due) * 1000)
            answers.statuses[status] += 1

        await _paced(count, per_second, lambda i, due: one(paths[i % len(paths)], due))
    return answers


async def freshness(base_url: str, token: str, producer: Producer, topic: str, make: Callable[[int], Change],
                    per_second: float, seconds: float, sample_every: int) -> tuple[list[float], int, int]:
    """Send ``make(i)`` at ``per_second`` for ``seconds``; (delays in ms of the sampled changes, sent, unseen)."""
    delays: list[float] = []
    unseen = 0
    count = max(1, int(per_second * seconds))
    async with session(base_url, token) as client:
        loop = asyncio.get_running_loop()

        async def watch(change: Change, sent_at: float) -> None:
            nonlocal unseen
            while loop.time() < sent_at + FRESHNESS_TIMEOUT:
                try:
                    async with client.get(change.path) as response:
                        body = await response.read()
                        if response.status == 200 and orjson.loads(body)["seq"] >= change.seq:
                            delays.append((loop.time() - sent_at) * 1000)
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(POLL_SECONDS)
            unseen += 1

        async def send(i: int, _due: float) -> None:
            change = make(i)
            sent_at = loop.time()
            produce(producer, topic, change.value, change.key)
            producer.poll(0)
            if i % sample_every == 0:
                await watch(change, sent_at)

        await _paced(count, per_second, send)
    if producer.flush(60):
        raise StackError(f"the changes to {topic} were not all delivered within 60s")
    return delays, count, unseen


async def _paced(count: int, per_second: float, start: Callable[[int, float], Awaitable[None]]) -> None:
    """Start ``start(i, due)`` as a task at each due moment ``first + i / per_second``; wait for all."""
    loop = asyncio.get_running_loop()
    first = loop.time() + 0.05
    running: set[asyncio.Task[None]] = set()
    for i in range(count):
        due = first + i / per_second
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(start(i, due))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
