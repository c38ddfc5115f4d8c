"""``roadx demo``: the national demo on the embedded stack (``deploy.demo``), and its summary."""

from __future__ import annotations

import argparse
import json

from schemas.settings import Settings

from ..errors import DeployError


def add_parser(sub: argparse._SubParsersAction, with_data_dir) -> None:
    """Register ``demo`` on the roadx parser."""
    demo = with_data_dir(sub.add_parser("demo", help="run the national demo on the embedded stack"))
    demo.add_argument("--provinces", type=int, default=31, help="how many provinces take part (1-31, default 31)")
    demo.add_argument("--events", type=int, default=100_000, help="events to publish (default 100000)")
    demo.add_argument("--seed", type=int, default=2015, help="seed of the synthetic provinces")
    demo.add_argument("--duplicate-rate", type=float, default=0.02, help="share of resent events (default 0.02)")
    demo.add_argument("--invalid-rate", type=float, default=0.01, help="share of invalid records (default 0.01)")
    demo.add_argument("--no-water", action="store_true",
                      help="leave out the navigation administrations and the water registers they publish")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from ..demo import Progress, format_summary, run_demo

    if args.events < 1:
        raise DeployError("--events must be at least 1")
    for name in ("duplicate_rate", "invalid_rate"):
        if not 0 <= getattr(args, name) < 0.5:
            raise DeployError(f"--{name.replace('_', '-')} must be in [0, 0.5)")
    from schemas.parties import NAVIGATION_ADMINISTRATION

    provinces = tuple(p for p in settings.provinces if settings.parties()[p].kind == "province")
    if not 1 <= args.provinces <= len(provinces):
        raise DeployError(f"--provinces must be between 1 and {len(provinces)}")
    # The navigation administrations (长江, 珠江) publish ships, shipping and port enterprises and waterway
    # projects beside the provinces' own water registers: the demo shows parties that are not provinces.
    water = () if args.no_water else settings.parties().of_kind(NAVIGATION_ADMINISTRATION)
    demo_settings = settings.with_overrides(provinces=provinces[: args.provinces] + water)
    summary = run_demo(demo_settings, args.events, args.seed, Progress(),
                       duplicate_rate=args.duplicate_rate, invalid_rate=args.invalid_rate)
    print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) if args.json else format_summary(summary))
    return 0 if summary.reconciled else 1
