"""``roadx evidence verify``: re-check the evidence log of manifests and receipts, offline.

Reads the log from the store (``roadx query``'s way: the ClickHouse server, the running
stack's served store, or the embedded store) and checks every entry's hash, the chain from
the entry before the slice, and every signature: a manifest's with the party's key as the hub
registered it, a receipt's with the hub's public key (``schemas.evidence.verify``). Prints what
it checked and every problem, naming the entry and its submission; exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable

from schemas import evidence
from schemas.errors import SettingsError
from schemas.settings import Settings

from ..evidence_check import check_evidence
from .store import open_store_client

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
CHAIN_RULES = frozenset({"missing_or_reordered", "broken_chain"})


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``evidence verify`` on the roadx parser."""
    group = sub.add_parser("evidence", help="the evidence log of submissions' manifests and receipts")
    commands = group.add_subparsers(dest="evidence_command", required=True)
    verify = with_data_dir(commands.add_parser(
        "verify", help="re-check every signature and the hash chain of the evidence log",
        description="Exit status: 0 every entry checks out, 1 a problem was found, 2 an error."))
    verify.add_argument("--party", help="check only this party's entries (and the chain through them)")
    verify.add_argument("--month", help="check only the entries of this month, YYYY-MM (UTC)")
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    month = args.month or ""
    if month and not _MONTH.fullmatch(month):
        raise SettingsError(f"--month {month!r} is not a month (YYYY-MM)")
    client = open_store_client(settings)
    try:
        entries, before, problems = check_evidence(settings, client, month)
    finally:
        client.close()
    by_index = {int(e["index"]): e for e in entries}
    if args.party:
        problems = [p for p in problems
                    if p.rule in CHAIN_RULES or by_index.get(p.index, {}).get("party") == args.party]
        checked = [e for e in entries if e["party"] == args.party]
    else:
        checked = entries
    print(_summary(checked, entries, before, args.party, month))
    for problem in problems:
        entry = by_index.get(problem.index)
        what = f"{entry['kind']} of {entry['party']}/{entry['submission_id']}" if entry else "not in the slice"
        print(f"  PROBLEM entry {problem.index} ({what}): {problem.rule}: {problem.detail}")
    print(f"{len(problems)} problems" if problems else "every entry checks out")
    return 1 if problems else 0


def _summary(checked: list[dict[str, Any]], entries: list[dict[str, Any]], before: dict[str, Any] | None,
             party: str | None, month: str) -> str:
    scope = " ".join(part for part in (f"party {party}" if party else "", f"month {month}" if month else "") if part)
    kinds = {kind: sum(1 for e in checked if e["kind"] == kind) for kind in evidence.KINDS}
    span = f"entries {entries[0]['index']}..{entries[-1]['index']}" if entries else "no entries"
    chain = f"from entry {before['index']} ({str(before['hash'])[:16]}…)" if before else "from the start of the log"
    return (f"evidence log{' (' + scope + ')' if scope else ''}: checked {kinds['manifest']} manifests and "
            f"{kinds['receipt']} receipts; chain through {span} {chain}")
