"""``python -m producers.synthetic_cli``: the synthetic provinces as a restartable adapter process.

Settings come from ``ROADX_*`` (bootstrap servers, provinces, data directory). The run
resumes what an earlier, interrupted run with the same seed left: it first sends the
spool's pending entries, then continues generation after each province's checkpointed
``generated`` count, so a process killed at any moment and started again publishes
every event and spools none twice. ``--rate`` paces generation (events per second).

Exit status: 0 every event generated and acknowledged by the broker; 2 an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Callable

from deploy.errors import DeployError
from schemas.errors import SettingsError
from schemas.settings import Settings, resolve

from . import metrics
from .errors import ProducerError
from .synthetic import publish_synthetic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producers.synthetic_cli",
        description="Publish the synthetic provinces through the spool; resumes an interrupted run.")
    parser.add_argument("--events", type=int, required=True, help="events to generate in the whole run")
    parser.add_argument("--seed", type=int, required=True, help="seed of the synthetic provinces")
    parser.add_argument("--duplicate-rate", type=float, default=0.02, help="share of resent events (default 0.02)")
    parser.add_argument("--invalid-rate", type=float, default=0.01, help="share of invalid records (default 0.01)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events per second to generate; 0 = as fast as possible")
    parser.add_argument("--chunk", type=int, default=200, help="events per province per spool append (default 200)")
    return parser


class Pacer:
    """Sleeps so that generation after the first spooled count keeps to ``rate`` events/s."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: tuple[float, int] | None = None

    def __call__(self, generated: int) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        if self._start is None:
            self._start = (now, generated)
            return
        started, first = self._start
        ahead = started + (generated - first) / self.rate - now
        if ahead > 0:
            self._sleep(ahead)


def run(settings: Settings, args: argparse.Namespace) -> dict:
    """Publish (resuming); returns the run's counts."""
    if args.events < 0:
        raise DeployError("--events must not be negative")
    if args.rate < 0:
        raise DeployError("--rate must not be negative")
    if not settings.bootstrap_servers:
        raise DeployError("the synthetic adapter needs ROADX_BOOTSTRAP_SERVERS")
    metrics.serve(settings)
    report = publish_synthetic(settings, args.events, args.seed, args.duplicate_rate, args.invalid_rate,
                               chunk=args.chunk, resume=True, on_spooled=Pacer(args.rate))
    return asdict(report)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(resolve(), args)
    except (ProducerError, DeployError, SettingsError) as exc:
        print(f"synthetic adapter: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
