"""``roadx query``, ``roadx report`` and ``roadx verify``: read the national store.

Each reads the store wherever it is (``sinks.store_client``): the ClickHouse server when
``ROADX_CLICKHOUSE_URL`` is set, the running stack's sink endpoint while a stack runs
(``deploy.stack.served_store``), else the embedded store itself. ``roadx verify --token``
asks the information service instead (the running stack's, or ``--service URL``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from schemas.errors import SettingsError
from schemas.settings import Settings
from sinks.errors import SinkError

from ..stack import StackInfo, served_store


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``query``, ``report`` and ``verify`` on the roadx parser."""
    query = with_data_dir(sub.add_parser("query", help="run SQL against the national store"))
    query.add_argument("sql")
    query.add_argument("--format", choices=("pretty", "tsv", "json"), default="pretty")
    query.set_defaults(handler=cmd_query)

    report = with_data_dir(sub.add_parser("report", help="write the monthly report as one HTML page"))
    report.add_argument("--month", required=True, help="the month to report, YYYY-MM")
    report.add_argument("--out", type=Path, default=Path("report.html"), help="where to write it (default report.html)")
    report.set_defaults(handler=cmd_report)

    verify = with_data_dir(sub.add_parser(
        "verify", help="verify a licence: valid / suspended / revoked / expired / unknown, and its seal",
        description="Answers the licence's status and, beside it, the issuing authority's seal (valid / invalid "
                    "/ unknown_key / unsealed, or unchecked where the store keeps no signature). Exit status: "
                    "0 valid (and its seal not invalid or unknown_key), 1 any other answer, 2 an error."))
    verify.add_argument("licence_no", nargs="?", help="the licence number (证照编号); or give --qr")
    verify.add_argument("--qr", metavar="PAYLOAD",
                        help="the payload scanned from the licence's QR code (RDXL1:<licence_no>:<key_id>:"
                             "<sealed_at ms>:<signature>): its seal is checked against the register's licence")
    verify.add_argument("--json", action="store_true", help="print the answer as JSON")
    verify.add_argument("--token", help="a party's credential (roadx keys issue): ask the information service")
    verify.add_argument("--service", metavar="URL",
                        help="the service's URL ending in /v1/ (default: the running stack's service)")
    verify.set_defaults(handler=cmd_verify)


def open_store_client(settings: Settings, wait_seconds: float = 30) -> Any:
    """A client of the store: the server, the running stack's served store, or the store itself."""
    from sinks.store_client import store_client

    return store_client(settings, served_store(settings, wait_seconds))


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    """Answer SQL from the store: the ClickHouse server, the running sink's endpoint, or the embedded store."""
    from sinks.query import run_query

    client = open_store_client(settings)
    try:
        print(run_query(client, args.sql, args.format))
    finally:
        client.close()
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.deadlines import Deadlines
    from sinks.report import load_report, parse_month
    from sinks.report_html import render_html

    month = parse_month(args.month)
    client = open_store_client(settings)
    try:
        data = load_report(client, settings.clickhouse_database, month, settings.provinces,
                           grace_seconds=settings.reference_grace_seconds,
                           case_deadlines=Deadlines(settings.case_receipt_seconds, settings.case_answer_seconds))
    finally:
        client.close()
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_html(data), "utf-8")
    except OSError as exc:
        raise SinkError(f"cannot write the report to {args.out}: {exc}") from exc
    total = sum(data.at(p).events for p in data.provinces)
    print(f"report for {args.month}: {len(data.provinces)} provinces, {total:,} events → {args.out}")
    return 0


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Ask the information service when one runs and a credential is given, else the store."""
    from schemas.licences import format_verdict
    from schemas.seals import parse_qr

    if (args.licence_no is None) == (args.qr is None):
        raise SettingsError("give the licence number or --qr PAYLOAD, one of them")
    scanned = parse_qr(args.qr) if args.qr is not None else None  # malformed: ProvenanceError rule malformed_qr
    number = scanned.licence_no if scanned is not None else args.licence_no
    info = StackInfo.read(settings.stack_file)
    service_url = args.service or (info.service_url if info is not None else "")
    if service_url and args.token:
        from ..service import ask_verification

        answer = ask_verification(service_url, args.token, number, qr=args.qr)
    else:
        if service_url:
            print(f"roadx: note: answered from the store; give --token to ask the service at {service_url}",
                  file=sys.stderr)
        from sinks.verify import verify_licence

        client = open_store_client(settings)
        try:
            answer = verify_licence(client, settings.clickhouse_database, number, _pii(settings),
                                    public_key_for=settings.hub_keys().public_key, qr=scanned)
        finally:
            client.close()
    if args.json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False, indent=1))
    else:
        print(format_verdict(answer))
    return 0 if answer.status == "valid" and answer.seal not in ("invalid", "unknown_key") else 1


def _pii(settings: Settings) -> Any:
    """The masker of the store's keyed tokens, when the exchange's master key is at hand."""
    from schemas.pii import PiiMasker

    key_file = settings.master_key_file or settings.data_dir / "secrets" / "master.key"
    if not Path(key_file).exists():
        print(f"roadx: note: no master key at {key_file}: qualification numbers are matched as stored",
              file=sys.stderr)
        return None
    return PiiMasker(settings.pii_key())
