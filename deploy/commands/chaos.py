"""``roadx chaos``: the synthetic workload through the line, with the target provinces replying to
their cases, while parts (adapter, stream workers, sink, case workflows) are killed and the broker
stops; then the store, the topics and the case workflows are checked (``deploy.chaos``).

Also runnable as ``python -m deploy.commands.chaos [options]`` (same options).
Exit status: 0 every check passed; 1 a check failed (the report says which); 2 an error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from schemas.settings import Settings

from ..errors import COMMAND_ERRORS
from ..worker import EXIT_INTERRUPTED, interrupt_on_sigterm


def add_parser(sub: Any, with_data_dir: Any) -> None:
    """Register ``chaos`` on the roadx parser."""
    from ..chaos.run import ChaosOptions

    d = ChaosOptions()
    chaos = with_data_dir(sub.add_parser(
        "chaos", help="kill adapters, stream workers, the sink and the case workflows at random and pause the "
                      "broker; check nothing is lost or doubled and every case workflow ends as its replies say",
        description="Runs the synthetic provinces on its own embedded broker (in --data-dir, else a temporary "
                    "directory, removed when the run passes), the target provinces acknowledging, answering and "
                    "declining the cases routed to them as the seed decides. Progress goes to stderr, the report "
                    "to stdout."))
    chaos.add_argument("--rounds", type=int, default=d.rounds,
                       help=f"rounds, one broker outage each (default {d.rounds})")
    chaos.add_argument("--events", type=int, default=d.events,
                       help=f"events the adapter generates (default {d.events})")
    chaos.add_argument("--seed", type=int, default=d.seed,
                       help=f"seed of the workload, the kill plan and the provinces' replies (default {d.seed})")
    chaos.add_argument("--provinces", type=int, default=d.provinces,
                       help=f"provinces taking part (default {d.provinces})")
    chaos.add_argument("--round-seconds", type=float, default=d.round_seconds,
                       help=f"length of a round (default {d.round_seconds:g})")
    chaos.add_argument("--kills-per-round", type=int, default=d.kills_per_round,
                       help=f"processes killed per round (default {d.kills_per_round})")
    chaos.add_argument("--stream-workers", type=int, default=d.stream_workers,
                       help=f"stream worker processes (default {d.stream_workers})")
    chaos.add_argument("--water", action="store_true",
                       help="the navigation administrations take part too: they publish the water registers, and "
                            "the provinces' cases about their ships may reach the line before the ships do")
    chaos.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON to FILE")
    chaos.set_defaults(handler=cmd_chaos)


def cmd_chaos(settings: Settings, args: argparse.Namespace) -> int:
    from ..chaos.check import format_report
    from ..chaos.run import ChaosOptions, ChaosRun, chaos_data_dir

    options = ChaosOptions(rounds=args.rounds, events=args.events, seed=args.seed, provinces=args.provinces,
                           round_seconds=args.round_seconds, kills_per_round=args.kills_per_round,
                           stream_workers=args.stream_workers, water=args.water)
    options.validate(len(settings.provinces))

    def say(text: str) -> None:
        print(f"chaos: {text}", file=sys.stderr, flush=True)

    data_dir, temporary = chaos_data_dir(getattr(args, "data_dir", None))
    run = ChaosRun(settings, options, data_dir, say)
    report = run.run()
    print(format_report(report, options.rounds), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), "utf-8")
        say(f"report written to {args.json}")
    if temporary and report.ok:
        shutil.rmtree(data_dir, ignore_errors=True)
        if not run.settings.parties_dir:  # the parties' keys were made beside the temporary directory
            shutil.rmtree(run.settings.party_keys_dir, ignore_errors=True)
    elif not report.ok:
        say(f"logs and store kept in {data_dir}")
    return report.exit_status


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.commands.chaos``: the same command without the rest of the roadx parser."""
    from schemas.settings import resolve

    parser = argparse.ArgumentParser(prog="roadx")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", type=Path, help="where the run keeps its store, spool and logs")
        return p

    add_parser(sub, with_data_dir)
    args = parser.parse_args(["chaos", *(sys.argv[1:] if argv is None else argv)])
    interrupt_on_sigterm()
    try:
        return args.handler(resolve(data_dir=args.data_dir), args)
    except KeyboardInterrupt:
        print("roadx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except COMMAND_ERRORS as exc:
        print(f"roadx: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
