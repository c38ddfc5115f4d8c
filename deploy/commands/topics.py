"""``roadx topics spec|plan|apply``: the exchange's topics from a declarative spec (``deploy.topicspec``).

``plan`` and ``apply`` find the broker the usual way (``deploy.stack.with_running_broker``)
and compare the spec with what is there (``deploy.topic_apply``); drift exits 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.settings import Settings

from ..stack import with_running_broker
from ..topic_apply import apply_plan, format_plan, managed_pattern, open_admin, plan_topics, read_broker_topics
from ..topicspec import TopicSpec, default_spec, dump_spec, load_spec


def add_parser(sub, with_data_dir) -> None:
    """Register ``topics`` on the roadx parser."""
    topics = sub.add_parser("topics", help="create and check the exchange's topics from a declarative spec")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    spec = with_data_dir(topics_sub.add_parser("spec", help="print the topic spec derived from the settings (TOML)"))
    spec.set_defaults(handler=cmd_topics_spec)
    plan = with_data_dir(topics_sub.add_parser("plan", help="show what `topics apply` would change, and drift"))
    plan.add_argument("--spec", type=Path, help="TOML spec file (default: derived from the settings)")
    plan.set_defaults(handler=cmd_topics_plan)
    apply = with_data_dir(topics_sub.add_parser("apply", help="create or update every topic from the spec"))
    apply.add_argument("--spec", type=Path, help="TOML spec file (default: derived from the settings)")
    apply.add_argument("--dry-run", action="store_true", help="only show the plan")
    apply.set_defaults(handler=cmd_topics_apply)


def _spec(settings: Settings, path: Path | None) -> list[TopicSpec]:
    return load_spec(path, settings) if path is not None else default_spec(settings)


def cmd_topics_spec(settings: Settings, args: argparse.Namespace) -> int:
    print(dump_spec(default_spec(settings)), end="")
    return 0


def _plan(settings: Settings, path: Path | None):
    spec = _spec(settings, path)  # validated (and replication chosen) before any connection
    live = with_running_broker(settings)
    admin = open_admin(live)
    pattern = managed_pattern(settings)
    current = read_broker_topics(admin, [t.name for t in spec], also_matching=pattern)
    return admin, plan_topics(spec, current, pattern)


def cmd_topics_plan(settings: Settings, args: argparse.Namespace) -> int:
    _admin, plan = _plan(settings, args.spec)
    print(format_plan(plan))
    return 0


def cmd_topics_apply(settings: Settings, args: argparse.Namespace) -> int:
    admin, plan = _plan(settings, args.spec)
    print(format_plan(plan))
    if args.dry_run:
        print("dry run: nothing changed")
    elif plan.actions:
        done = apply_plan(admin, plan)
        print(f"applied {len(done)} change(s)")
    else:
        print("nothing to change")
    return 1 if plan.drift else 0
