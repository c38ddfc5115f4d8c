"""The ``roadx`` command: demo, up, down; the other commands come from their modules.

Every command that reads or starts a stack, a store or a spool takes ``--data-dir DIR``:
``with_data_dir`` adds it, here and in each command module's ``add_parser`` (which receives it),
on the command itself, so it goes after the subcommand (``roadx produce files --data-dir
DIR``) and, for a group, also before it. Which directory is used is decided once, by
``schemas.settings.resolve``: the flag, else ``ROADX_DATA_DIR``, else ``./.roadx``; ``main`` then
refuses one that is not a directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from schemas.errors import ContractError, SettingsError
from schemas.settings import Settings, resolve

from .errors import DeployError, StackError
from .stack import READY_TIMEOUT, Stack, StackInfo
from .worker import EXIT_ERROR, EXIT_INTERRUPTED, PART_ERRORS

# ``roadx up`` waits this much longer than the parts' readiness timeout: broker start and topics.
START_MARGIN = 60.0


def _package_errors() -> tuple[type[Exception], ...]:
    return (DeployError, ContractError, *PART_ERRORS)


def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command ``--data-dir``; absent, it sets nothing, so a group's and its subcommand's never clash."""
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                   help="where the stack keeps its store, spool, logs and stack.json "
                        "(default: $ROADX_DATA_DIR, else ./.roadx)")
    return p


def build_parser() -> argparse.ArgumentParser:
    # Commands of their own modules: each ``add_parser`` registers its subcommands and sets
    # ``handler(settings, args) -> exit status`` as their default.
    from . import (bench_commands, chaos_commands, ops_commands, produce_commands, status_commands,
                   store_commands, subscribe_commands, worker)

    parser = argparse.ArgumentParser(prog="roadx", description="National road-transport data-exchange backbone.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = with_data_dir(sub.add_parser("demo", help="run the national demo on the embedded stack"))
    demo.add_argument("--provinces", type=int, default=31, help="how many provinces take part (1-31, default 31)")
    demo.add_argument("--events", type=int, default=100_000, help="events to publish (default 100000)")
    demo.add_argument("--seed", type=int, default=2015, help="seed of the synthetic provinces")
    demo.add_argument("--duplicate-rate", type=float, default=0.02, help="share of resent events (default 0.02)")
    demo.add_argument("--invalid-rate", type=float, default=0.01, help="share of invalid records (default 0.01)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")

    up = with_data_dir(sub.add_parser(
        "up", help="start the embedded stack in the background; returns once every part answers"))
    supervise = with_data_dir(sub.add_parser("supervise", help=argparse.SUPPRESS))
    for p in (up, supervise):
        p.add_argument("--timeout", type=float, default=READY_TIMEOUT, metavar="SECONDS",
                       help=f"stop everything and fail if a part does not answer within SECONDS "
                            f"(default {READY_TIMEOUT:g})")
    with_data_dir(sub.add_parser("down", help="stop the embedded stack"))

    store_commands.add_parser(sub, with_data_dir)  # query, report, verify

    worker.add_parser(sub, with_data_dir)  # roadx worker streams|sink: the worker shell

    produce_commands.add_parser(sub, with_data_dir)
    ops_commands.add_parser(sub, with_data_dir)
    subscribe_commands.add_parser(sub, with_data_dir)
    bench_commands.add_parser(sub, with_data_dir)
    status_commands.add_parser(sub, with_data_dir)
    chaos_commands.add_parser(sub, with_data_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    errors = _package_errors()
    try:
        flag = getattr(args, "data_dir", None)
        settings = resolve(data_dir=flag)
        check_data_dir(settings.data_dir, "--data-dir" if flag is not None
                       else "ROADX_DATA_DIR" if os.environ.get("ROADX_DATA_DIR") else "the default data directory")
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(settings, args)
    except KeyboardInterrupt:
        print("roadx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except errors as exc:
        print(f"roadx: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def check_data_dir(path: Path, source: str) -> None:
    """Refuse a data directory that is a file, or lies under one, naming where it came from."""
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == path else f" ({existing} is a file)"
                raise SettingsError(f"{source} {path} is not a directory{where}")
            return


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from .demo import Progress, format_summary, run_demo

    if not 1 <= args.provinces <= len(settings.provinces):
        raise DeployError(f"--provinces must be between 1 and {len(settings.provinces)}")
    if args.events < 1:
        raise DeployError("--events must be at least 1")
    for name in ("duplicate_rate", "invalid_rate"):
        if not 0 <= getattr(args, name) < 0.5:
            raise DeployError(f"--{name.replace('_', '-')} must be in [0, 0.5)")
    demo_settings = settings.with_overrides(provinces=settings.provinces[: args.provinces])
    summary = run_demo(demo_settings, args.events, args.seed, Progress(),
                       duplicate_rate=args.duplicate_rate, invalid_rate=args.invalid_rate)
    print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) if args.json else format_summary(summary))
    return 0 if summary.reconciled else 1


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
    lines += [f"  metrics  " + ", ".join(f"{n} http://{a}/metrics" for n, a in info.metrics.items()),
              f"  logs     {log_dir}",
              "query it:",
              f"  roadx query {shlex.quote(example)} --data-dir {data_dir}"]
    if info.store_url:
        host, _, port = info.store_http.rpartition(":")
        lines += [f"  curl --data-binary {shlex.quote(example)} {info.store_url}",
                  f"  clickhouse_connect.get_client(host='{host}', port={port})"]
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


COMMANDS = {
    "demo": cmd_demo, "up": cmd_up, "down": cmd_down, "supervise": cmd_supervise,
}

if __name__ == "__main__":
    sys.exit(main())
