"""The ``roadx`` command: demo, up, down, query, worker."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from schemas.errors import ContractError

from . import settings as settings_mod
from .errors import DeployError, StackError
from .settings import Settings
from .stack import Stack, StackInfo


def _package_errors() -> tuple[type[Exception], ...]:
    from producers.errors import ProducerError
    from sinks.errors import SinkError
    from streams.errors import StreamError

    return (DeployError, ContractError, ProducerError, SinkError, StreamError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roadx", description="National road-transport data-exchange backbone.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", type=Path, help="where the stack keeps its store, spool and logs (default ./.roadx)")
        return p

    demo = with_data_dir(sub.add_parser("demo", help="run the national demo on the embedded stack"))
    demo.add_argument("--provinces", type=int, default=31, help="how many provinces take part (1-31, default 31)")
    demo.add_argument("--events", type=int, default=100_000, help="events to publish (default 100000)")
    demo.add_argument("--seed", type=int, default=2015, help="seed of the synthetic provinces")
    demo.add_argument("--duplicate-rate", type=float, default=0.02, help="share of resent events (default 0.02)")
    demo.add_argument("--invalid-rate", type=float, default=0.01, help="share of invalid records (default 0.01)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")

    with_data_dir(sub.add_parser("up", help="start the embedded stack in the background"))
    with_data_dir(sub.add_parser("down", help="stop the embedded stack"))
    with_data_dir(sub.add_parser("supervise", help=argparse.SUPPRESS))

    query = with_data_dir(sub.add_parser("query", help="run SQL against the national store"))
    query.add_argument("sql")
    query.add_argument("--format", choices=("pretty", "tsv", "json"), default="pretty")

    worker = sub.add_parser("worker", help="run one part of the line in the foreground (settings from ROADX_*)")
    worker.add_argument("part", choices=("streams", "sink"))

    # Commands owned by a package: each ``add_parser`` registers its subcommands and sets
    # ``handler(settings, args) -> exit status`` as their default.
    from producers import commands as producer_commands
    from sinks import commands as sink_commands
    from streams import subscribe

    from . import bench_commands, chaos_commands, ops_commands, status_commands

    producer_commands.add_parser(sub, with_data_dir)
    sink_commands.add_parser(sub, with_data_dir)
    ops_commands.add_parser(sub, with_data_dir)
    subscribe.add_parser(sub, with_data_dir)
    bench_commands.add_parser(sub, with_data_dir)
    status_commands.add_parser(sub, with_data_dir)
    chaos_commands.add_parser(sub, with_data_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    errors = _package_errors()
    try:
        settings = settings_mod.resolve(data_dir=getattr(args, "data_dir", None))
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(settings, args)
    except KeyboardInterrupt:
        print("roadx: interrupted", file=sys.stderr)
        return 130
    except errors as exc:
        print(f"roadx: error: {exc}", file=sys.stderr)
        return 2


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
    if StackInfo.read(settings.stack_file):
        raise StackError(f"a stack is already running for {settings.data_dir}")
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "supervise", "--data-dir", str(settings.data_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = StackInfo.read(settings.stack_file)
        if info is not None and info.supervisor_pid == proc.pid:
            print(f"roadx stack up (supervisor pid {proc.pid})")
            print(f"  broker   {info.bootstrap_servers}")
            print(f"  store    {settings.store_path}")
            print(f"  metrics  " + ", ".join(f"{n} http://{a}/metrics" for n, a in info.metrics.items()))
            print(f"  logs     {log_dir}")
            print(f"stop it with: roadx down --data-dir {settings.data_dir}")
            return 0
        if proc.poll() is not None:
            raise StackError(f"the stack did not start (exit {proc.returncode}); see {log_dir / 'supervisor.log'}")
        time.sleep(0.2)
    proc.terminate()
    raise StackError("the stack did not start within 60s")


def cmd_supervise(settings: Settings, args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = Stack(settings)
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


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    """Answer SQL from the store: the ClickHouse server, the running sink's endpoint, or the embedded store."""
    from sinks.store_client import store_client
    from sinks.query import run_query

    client = store_client(settings)
    try:
        print(run_query(client, args.sql, args.format))
    finally:
        client.close()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.part == "streams":
        from streams.worker import run_worker
    else:
        from sinks.worker import run_worker
    run_worker(settings)
    return 0


COMMANDS = {
    "demo": cmd_demo, "up": cmd_up, "down": cmd_down, "supervise": cmd_supervise,
    "query": cmd_query, "worker": cmd_worker,
}

if __name__ == "__main__":
    sys.exit(main())
