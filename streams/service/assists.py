"""Assist requests (协查): a party asks the party that registered an entity to check it.

``POST /v1/assists`` with ``{"kind", "id", "color"?, "question", "case_no"?, "ask_province"?,
"to_party"?}``. ``kind`` is the register asked about (``KINDS``: a road register's entity, or a
water register's — ``ship`` by its ship identification number, ``shipping_enterprise`` and
``port_enterprise`` by USCC, ``waterway_project`` by project code).

- When the national register holds the entity and the party neither asked for the registering
  party (``ask_province``) nor named one (``to_party``), the register answers at once (200,
  ``status: answered``, the entity as ``GET /v1/<kind>s/{id}`` shows it to that party).
- Otherwise the request goes to the party asked: ``to_party`` when given (any party of the
  exchange: a province, the Corps ``66``, ``CJ``, ``ZJ``), else the one that registered the entity
  — the register's publisher, else the province its identifier names (a USCC whose region is the
  Corps' ``66xxxx`` names the Corps; a ship or a project no register holds names no one) — as a
  ``roadx.AssistRequest`` on ``xprov.<Q>.inbound`` (header ``roadx.routed.kind: assist``,
  ``roadx.routed.reason: assist``, the ``assist_id`` as correlation id, the responsible region).
  The region is the entity's registration region (a vehicle's or a ship's operator's USCC region,
  a licence's issuer's, else the record's ``region_code``) when it lies in the party's
  jurisdiction (``Party.covers``), else the party as a whole (``Party.whole``: ``440000``,
  ``CJ0000``). The case workflows take it in like a routed case: Q's receipt and answer (``roadx
  cases``, or its own system on ``prov.<Q>.replies``) reach the asking party's inbound topic,
  under the same deadlines. The party gets 202 with ``status: in_progress`` and the ``assist_id``.

Refusals, each naming the field: a body that is not such an object, a kind no assist can ask
about (``unknown_kind``), an identifier breaking its standard, a question empty or over 1,000
characters (400); ``to_party`` that is not a party of the exchange (400 ``unknown_party``) or the
asking party itself (400 ``asks_itself``); an entity in the party's own register (400
``own_entity``: it has the answer); an entity no register holds and whose identifier names no
party of the exchange (404); the request not written within ``ROUTE_TIMEOUT`` (503).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from confluent_kafka import KafkaException, Producer

from schemas import contract
from schemas import topics as th
from schemas.codec import AssistCodec
from schemas.errors import EncodeError
from schemas.kafka import produce
from schemas.parties import Party
from schemas.registry import make_registry
from schemas.settings import Settings

from ..errors import BadQuestion
from ..routing import identifier_home
from .questions import MAX_IDENTIFIER, Question, question

KINDS = contract.ASSIST_TYPES
# The field of a record naming the region it is registered in, where it is not ``region_code``
# (a USCC's: its characters 3-8).
REGION_FIELDS = {"vehicle": "operator_uscc", "ship": "operator_uscc", "licence": "issuer_region_code"}
# Kinds whose identifier names the party to ask when no register holds the entity: as what.
IDENTIFIER_HOMES = {"vehicle": "plate", "operator": "operator", "practitioner": "practitioner",
                    "shipping_enterprise": "operator", "port_enterprise": "operator"}
ROUTE_TIMEOUT = 10.0  # seconds for the request to be written to the party's inbound topic
STAGE = "requested"


@dataclass(frozen=True)
class AssistAsk:
    """A checked ``POST /v1/assists`` body."""

    question: Question
    text: str
    case_no: str | None
    ask_province: bool
    to_party: str | None = None


def assist_ask(body: Any, uscc_allow: Iterable[str] = (), parties: Iterable[str] | None = None,
               asker: str | None = None) -> AssistAsk:
    """Check a request body; ``BadQuestion`` (400) names the field and the rule it breaks.
    ``to_party`` is checked against ``parties`` (the exchange's codes) and ``asker``, when given."""
    if not isinstance(body, Mapping):
        raise BadQuestion(400, "malformed_body", 'the body is {"kind": …, "id": …, "question": …, "case_no"?: …, '
                                                 '"ask_province"?: true, "to_party"?: …}')
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadQuestion(400, "unknown_kind", f"kind {str(kind)[:MAX_IDENTIFIER]!r}: one of {', '.join(KINDS)}")
    q = question(kind, body.get("id"), body.get("color"), uscc_allow)
    text = body.get("question")
    if not isinstance(text, str) or not text.strip() or len(text) > contract.ASSIST_QUESTION_MAX:
        raise BadQuestion(400, "bad_question_text",
                          f"question: 1 to {contract.ASSIST_QUESTION_MAX:,} characters saying what to check")
    case_no = body.get("case_no")
    if case_no is not None and (not isinstance(case_no, str) or not case_no.strip() or len(case_no) > MAX_IDENTIFIER):
        raise BadQuestion(400, "bad_case_no", f"case_no: the asking party's case number, 1 to {MAX_IDENTIFIER} characters")
    ask_province = body.get("ask_province", False)
    if not isinstance(ask_province, bool):
        raise BadQuestion(400, "bad_ask_province", "ask_province: true or false")
    to_party = body.get("to_party")
    if to_party is not None:
        known = tuple(parties) if parties is not None else None
        if not isinstance(to_party, str) or (known is not None and to_party not in known):
            raise BadQuestion(400, "unknown_party", f"to_party {str(to_party)[:MAX_IDENTIFIER]!r} is not a party of "
                                                    f"this exchange" + (f": one of {', '.join(known)}" if known else ""))
        if to_party == asker:
            raise BadQuestion(400, "asks_itself", f"to_party {to_party}: a party does not ask itself")
    return AssistAsk(q, text.strip(), case_no.strip() if case_no else None, ask_province, to_party)


def home_of(q: Question, entry: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(party, 6-digit region) where the entity asked about is registered: the register's entry
    when there is one (its publisher, and the record's registration region, "" when it names
    none), else what its identifier names; None when neither says."""
    if entry is not None:
        record = entry["record"] or {}
        field = REGION_FIELDS.get(q.kind, "region_code")
        region = str(record.get(field) or "")
        return entry["province"], region[2:8] if field.endswith("uscc") else region
    if q.token or q.kind not in IDENTIFIER_HOMES:
        return None
    return identifier_home(IDENTIFIER_HOMES[q.kind], q.value)


def assist_request(ask: AssistAsk, asker: str, target: Party, region: str, entry: Mapping[str, Any] | None,
                   now: dt.datetime) -> dict[str, Any]:
    """The ``roadx.AssistRequest`` routed to ``target``: ``region`` when it lies in the party's
    jurisdiction, else the party as a whole."""
    q = ask.question
    if entry is not None:
        key = entry["entity_key"]
    elif len(contract.KEY_FIELDS[q.kind]) == 1:
        key = contract.entity_key(q.kind, {contract.KEY_FIELDS[q.kind][0]: q.value})
    else:  # a plate without its colour, a licence number without its type: as far as it was asked
        key = f"{q.kind}:{q.value}" + (f":{q.color}" if q.color is not None else "")
    covered = len(region) == 6 and target.covers(region)
    return {"assist_id": str(uuid.uuid4()), "from_party": asker, "to_province": target.code, "entity_type": q.kind,
            "entity_key": key, "identifier": q.value, "question": ask.text, "case_no": ask.case_no,
            "region": region if covered else target.whole(), "in_register": entry is not None, "asked_at": now}


class KafkaAssists:
    """Writes assist requests to the asked party's inbound topic, each delivered before it returns."""

    def __init__(self, settings: Settings) -> None:
        self.topics = settings.topics
        self.codec = AssistCodec(make_registry(settings.schema_registry_url or None),
                                 parties=settings.taking_part())
        self.producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))

    def route(self, request: Mapping[str, Any]) -> None:
        """Write ``request``; ``BadQuestion`` 503 when it is not delivered within ``ROUTE_TIMEOUT``."""
        failed: list[str] = []
        try:
            produce(self.producer, self.topics.province_inbound(request["to_province"]), self.codec.encode(request),
                    request["entity_key"].encode("utf-8"), headers=[
                        (th.ROUTED_FROM, request["from_party"].encode()), (th.ROUTED_TO, request["to_province"].encode()),
                        (th.ROUTED_REASON, th.ASSIST.encode()),
                        (th.ROUTED_CORRELATION_ID, request["assist_id"].encode()), (th.ROUTED_STAGE, STAGE.encode()),
                        (th.ROUTED_REGION, request["region"].encode()), (th.ROUTED_KIND, th.ASSIST.encode())],
                    on_delivery=lambda err, _msg: failed.append(str(err)) if err is not None else None)
            left = self.producer.flush(ROUTE_TIMEOUT)
        except EncodeError as exc:
            raise BadQuestion(400, "bad_assist", str(exc)) from exc
        except KafkaException as exc:
            raise BadQuestion(503, "not_routed", f"the assist request could not be written: {exc}") from exc
        if left or failed:
            raise BadQuestion(503, "not_routed", "the assist request was not delivered to the party's inbound "
                                                 f"topic within {ROUTE_TIMEOUT:g}s: {failed[0] if failed else 'timed out'}")

    def close(self) -> None:
        self.producer.flush(ROUTE_TIMEOUT)
