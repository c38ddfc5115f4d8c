"""Running a faust app inside the worker shell: started, kept until the shell's stop event is
set (SIGTERM, SIGINT), then stopped — without faust's own ``Worker``, whose signal handling
and terminal output the shell already does its own way."""

from __future__ import annotations

import asyncio
import threading

import faust

STOP_POLL_SECONDS = 0.2


def run_until_stopped(app: faust.App, stop: threading.Event) -> None:
    asyncio.run(_serve(app, stop))


async def _serve(app: faust.App, stop: threading.Event) -> None:
    await app.start()
    try:
        while not stop.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)
    finally:
        await app.stop()
