"""``roadx check FILE --party P --register R``: a daily file checked offline before it is sent.

The parties' validation tool (数据校验工具): no broker, store or key is needed. The file is read
by the file adapter's own code and its rows run through the stream stage's own rules
(``deploy.check``); the adapter's row report is written beside the file (``<file>.errors.csv``)
or at ``--report``; the completeness / conformity / relational scores are printed with the first
findings (``--json``: the whole result). Relational rules about referenced entities run only
against ``--snapshot``, an export of the national register.

Exit status: 0 the hub would accept every row (warnings allowed), 1 a row would be rejected,
2 the file cannot be read at all (the adapter would move it to ``rejected/``) or bad usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from producers.files import ReadLimits, load_mapping
from schemas.contract import ENTITY_TYPES
from schemas.identifiers import china_today
from schemas.settings import Settings

from ..check import CheckError, CheckOptions, CheckResult, check_file, load_snapshot

SHOWN_FINDINGS = 10
DIMENSION_LABELS = {"completeness": "完整性 completeness", "conformity": "规范性 conformity",
                    "relational": "关联性 relational"}


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``check`` on the roadx parser."""
    p = with_data_dir(sub.add_parser(
        "check", help="check a daily file offline with the hub's rules before sending it (数据校验工具)",
        description="Check a daily CSV/XLSX register file as the file adapter and the hub's stream stage would, "
                    "offline: the adapter's row report (<file>.errors.csv), completeness / conformity / relational "
                    "scores and the first findings. Exit status: 0 every row would be accepted, 1 a row would be "
                    "rejected, 2 the file cannot be read or bad usage."))
    p.add_argument("path", type=Path, metavar="FILE", help="the CSV or XLSX file to check")
    p.add_argument("--party", "--province", dest="party", required=True, metavar="P",
                   help="the party sending the file: a province's two-digit GB/T 2260 code, or another party's "
                        "code (see roadx parties; --province: its first name)")
    p.add_argument("--register", "--entity", dest="register", required=True, choices=ENTITY_TYPES,
                   help="the register the file holds")
    p.add_argument("--mapping", type=Path, metavar="FILE",
                   help="the same column mapping file as roadx produce files --mapping")
    p.add_argument("--snapshot", type=Path, metavar="PATH",
                   help="an export of the national register (file or directory: CSV/TSV/JSON/JSON lines with "
                        "entity_key) to check references against; without it relational checks are not run")
    p.add_argument("--report", type=Path, metavar="PATH",
                   help="write the row report here instead of beside the file (<file>.errors.csv)")
    p.add_argument("--show", type=int, default=SHOWN_FINDINGS, metavar="N",
                   help=f"findings to print (default {SHOWN_FINDINGS})")
    p.add_argument("--max-line-bytes", type=int, default=ReadLimits.max_line_bytes,
                   help=f"longest accepted line or sheet row (default {ReadLimits.max_line_bytes})")
    p.add_argument("--max-file-bytes", type=int, default=ReadLimits.max_file_bytes,
                   help=f"largest accepted file (default {ReadLimits.max_file_bytes})")
    p.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    p.set_defaults(handler=cmd_check)


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    if args.party not in settings.provinces:
        raise CheckError(f"unknown party {args.party!r}: use one of {', '.join(settings.provinces)}")
    refusal = settings.parties().refusal(args.party, args.register)
    if refusal is not None:  # the adapter refuses to start, the hub would refuse every event
        raise CheckError(f"register_not_allowed: {refusal}")
    if not args.path.is_file():
        raise CheckError(f"no such file: {args.path}")
    if args.show < 0 or args.max_line_bytes < 1 or args.max_file_bytes < 1:
        raise CheckError("--show must not be negative, --max-line-bytes and --max-file-bytes at least 1")
    options = CheckOptions(
        mapping=load_mapping(args.mapping, args.register) if args.mapping else {},
        limits=ReadLimits(max_file_bytes=args.max_file_bytes, max_line_bytes=args.max_line_bytes),
        uscc_allow=settings.uscc_allow(), today=china_today(),
        snapshot=load_snapshot(args.snapshot) if args.snapshot else None, report=args.report)
    result = check_file(args.path, args.party, args.register, options)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))
    else:
        print(describe(result, args.show))
    return result.exit_status


def describe(result: CheckResult, shown: int = SHOWN_FINDINGS) -> str:
    """The result as a provincial engineer reads it."""
    head = f"{result.path.name}: register {result.register}, party {result.party}"
    if result.status != "checked":
        return (f"{head}\nthe file cannot be read at all ({result.rule}): {result.reason}\n"
                f"verdict: the adapter would refuse the whole file and move it to rejected/ (exit 2)")
    accepted = result.rows - result.rejected_rows
    lines = [f"{head} ({result.format}, {result.encoding})",
             f"rows: {result.rows} read, {accepted} would be accepted ({result.warned_rows} of them with warnings), "
             f"{result.rejected_rows} rejected"]
    for number, score in enumerate(result.scores, start=1):
        label = DIMENSION_LABELS.get(score.dimension, score.dimension)
        if not score.checked:
            lines.append(f"  {number}. {label:<20} not checked (give --snapshot to check references)")
        elif score.rows:
            lines.append(f"  {number}. {label:<20} {score.passed}/{score.rows} rows  {score.percent:.1f}%")
        else:
            lines.append(f"  {number}. {label:<20} no rows")
    if result.findings:
        lines.append(f"findings (first {min(shown, len(result.findings))} of {len(result.findings)}):")
        for f in result.findings[:shown]:
            where = f" {f.field}" if f.field else ""
            lines.append(f"  row {f.row}: {f.severity} {f.rule}{where} [{f.dimension}, {f.stage}] {f.message}")
    if result.report is not None:
        lines.append(f"row report: {result.report}")
    if result.rejected_rows:
        lines.append(f"verdict: {result.rejected_rows} of {result.rows} rows would be rejected (exit 1)")
    else:
        lines.append("verdict: the hub would accept every row (exit 0)")
    return "\n".join(lines)

