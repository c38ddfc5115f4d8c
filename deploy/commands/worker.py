"""``roadx worker streams|sink|service|cases|synthetic``: one part of the line in the foreground, through the worker shell.

``streams``, ``sink``, ``service`` and ``cases`` are what compose and Kubernetes run (and the embedded stack, chaos,
bench and the tests, as ``python -m deploy.cli worker PART``: ``deploy.worker.worker_argv``);
``synthetic`` is ``roadx chaos``'s restartable adapter. Each runs through
``deploy.worker.run_part``; the consuming parts get the consumer-lag recorder
(``deploy.consumer_lag.LagRecorder``).
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import asdict
from typing import Callable

from schemas.settings import Settings

from ..consumer_lag import LagRecorder
from ..errors import StartError
from ..worker import EXIT_DONE, run_part


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``roadx worker streams|sink`` (and ``synthetic``, which ``roadx chaos`` starts)."""
    worker = with_data_dir(sub.add_parser(
        "worker", help="run one part of the line in the foreground (settings from ROADX_*)"))
    parts = worker.add_subparsers(dest="part", required=True, metavar="{streams,sink,service,cases}")
    streams = with_data_dir(parts.add_parser("streams", help="the stream worker: provenance, rules, dedup, routing"))
    streams.set_defaults(handler=cmd_streams)
    sink = with_data_dir(parts.add_parser("sink", help="the sink: the national topics into the store"))
    sink.set_defaults(handler=cmd_sink)
    service = with_data_dir(parts.add_parser(
        "service", help="the information service: the national register by key, verification, downloads (HTTP)"))
    service.set_defaults(handler=cmd_service)
    cases = with_data_dir(parts.add_parser(
        "cases", help="the case workflows: receipts, answers, declines and deadlines of routed cases"))
    cases.set_defaults(handler=cmd_cases)
    synthetic = with_data_dir(parts.add_parser(  # no help: not listed, it is roadx chaos's adapter
        "synthetic", description="Publish the synthetic provinces through the spool; resumes an interrupted run."))
    synthetic.add_argument("--events", type=int, required=True, help="events to generate in the whole run")
    synthetic.add_argument("--seed", type=int, required=True, help="seed of the synthetic provinces")
    synthetic.add_argument("--duplicate-rate", type=float, default=0.02, help="share of resent events (default 0.02)")
    synthetic.add_argument("--invalid-rate", type=float, default=0.01, help="share of invalid records (default 0.01)")
    synthetic.add_argument("--rate", type=float, default=0.0,
                           help="events per second to generate; 0 = as fast as possible")
    synthetic.add_argument("--chunk", type=int, default=200,
                           help="events per province per spool append (default 200)")
    synthetic.set_defaults(handler=cmd_synthetic)


def cmd_streams(settings: Settings, args: argparse.Namespace) -> int:
    from streams.worker import run

    _need_broker(settings, "stream worker")
    return run_part("stream worker", settings, lambda stop: run(settings, stop, lag=LagRecorder))


def cmd_sink(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.worker import run

    _need_broker(settings, "sink")
    return run_part("sink", settings, lambda stop: run(settings, stop, lag=LagRecorder))


def cmd_service(settings: Settings, args: argparse.Namespace) -> int:
    from streams.service.app import run

    from ..service import StoreDownloads

    _need_broker(settings, "information service")
    return run_part("information service", settings, lambda stop: run(settings, stop, StoreDownloads(settings)))


def cmd_cases(settings: Settings, args: argparse.Namespace) -> int:
    from streams.cases.app import run

    _need_broker(settings, "case workflows")
    return run_part("case workflows", settings, lambda stop: run(settings, stop))


def cmd_synthetic(settings: Settings, args: argparse.Namespace) -> int:
    """Publish (resuming what an earlier run with the same seed left) and print the run's counts as JSON."""
    from producers.errors import GeneratorConfigError
    from producers.synthetic import Pacer, publish_synthetic

    if args.events < 0:
        raise StartError("--events must not be negative")
    if args.rate < 0:
        raise StartError("--rate must not be negative")
    _need_broker(settings, "synthetic adapter")

    def publish(stop: threading.Event) -> int:
        try:
            report = publish_synthetic(settings, args.events, args.seed, args.duplicate_rate, args.invalid_rate,
                                       chunk=args.chunk, resume=True, on_spooled=Pacer(args.rate), stop=stop)
        except GeneratorConfigError as exc:  # rates, chunk, a spool of another seed: options, so exit 2
            raise StartError(str(exc)) from exc
        print(json.dumps(asdict(report), ensure_ascii=False), flush=True)
        return EXIT_DONE

    return run_part("synthetic adapter", settings, publish)


def _need_broker(settings: Settings, name: str) -> None:
    if not settings.bootstrap_servers:
        raise StartError(f"the {name} needs Kafka bootstrap servers (ROADX_BOOTSTRAP_SERVERS)")
