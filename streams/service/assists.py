"""Assist requests (协查): a party asks the province that registered an entity to check it.

``POST /v1/assists`` with ``{"kind", "id", "color"?, "question", "case_no"?, "ask_province"?}``:

- When the national register holds the entity and the party did not ask for the province
  (``ask_province``), the register answers at once (200, ``status: answered``, the entity as
  ``GET /v1/<kind>s/{id}`` shows it to that party).
- Otherwise the request goes to the province where the entity is registered — the register's,
  else the one its identifier names — as a ``roadx.AssistRequest`` on ``xprov.<Q>.inbound``
  (header ``roadx.routed.kind: assist``, ``roadx.routed.reason: assist``, the ``assist_id`` as
  correlation id, the responsible region). The case workflows take it in like a routed case:
  Q's receipt and answer (``roadx cases``, or its own system on ``prov.<Q>.replies``) reach the
  asking party's inbound topic, under the same deadlines. The party gets 202 with
  ``status: in_progress`` and the ``assist_id`` at once.

Refusals: a body that is not such an object, an identifier breaking its standard, a question
empty or over 1,000 characters (400); an entity in the party's own register (400
``own_entity``: it has the answer); an entity no register holds and whose identifier names no
province of the exchange (404); the request not written within ``ROUTE_TIMEOUT`` (503).
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
from schemas.registry import make_registry
from schemas.settings import Settings

from ..errors import BadQuestion
from ..routing import identifier_home
from .questions import MAX_IDENTIFIER, Question, question

KINDS = ("operator", "vehicle", "practitioner", "licence")
ROUTE_TIMEOUT = 10.0  # seconds for the request to be written to the province's inbound topic
STAGE = "requested"


@dataclass(frozen=True)
class AssistAsk:
    """A checked ``POST /v1/assists`` body."""

    question: Question
    text: str
    case_no: str | None
    ask_province: bool


def assist_ask(body: Any, uscc_allow: Iterable[str] = ()) -> AssistAsk:
    """Check a request body; ``BadQuestion`` (400) names the rule it breaks."""
    if not isinstance(body, Mapping):
        raise BadQuestion(400, "malformed_body",
                          'the body is {"kind": …, "id": …, "question": …, "case_no"?: …, "ask_province"?: true}')
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
    return AssistAsk(q, text.strip(), case_no.strip() if case_no else None, ask_province)


def home_of(q: Question, entry: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(province, 6-digit region) where the entity asked about is registered: the register's
    entry when there is one, else what its identifier names; None when neither says."""
    if entry is not None:
        province, record = entry["province"], entry["record"] or {}
        region = str({"vehicle": str(record.get("operator_uscc") or "")[2:8],
                      "licence": record.get("issuer_region_code")}.get(q.kind, record.get("region_code")) or "")
        return province, region if len(region) == 6 and region.isdigit() and region[:2] == province \
            else f"{province}0000"
    if q.kind == "licence" or q.token:
        return None
    return identifier_home("plate" if q.kind == "vehicle" else q.kind, q.value)


def assist_request(ask: AssistAsk, party: str, target: str, region: str, entry: Mapping[str, Any] | None,
                   now: dt.datetime) -> dict[str, Any]:
    """The ``roadx.AssistRequest`` routed to ``target``."""
    q = ask.question
    if entry is not None:
        key = entry["entity_key"]
    elif q.kind == "vehicle":
        key = f"vehicle:{q.value}:{q.color}" if q.color is not None else f"vehicle:{q.value}"
    else:
        key = contract.entity_key(q.kind, {"operator": {"uscc": q.value}, "practitioner": {"id_number": q.value}}[q.kind])
    return {"assist_id": str(uuid.uuid4()), "from_party": party, "to_province": target, "entity_type": q.kind,
            "entity_key": key, "identifier": q.value, "question": ask.text, "case_no": ask.case_no,
            "region": region if region[:2] == target else f"{target}0000", "in_register": entry is not None,
            "asked_at": now}


class KafkaAssists:
    """Writes assist requests to the asked province's inbound topic, each delivered before it returns."""

    def __init__(self, settings: Settings) -> None:
        self.topics = settings.topics
        self.codec = AssistCodec(make_registry(settings.schema_registry_url or None))
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
            raise BadQuestion(503, "not_routed", "the assist request was not delivered to the province's inbound "
                                                 f"topic within {ROUTE_TIMEOUT:g}s: {failed[0] if failed else 'timed out'}")

    def close(self) -> None:
        self.producer.flush(ROUTE_TIMEOUT)
