"""``roadx up``, ``roadx down`` (and the hidden ``supervise``): the embedded stack in the background.

``up`` starts ``python -m deploy.cli supervise`` detached, which runs the stack
(``deploy.stack.Stack``) and writes ``<data-dir>/stack.json`` once every part answers; ``up``
returns then, printing where each part is (``describe_up``), or fails with everything
stopped. ``down`` stops the supervisor, which stops its parts in order.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from schemas.errors import SettingsError
from schemas.settings import Settings

from ..errors import StackError
from ..stack import READY_TIMEOUT, Stack, StackInfo

# ``roadx up`` waits this much longer than the parts' readiness timeout: broker start and topics.
START_MARGIN = 60.0


def add_parser(sub: argparse._SubParsersAction, with_data_dir) -> None:
    """Register ``up``, ``supervise`` (not listed: what ``up`` starts) and ``down`` on the roadx parser."""
    up = with_data_dir(sub.add_parser(
        "up", help="start the embedded stack in the background; returns once every part answers"))
    up.set_defaults(handler=cmd_up)
    supervise = with_data_dir(sub.add_parser("supervise", help=argparse.SUPPRESS))
    supervise.set_defaults(handler=cmd_supervise)
    for p in (up, supervise):
        p.add_argument("--timeout", type=float, default=READY_TIMEOUT, metavar="SECONDS",
                       help=f"stop everything and fail if a part does not answer within SECONDS "
                            f"(default {READY_TIMEOUT:g})")
    down = with_data_dir(sub.add_parser("down", help="stop the embedded stack"))
    down.set_defaults(handler=cmd_down)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Start the supervisor in the background; return once the stack answers, or fail with it stopped."""
    if not args.timeout > 0:
        raise SettingsError("--timeout must be a positive number of seconds")
    if StackInfo.read(settings.stack_file):
        raise StackError(f"a stack is already running for {settings.data_dir}")
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "supervisor.log"
    with open(log_path, "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "supervise", "--data-dir", str(settings.data_dir),
             "--timeout", str(args.timeout)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        info = _wait_for_stack(settings, proc, args.timeout + START_MARGIN, log_path, offset)
    except BaseException:
        _stop_supervisor(settings, proc)
        raise
    print(describe_up(settings, info, log_dir))
    return 0


def _wait_for_stack(settings: Settings, proc: subprocess.Popen, timeout: float,
                    log_path: Path, offset: int) -> StackInfo:
    """The stack record the supervisor writes once every part answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = StackInfo.read(settings.stack_file)
        if info is not None and info.supervisor_pid == proc.pid:
            return info
        if proc.poll() is not None:
            raise StackError(f"the stack did not start: {_supervisor_error(log_path, offset, proc.returncode)} "
                             f"(everything stopped; see {log_path})")
        time.sleep(0.1)
    raise StackError(f"the stack did not start within {timeout:g}s (everything stopped; see {log_path})")


def _supervisor_error(log_path: Path, offset: int, code: int) -> str:
    """The supervisor's own error line from this start, else its exit code."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    errors = [line[len("roadx: error: "):] for line in text.splitlines() if line.startswith("roadx: error: ")]
    return errors[-1] if errors else f"the supervisor exited with code {code}"


def _stop_supervisor(settings: Settings, proc: subprocess.Popen) -> None:
    """End a supervisor that is starting (its parts die with it) and drop its record."""
    if proc.poll() is None:
        proc.terminate()  # it stops its parts in order
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()  # its parts get their parent-death signal
            proc.wait()
    if StackInfo.read(settings.stack_file) is None:
        settings.stack_file.unlink(missing_ok=True)


def describe_up(settings: Settings, info: StackInfo, log_dir: Path) -> str:
    """What ``roadx up`` prints: where each part is and how to query the store."""
    data_dir = shlex.quote(str(settings.data_dir))
    db = settings.clickhouse_database
    example = "SELECT count() FROM change_log"
    lines = [f"roadx stack up (supervisor pid {info.supervisor_pid})",
             f"  broker   {info.bootstrap_servers}"]
    if info.store_url:
        lines += [f"  store    {settings.store_path} (database {db})",
                  f"  sql      {info.store_url} (ClickHouse HTTP, read-only, database {db})"]
    else:
        lines.append(f"  store    {_server(settings.clickhouse_url)} (database {db})")
    if info.service_url:
        lines.append(f"  service  {info.service_url} (information service; a party's token: "
                     f"roadx keys issue --party P --data-dir {data_dir})")
    lines += ["  metrics  " + ", ".join(f"{n} http://{a}/metrics" for n, a in info.metrics.items()),
              f"  logs     {log_dir}",
              "query it:",
              f"  roadx query {shlex.quote(example)} --data-dir {data_dir}"]
    if info.store_url:
        host, _, port = info.store_http.rpartition(":")
        lines += [f"  curl --data-binary {shlex.quote(example)} {info.store_url}",
                  f"  clickhouse_connect.get_client(host='{host}', port={port})"]
    if info.service_url:
        lines.append(f"  curl -H \"Authorization: Bearer $TOKEN\" {info.service_url}licences/<licence_no>/verification")
    lines.append(f"stop it with: roadx down --data-dir {data_dir}")
    return "\n".join(lines)


def _server(url: str) -> str:
    """A ClickHouse server URL without its credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def cmd_supervise(settings: Settings, args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = Stack(settings, ready_timeout=args.timeout)
    try:
        stack.start()
        while True:
            stack.check()
            time.sleep(1)
    finally:
        stack.stop()


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    info = StackInfo.read(settings.stack_file)
    if info is None:
        settings.stack_file.unlink(missing_ok=True)
        print(f"no stack is running for {settings.data_dir}")
        return 0
    os.kill(info.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and StackInfo.read(settings.stack_file):
        time.sleep(0.2)
    if StackInfo.read(settings.stack_file):
        os.kill(info.supervisor_pid, signal.SIGKILL)  # its children die with it
        settings.stack_file.unlink(missing_ok=True)
    print("roadx stack stopped")
    return 0
