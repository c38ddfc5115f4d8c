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

from schemas import evidence, sm2
from schemas.errors import KeyStoreError, SettingsError
from schemas.settings import Settings

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
    from sinks.submission_store import evidence_slice

    month = args.month or ""
    if month and not _MONTH.fullmatch(month):
        raise SettingsError(f"--month {month!r} is not a month (YYYY-MM)")
    hub = settings.hub_keys()
    hub_public = _hub_public(hub)
    client = open_store_client(settings)
    try:
        entries, before = evidence_slice(client, settings.clickhouse_database, month)
    finally:
        client.close()
    first_index = int(before["index"]) + 1 if before else 0
    first_prev = str(before["hash"]) if before else evidence.GENESIS
    problems = evidence.verify(entries, hub.public_key, hub_public, first_index, first_prev)
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


def _hub_public(hub: Any) -> Any:
    """The hub's public key: ``hub.pem`` beside its key, else from the hub's own key."""
    if hub.hub_public_file.exists():
        return sm2.load_public(hub.hub_public_file.read_bytes(), str(hub.hub_public_file))
    if hub.hub_private_file.exists():
        return sm2.load_public(hub.hub_public_pem(), "the hub's public key")
    raise KeyStoreError(f"no hub key in {hub.directory}: the evidence log's receipts cannot be checked here")
