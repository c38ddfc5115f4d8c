"""What a faust app's consumer waits for before it commits offsets: every table change in the
producer's buffer sent, not just 0.1 s without a send (``streams.faust_run.flush_to_empty``).
faust's own buffer with a channel slower to publish than that."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.transport.producer import ProducerBuffer

from streams.faust_run import flush_to_empty

PUBLISH_SECONDS = 0.25  # longer than the 0.1 s faust's own flush waits for a send


def _buffer_with_slow_changes(n, sent):
    class SlowChannel:
        async def publish_message(self, fut, wait=False):
            await asyncio.sleep(PUBLISH_SECONDS)
            sent.append(fut)

    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    for _ in range(n):
        buffer.put(SimpleNamespace(message=SimpleNamespace(channel=SlowChannel())))
    return buffer


def test_fausts_own_flush_gives_up_with_changes_left_and_flush_to_empty_waits_for_them_all():
    async def scenario():
        sent_by_faust, sent = [], []
        theirs = _buffer_with_slow_changes(3, sent_by_faust)
        await theirs.start()
        try:
            await theirs.flush()
            left_by_faust = theirs.size
            await flush_to_empty(theirs)  # faust's buffer refuses to stop with changes in it
        finally:
            await theirs.stop()
        ours = _buffer_with_slow_changes(3, sent)
        await ours.start()
        try:
            await flush_to_empty(ours)
            return left_by_faust, ours.size, len(sent)
        finally:
            await ours.stop()

    left_by_faust, left, sent = asyncio.run(scenario())
    assert left_by_faust > 0  # what made a commit run ahead of its table changes
    assert (left, sent) == (0, 3)


def test_an_empty_buffer_is_flushed_at_once():
    async def scenario():
        buffer = _buffer_with_slow_changes(0, [])
        await buffer.start()
        try:
            await asyncio.wait_for(flush_to_empty(buffer), 1.0)
            return buffer.size
        finally:
            await buffer.stop()

    assert asyncio.run(scenario()) == 0
