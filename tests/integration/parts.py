"""A part of the line (``roadx worker PART``) as a child process of a test, with the test's
settings as its ``ROADX_*`` environment; stopped (SIGTERM, then SIGKILL) when the block ends."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from deploy.broker import die_with_parent
from deploy.worker import worker_argv
from schemas.settings import Settings, to_environ


@contextlib.contextmanager
def running_part(part: str, settings: Settings, log_path: Path) -> Iterator[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    env.update(to_environ(settings))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, *worker_argv(part)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
