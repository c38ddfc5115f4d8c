"""``roadx bench``: measure the ceilings, the stages and the information service in one run and print one table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from schemas.settings import Settings


def add_parser(sub: Any, with_data_dir: Any) -> None:
    """Register ``bench`` on the roadx parser (it runs on its own broker and temporary data directory)."""
    bench = sub.add_parser(
        "bench", help="measure throughput, latency and memory against the ceilings of this machine",
        description="Runs on a fresh embedded broker and a temporary data directory; progress goes to "
                    "stderr, the table to stdout. Tuning settings (partitions, batch sizes) come from ROADX_*.")
    bench.add_argument("--events", type=int, default=100_000,
                       help="events through the adapter, the stages and end to end (default 100000)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON to FILE")
    bench.add_argument("--state-entities", type=int, default=10_000_000,
                       help="distinct entities in the stream worker's state for its RSS figure (default 10000000)")
    bench.add_argument("--faust-events", type=int, default=20_000,
                       help="events through the naive faust agent (default 20000)")
    bench.add_argument("--latency-rate", type=int, default=5_000, help="offered events/s of the latency run (default 5000)")
    bench.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency run (default 20)")
    bench.add_argument("--service-entities", type=int, default=1_000_000,
                       help="entities in the information service's register (default 1000000)")
    bench.add_argument("--service-seconds", type=float, default=10.0,
                       help="length of each lookup and freshness run against the service (default 10)")
    bench.add_argument("--seed", type=int, default=7, help="seed of the synthetic provinces")
    bench.add_argument("--phases", metavar="NAME[,NAME…]",
                       help="run only these phases, in their usual order: ceilings, pipeline, peers, end_to_end, "
                            "state_worker, service (default: all; ratios need the ceilings in the same run; "
                            "peers runs over the pipeline's topics, or fills its own)")
    bench.add_argument("--scale", action="store_true",
                       help="run only the national initial load: the worker's and the sink's rate, memory and the "
                            "store's bytes per entity at each of --scale-points (long: about an hour for 20M)")
    bench.add_argument("--scale-points", type=_counts, default=(1_000_000, 5_000_000, 20_000_000), metavar="N[,N…]",
                       help="entities loaded at each point of the curve (default 1000000,5000000,20000000)")
    bench.add_argument("--scale-round", type=int, default=1_000_000,
                       help="events loaded, then drained, at a time (default 1000000)")
    bench.set_defaults(handler=cmd_bench)


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of counts") from None


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from ..bench.phases import PHASES, chosen_phases
    from ..bench.report import format_table, report_json
    from ..bench.run import Bench, BenchOptions, describe_machine, machine_facts, write_json
    from ..bench.scale import scale
    from ..errors import DeployError

    options = BenchOptions(events=args.events, state_entities=args.state_entities, faust_events=args.faust_events,
                           latency_rate=args.latency_rate, latency_seconds=args.latency_seconds,
                           service_entities=args.service_entities, service_seconds=args.service_seconds, seed=args.seed,
                           scale_points=args.scale_points, scale_round=args.scale_round)
    options.validate()
    if args.scale and args.phases:
        raise DeployError("--scale runs the initial load alone: give it or --phases, not both")
    phases = [scale] if args.scale else chosen_phases(PHASES, args.phases)
    facts = machine_facts()

    def say(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    figures = Bench(settings, options, say).run(phases)
    print(format_table(figures, describe_machine(facts)))
    if args.json is not None:
        write_json(args.json, report_json(figures, facts, asdict(options)))
        say(f"figures written to {args.json}")
    return 0
