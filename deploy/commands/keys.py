"""``roadx keys issue|revoke|list``: the parties' credentials for the information service (``schemas.credentials``).

They live in ``<data-dir>/keys/api-credentials.json``, as hashes. ``issue`` prints the new
token on standard output, the only time it is shown, and what it is on standard error (so
``TOKEN=$(roadx keys issue --party 44)`` keeps just the token). A party is one of the settings'
provinces (``ROADX_PROVINCES``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Callable

from schemas.credentials import Credential, Credentials, credentials_file
from schemas.settings import Settings


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``keys`` and its subcommands on the roadx parser."""
    keys = with_data_dir(sub.add_parser("keys", help="issue, revoke and list the parties' information-service keys"))
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    issue = with_data_dir(keys_sub.add_parser("issue", help="issue a party a credential and print its token once"))
    issue.add_argument("--party", required=True, help="the party's code (a province: two-digit GB/T 2260 code)")
    issue.set_defaults(handler=cmd_keys_issue)

    revoke = with_data_dir(keys_sub.add_parser("revoke", help="revoke one credential, or every one of a party"))
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("credential_id", nargs="?", metavar="CREDENTIAL-ID", help="the credential to revoke")
    which.add_argument("--party", help="revoke every active credential of this party")
    revoke.set_defaults(handler=cmd_keys_revoke)

    listing = with_data_dir(keys_sub.add_parser("list", help="list the credentials (never their tokens)"))
    listing.add_argument("--json", action="store_true", help="print them as one JSON array")
    listing.set_defaults(handler=cmd_keys_list)


def cmd_keys_issue(settings: Settings, args: argparse.Namespace) -> int:
    credentials = Credentials.load(credentials_file(settings.data_dir))
    credential, token = credentials.issue(args.party, _now(), settings.provinces)
    print(f"issued credential {credential.id} to party {credential.party} at {credential.created.isoformat()}; "
          f"its token follows, shown only now (the hub keeps only its hash):", file=sys.stderr)
    print(token, flush=True)
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    credentials = Credentials.load(credentials_file(settings.data_dir))
    if args.party is not None:
        revoked = credentials.revoke_party(args.party, _now())
    else:
        revoked = [credentials.revoke(args.credential_id, _now())]
    for credential in revoked:
        print(f"revoked credential {credential.id} of party {credential.party}")
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    path = credentials_file(settings.data_dir)
    entries = Credentials.load(path).entries()
    if args.json:
        print(json.dumps([credential.as_dict() for credential in entries], ensure_ascii=False, indent=1))
    elif not entries:
        print(f"no credentials in {path}")
    else:
        print(format_table(entries))
    return 0


def format_table(entries: list[Credential]) -> str:
    """One line per credential under a header: id, party, created, revoked (``-`` when active)."""
    rows = [("ID", "PARTY", "CREATED", "REVOKED")] + [
        (c.id, c.party, c.created.isoformat(), c.revoked.isoformat() if c.revoked else "-") for c in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[3]]) for row in rows)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
