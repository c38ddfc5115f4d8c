"""``roadx keys``: the parties' own keys and what the hub registers of them, and the information
service's credentials.

Signing keys (``schemas.keys``), each command run on its own side:

- ``init --party P`` (the party's side): makes a key set in ``<parties-dir>/<P>/keys/<key-id>/``
  (an SM2 key pair and an event secret, files 0600) and says where its ``registration.json``
  is, the one file to hand to the hub;
- ``trust-hub --party P FILE`` (the party's side): keeps the hub's public key, which verifies
  the hub's receipts;
- ``register FILE``, ``withdraw KEY-ID``, ``registered`` (the hub's side): the registry in
  ``<data-dir>/keys/parties.json``; ``hub-public`` prints the hub's public key for the parties.

The parties' directory is ``--parties-dir``, else ``ROADX_PARTIES_DIR``, else ``<data-dir>-parties``.

Information-service credentials (``schemas.credentials``), in ``<data-dir>/keys/api-credentials.json``
as hashes: ``issue`` prints the new token on standard output, the only time it is shown, and
what it is on standard error (so ``TOKEN=$(roadx keys issue --party 44)`` keeps just the token);
``revoke`` and ``list``. A party is one of the settings' provinces (``ROADX_PROVINCES``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Callable

from schemas.credentials import Credential, Credentials, credentials_file
from schemas.errors import KeyStoreError
from schemas.keys import DEFAULT_VALID_DAYS, PartyKeys, RegisteredKey, moment
from schemas.settings import Settings


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``keys`` and its subcommands on the roadx parser."""
    keys = with_data_dir(sub.add_parser(
        "keys", help="the parties' signing keys and their registration at the hub; the information service's "
                     "credentials"))
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    _add_signing_keys(keys_sub, with_data_dir)

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


def _add_signing_keys(keys_sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    init = with_data_dir(keys_sub.add_parser(
        "init", help="(party side) make a party's SM2 key pair and event secret; prints its registration file"))
    init.add_argument("--party", required=True, help="the party's code (a province: two-digit GB/T 2260 code)")
    init.add_argument("--valid-days", type=int, default=DEFAULT_VALID_DAYS, metavar="N",
                      help=f"days the key set is valid for (default {DEFAULT_VALID_DAYS})")
    init.add_argument("--not-before", type=_moment, metavar="ISO-TIME",
                      help="when its validity begins, with its UTC offset (default now): a rotation planned ahead")
    _with_parties_dir(init)
    init.set_defaults(handler=cmd_keys_init)

    trust = with_data_dir(keys_sub.add_parser(
        "trust-hub", help="(party side) keep the hub's public key, which verifies its receipts"))
    trust.add_argument("--party", required=True, help="the party's code")
    trust.add_argument("file", type=Path, metavar="FILE", help="the hub's public key (PEM), from roadx keys hub-public")
    _with_parties_dir(trust)
    trust.set_defaults(handler=cmd_keys_trust_hub)

    register = with_data_dir(keys_sub.add_parser(
        "register", help="(hub side) register a party's key from its registration.json"))
    register.add_argument("file", type=Path, metavar="FILE",
                          help="the registration.json roadx keys init made (- for standard input)")
    register.set_defaults(handler=cmd_keys_register)

    withdraw = with_data_dir(keys_sub.add_parser(
        "withdraw", help="(hub side) revoke a registered key: what is signed with it is refused from now on"))
    withdraw.add_argument("key_id", metavar="KEY-ID", help="the key to withdraw (roadx keys registered lists them)")
    withdraw.set_defaults(handler=cmd_keys_withdraw)

    registered = with_data_dir(keys_sub.add_parser(
        "registered", help="(hub side) list the registered keys (never their secrets)"))
    registered.add_argument("--json", action="store_true", help="print them as one JSON array")
    registered.set_defaults(handler=cmd_keys_registered)

    hub_public = with_data_dir(keys_sub.add_parser(
        "hub-public", help="(hub side) print the hub's public key (PEM) for the parties"))
    hub_public.set_defaults(handler=cmd_keys_hub_public)


def _with_parties_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parties-dir", type=Path, metavar="DIR",
                   help="where the parties' own sides keep their keys (default: $ROADX_PARTIES_DIR, "
                        "else <data-dir>-parties)")


def _moment(text: str) -> dt.datetime:
    try:
        return moment(text, "--not-before")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 2025-07-01T00:00:00+08:00)") from None


def _party_keys(settings: Settings, args: argparse.Namespace) -> PartyKeys:
    if args.parties_dir is not None:
        settings = settings.with_overrides(parties_dir=args.parties_dir)
    return settings.party_keys(args.party)


# -- the party's side ----------------------------------------------------------------------
def cmd_keys_init(settings: Settings, args: argparse.Namespace) -> int:
    party = _party_keys(settings, args)
    now = _now()
    others = party.keys()  # a key file others may read is refused here, before anything is made
    key = party.init(now, args.valid_days, args.not_before)
    registration = party.keys_directory / key.key_id / "registration.json"
    print(f"made key {key.key_id} of party {key.party}, valid from {key.not_before.isoformat()} "
          f"to {key.not_after.isoformat()}")
    print(f"registration: {registration}")
    print("hand that file to the hub, which registers it: roadx keys register FILE")
    print(f"its private key stays here: {party.keys_directory / key.key_id / 'sm2.key'}")
    older = [k for k in others if k.not_after > now]
    if older:
        print(f"the party's other key sets still valid: {', '.join(k.key_id for k in older)}; once the new one "
              f"is registered and signing, the hub withdraws each: roadx keys withdraw KEY-ID")
    if not party.hub_public_file.exists():
        print(f"to verify the hub's receipts, keep its public key: roadx keys trust-hub --party {key.party} FILE "
              f"(FILE from roadx keys hub-public at the hub)")
    return 0


def cmd_keys_trust_hub(settings: Settings, args: argparse.Namespace) -> int:
    party = _party_keys(settings, args)
    try:
        pem = args.file.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read {args.file}: {exc.strerror}") from None
    party.set_hub_public(pem)
    print(f"party {party.party} now verifies the hub's receipts with the key in {party.hub_public_file}")
    return 0


# -- the hub's side ------------------------------------------------------------------------
def cmd_keys_register(settings: Settings, args: argparse.Namespace) -> int:
    source = "standard input" if str(args.file) == "-" else str(args.file)
    try:
        text = sys.stdin.read() if source == "standard input" else args.file.read_text("utf-8")
    except FileNotFoundError:
        raise KeyStoreError(f"no registration file {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"cannot read {source}: {exc}") from None
    try:
        registration = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyStoreError(f"{source} is not a registration: it does not parse as JSON ({exc})") from None
    hub = settings.hub_keys()
    try:
        entry = hub.register(registration, _now(), settings.provinces)
    except KeyStoreError as exc:
        raise KeyStoreError(f"cannot register {source}: {exc}") from None
    print(f"registered key {entry.key_id} of party {entry.party}, valid from {entry.not_before.isoformat()} "
          f"to {entry.not_after.isoformat()}, in {hub.registry_file}")
    usable = [k.key_id for k in hub.entries() if k.party == entry.party and k.usable_at(_now())]
    print(f"keys of party {entry.party} accepted now: {', '.join(usable) or 'none'}")
    return 0


def cmd_keys_withdraw(settings: Settings, args: argparse.Namespace) -> int:
    hub = settings.hub_keys()
    entry = hub.revoke(args.key_id, _now())
    print(f"withdrew key {entry.key_id} of party {entry.party} at {entry.revoked.isoformat()}: "
          f"what is signed with it is refused from now on")
    usable = [k.key_id for k in hub.entries() if k.party == entry.party and k.usable_at(_now())]
    if usable:
        print(f"keys of party {entry.party} accepted now: {', '.join(usable)}")
    else:
        print(f"warning: party {entry.party} has no key accepted now; its events are refused until one is "
              f"registered", file=sys.stderr)
    return 0


def cmd_keys_registered(settings: Settings, args: argparse.Namespace) -> int:
    hub = settings.hub_keys()
    entries, now = hub.entries(), _now()
    if args.json:
        print(json.dumps([{**k.listing(), "state": key_state(k, now)} for k in entries], indent=1))
    elif not entries:
        print(f"no keys registered in {hub.registry_file}")
    else:
        print(format_registered(entries, now))
    return 0


def cmd_keys_hub_public(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(settings.hub_keys().hub_public_pem().decode("ascii"))
    return 0


def key_state(key: RegisteredKey, now: dt.datetime) -> str:
    """``usable``, ``withdrawn``, ``expired`` or ``pending`` (its validity has not begun)."""
    if key.revoked is not None and key.revoked <= now:
        return "withdrawn"
    if now >= key.not_after:
        return "expired"
    return "pending" if now < key.not_before else "usable"


def format_registered(entries: list[RegisteredKey], now: dt.datetime) -> str:
    """One line per registered key under a header; ``-`` for a time that is not set."""
    def when(value: dt.datetime | None) -> str:
        return value.isoformat() if value else "-"

    rows = [("PARTY", "KEY-ID", "STATE", "NOT-BEFORE", "NOT-AFTER", "REGISTERED", "REVOKED")] + [
        (k.party, k.key_id, key_state(k, now), when(k.not_before), when(k.not_after), when(k.registered),
         when(k.revoked)) for k in entries]
    return _table(rows)


# -- the information service's credentials ----------------------------------------------------
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
    return _table(rows)


def _table(rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, the last one not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
