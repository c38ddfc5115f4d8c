"""``roadx cases``: the cross-province cases' workflows for teams without their own system.

``list`` and ``show`` read the store wherever it is (``store.open_store_client``: the server,
the running stack's served store, or the embedded store) through ``sinks.cases``. ``receipt``,
``progress``, ``answer`` and ``decline`` send a reply as the province named: a
``roadx.CaseReply`` signed with its key (``schemas.codec.ReplyCodec``) on
``prov.<Q>.replies``, keyed by the case's entity key found in the store's ``routed_cases``
for that correlation id and province; the broker is the configured cluster or the running
stack's (``deploy.stack.with_running_broker``). Bad input (an unknown province or case, a case
not routed to the province, an answer without its outcome, a decline without its reason) is
``roadx: error: …``, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any, Callable

from schemas.codes import ANSWER, DECLINE, PROGRESS, RECEIPT, REPLY_OUTCOMES
from schemas.errors import InvalidIdentifier, SettingsError
from schemas.parties import region_filter
from schemas.settings import Settings

from ..stack import with_running_broker
from .store import open_store_client


def add_parser(sub: argparse._SubParsersAction, with_data_dir: Callable) -> None:
    """Register ``cases list|show|receipt|progress|answer|decline`` on the roadx parser."""
    cases = with_data_dir(sub.add_parser("cases", help="list, show and reply to routed cross-province cases"))
    actions = cases.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the workflows of the cases routed to a party")
    listing.add_argument("--party", "--province", dest="province", required=True, metavar="P",
                         help="the target party's code (see roadx parties; --province: its first name)")
    listing.add_argument("--region", metavar="CODE",
                         help="only those whose responsible region lies within CODE, a region prefix in the "
                              "party's jurisdiction (4403: a city; 4201 for CJ) or the party's own code (all)")
    listing.add_argument("--open", action="store_true", help="only those not answered or declined yet")
    listing.add_argument("--overdue", action="store_true", help="only those open past their receipt or answer deadline")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(handler=cmd_list)
    show = actions.add_parser("show", help="one case's workflows (one per province it was routed to)")
    show.add_argument("correlation_id")
    show.add_argument("--json", action="store_true", help="one JSON array")
    show.set_defaults(handler=cmd_show)
    for kind, what in ((RECEIPT, "acknowledge a case (回执)"), (PROGRESS, "report a case in progress"),
                       (ANSWER, "answer a case with its outcome"), (DECLINE, "decline a case with a reason")):
        reply = actions.add_parser(kind, help=what)
        reply.add_argument("correlation_id")
        reply.add_argument("--party", "--province", dest="province", required=True, metavar="P",
                           help="the party replying: the case's target (--province: its first name)")
        reply.add_argument("--outcome", help=f"an answer's: {' | '.join(REPLY_OUTCOMES)}")
        reply.add_argument("--reason", help="a decline's: why the case is not the province's")
        reply.add_argument("--redirect-to", metavar="P", help="a decline's, optional: the party the case belongs to")
        reply.add_argument("--note", help="free text for the originating province")
        reply.add_argument("--json", action="store_true", help="print the reply sent as JSON")
        reply.set_defaults(handler=cmd_reply, kind=kind)
    for action in actions.choices.values():  # after the action too: roadx cases list --data-dir DIR
        with_data_dir(action)


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.cases import list_workflows

    _check_province(settings, args.province)
    region = None
    if args.region is not None:
        try:
            region = region_filter(args.region, settings.parties()[args.province], settings.taking_part())
        except InvalidIdentifier as exc:
            raise SettingsError(f"--region: {exc}") from exc
    client = open_store_client(settings)
    try:
        found = list_workflows(client, settings.clickhouse_database, _deadlines(settings), target=args.province,
                               region=region, open_only=args.open, overdue_only=args.overdue)
    finally:
        client.close()
    if args.json:
        print(json.dumps([w.as_dict() for w in found], ensure_ascii=False, indent=1))
    elif not found:
        print(f"no {'overdue ' if args.overdue else 'open ' if args.open else ''}cases routed to {args.province}")
    for workflow in [] if args.json else found:
        print(_line(workflow))
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.cases import find_workflows

    client = open_store_client(settings)
    try:
        found = find_workflows(client, settings.clickhouse_database, args.correlation_id, _deadlines(settings))
    finally:
        client.close()
    if not found:
        raise SettingsError(f"no case {args.correlation_id} in the store (unknown correlation id)")
    if args.json:
        print(json.dumps([w.as_dict() for w in found], ensure_ascii=False, indent=1))
        return 0
    for w in found:
        print(_line(w))
        for label, value in (("routed", w.routed_at), ("received", w.received_at), ("answered", w.answered_at),
                             ("outcome", w.outcome), ("reason", w.reason), ("redirected to", w.redirect_to),
                             ("alerts", ", ".join(w.alerts))):
            if value:
                print(f"  {label}: {_text(value)}")
    return 0


def cmd_reply(settings: Settings, args: argparse.Namespace) -> int:
    """Send province ``--province``'s reply of kind ``args.kind`` to the case ``correlation_id``."""
    from sinks.cases import case_key_at, find_workflows
    from streams.cases.replies import ProvinceReplies

    _check_province(settings, args.province)
    _check_reply(settings, args)
    client = open_store_client(settings)
    try:
        case_key = case_key_at(client, settings.clickhouse_database, args.correlation_id, args.province)
        elsewhere = [] if case_key else find_workflows(client, settings.clickhouse_database, args.correlation_id,
                                                       _deadlines(settings))
    finally:
        client.close()
    if case_key is None and elsewhere:
        raise SettingsError(f"case {args.correlation_id} was routed to {', '.join(w.target for w in elsewhere)}, "
                            f"not {args.province}: only a province it was routed to replies")
    if case_key is None:
        raise SettingsError(f"no case {args.correlation_id} in the store (unknown correlation id)")
    replies = ProvinceReplies(with_running_broker(settings), args.province)
    reply = replies.send(args.kind, args.correlation_id, case_key, outcome=args.outcome, reason=args.reason,
                         redirect_to=args.redirect_to, note=args.note)
    replies.close()
    topic = replies.topic
    if args.json:
        print(json.dumps({**reply, "ts": reply["ts"].isoformat(timespec="milliseconds"), "topic": topic},
                         ensure_ascii=False))
    else:
        print(f"{args.kind} {reply['reply_id']} of case {args.correlation_id} sent by {args.province} to {topic}")
    return 0


def _check_province(settings: Settings, province: str) -> None:
    if province not in settings.provinces:
        raise SettingsError(f"--party {province!r} is not a party of the exchange "
                            f"({', '.join(settings.provinces)})")


def _check_reply(settings: Settings, args: argparse.Namespace) -> None:
    """What each kind of reply must and must not say, before the store or the broker is asked."""
    if args.kind == ANSWER and args.outcome not in REPLY_OUTCOMES:
        raise SettingsError(f"an answer says its outcome: --outcome {' | '.join(REPLY_OUTCOMES)}"
                            + (f", not {args.outcome!r}" if args.outcome else ""))
    if args.kind != ANSWER and args.outcome is not None:
        raise SettingsError(f"--outcome is an answer's, not a {args.kind}'s")
    if args.kind == DECLINE and not (args.reason or "").strip():
        raise SettingsError("a decline says why the case is not the province's: --reason TEXT")
    if args.kind != DECLINE and (args.reason is not None or args.redirect_to is not None):
        raise SettingsError(f"--reason and --redirect-to are a decline's, not a {args.kind}'s")
    if args.redirect_to is not None and (args.redirect_to == args.province
                                         or args.redirect_to not in settings.provinces):
        raise SettingsError(f"--redirect-to {args.redirect_to!r}: another party of the exchange "
                            f"({', '.join(p for p in settings.provinces if p != args.province)})")


def _deadlines(settings: Settings) -> Any:
    from schemas.deadlines import Deadlines

    return Deadlines(settings.case_receipt_seconds, settings.case_answer_seconds)


def _line(w: Any) -> str:
    flags = " OVERDUE" if w.overdue else ""
    return (f"{w.correlation_id}  {w.origin}→{w.target}  {w.region or '-'}  {w.case_key}  {w.state}{flags}  "
            f"routed {_text(w.routed_at)}")


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)
