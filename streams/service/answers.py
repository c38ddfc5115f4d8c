"""Answers from the service's register: an entity as the caller may see it, a licence's
verification, a batch of lookups.

A caller sees personal data (ID numbers, phone numbers, entity keys holding them) in clear
only for the entities its own party registered; for every other party's entity they come
masked and tokenised exactly as the analytical store shows them (``schemas.pii``); a masked
licence's seal keeps its key id and time but not its signature (``schemas.seals.masked_seal``).

A verification answers the issuing authority's seal beside the status (``seal``: valid | invalid
| unknown_key | unsealed, with ``seal_key_id``, ``sealed_at`` and ``seal_reason``); given a
scanned QR payload, the scanned seal is checked against the register's content of its licence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterator, Mapping

from schemas import seals
from schemas.contract import entity_key
from schemas.identifiers import china_today
from schemas.licences import LicenceRecord, choose, verdict
from schemas.pii import PiiMasker

from ..errors import BadQuestion
from ..state import StateStore
from .questions import REGISTER, WATER_LOOKUPS, Question
from .register import (AWAY, ENTERPRISE_SHIPS, HOLDER, ID_TOKEN, LICENCE_NO, OPERATOR_VEHICLES, SHIP_IMO, SHIP_MMSI,
                       entry_key, index_prefix, indexed_key)
from .seals import SealChecker


class Answers:
    """Looks questions up in ``store`` and shows the entries to one party at a time."""

    def __init__(self, store: StateStore, masker: PiiMasker, seal_checker: SealChecker | None = None) -> None:
        self.store = store
        self.masker = masker
        self.seals = seal_checker or SealChecker(None)

    def entity(self, q: Question, party: str) -> dict[str, Any]:
        """The current record(s) answering ``q``; ``BadQuestion`` 404 when there is none."""
        if q.kind == "verification":
            return self.verification(q.value, party)
        found = self._entries(q)
        if not found:
            asked = (f"{WATER_LOOKUPS[q.kind][0]} with {WATER_LOOKUPS[q.kind][1]}" if q.kind in WATER_LOOKUPS
                     else f"{q.register} with key" if q.kind == REGISTER else q.kind)
            raise BadQuestion(404, "not_found", f"no {asked} {self.shown(q)} in the national register")
        if ((q.kind == "vehicle" and q.color is None) or q.kind in ("ship_imo", "ship_mmsi")) and len(found) > 1:
            return {"matches": [self._present(e, party) for e in found]}
        answer = self._present(found[0], party)
        if q.kind == "operator":
            answer["vehicles"] = self._linked(OPERATOR_VEHICLES, q.value)
            answer["licences"] = self._linked(HOLDER, found[0]["entity_key"])
        elif q.kind == "practitioner":
            answer["licences"] = self._linked(HOLDER, found[0]["entity_key"])
            answer["working_away"] = self._filings(found[0]["entity_key"])
        elif q.kind == "shipping_enterprise":
            answer["ships"] = self._linked(ENTERPRISE_SHIPS, q.value)
        return answer

    def registered(self, q: Question) -> dict[str, Any] | None:
        """The register's entry answering ``q`` (the first, for a plate without colour), or None."""
        found = self._entries(q)
        return found[0] if found else None

    def verification(self, licence_no: str, party: str, today: dt.date | None = None,
                     scanned: seals.Seal | None = None) -> dict[str, Any]:
        """valid / suspended / revoked / expired / unknown, decided now (``schemas.licences``), with
        the verdict on the licence's seal, or on the ``scanned`` seal over its registered content."""
        entries = [e["record"] for e in self._licences(licence_no)]
        records = [_licence_record(e) for e in entries]
        chosen = choose(records, licence_no)
        decided = verdict(licence_no, chosen, today or china_today())
        if chosen is not None:
            checks = [self.seals.check(entries[records.index(chosen)], scanned)]
            if scanned is not None and checks[0].seal != seals.VALID:  # a number several licence types share
                checks += [self.seals.check(e, scanned) for e, r in zip(entries, records) if r is not chosen]
            check = next((c for c in checks if c.seal == seals.VALID), checks[0])
            decided = dataclasses.replace(decided, seal=check.seal, seal_key_id=check.key_id,
                                          sealed_at=check.sealed_at, seal_reason=check.reason)
        answer = decided.as_dict()
        if answer["holder"] and not self._own(answer["holder"], party):
            answer["holder"] = self.masker.entity_key(answer["holder"])
        return answer

    def scanned(self, qr: seals.QrSeal, party: str, today: dt.date | None = None) -> dict[str, Any]:
        """The verification of the licence a scanned QR payload names, its seal checked against the
        register's content; ``BadQuestion`` 404 when no such licence is registered."""
        if not self._licences(qr.licence_no):
            raise BadQuestion(404, "not_found", f"no licence {self.masker.text(qr.licence_no)} in the national register")
        return self.verification(qr.licence_no, party, today, qr.seal)

    def lookups(self, asked: list[Question | BadQuestion], party: str) -> list[dict[str, Any]]:
        """One answer per question, in order: ``status`` 200 with the answer, or the refusal."""
        out: list[dict[str, Any]] = []
        for q in asked:
            if isinstance(q, BadQuestion):
                out.append({"status": q.status, "rule": q.rule, "error": q.message})
                continue
            try:
                out.append({"status": 200, "kind": q.kind, "answer": self.entity(q, party)})
            except BadQuestion as exc:
                out.append({"status": exc.status, "kind": q.kind, "rule": exc.rule, "error": exc.message})
        return out

    def _entries(self, q: Question) -> list[dict[str, Any]]:
        if q.kind == REGISTER:
            held = self.store.get(entry_key(f"{q.register}:{q.value}"))
            return [held] if held is not None and held["record"] is not None else []
        if q.kind == "licence":
            return self._licences(q.value)
        if q.kind == "practitioner" and q.token:
            keys = [indexed_key(k) for k, _v in self._scan(index_prefix(ID_TOKEN, q.value))]
            return [e for e in (self.store.get(entry_key(k)) for k in keys) if e is not None and e["record"] is not None]
        if q.kind == "vehicle" and q.color is None:
            return [v for _k, v in self._scan(entry_key(f"vehicle:{q.value}:")) if v["record"] is not None]
        if q.kind in ("ship_imo", "ship_mmsi"):
            keys = self._linked(SHIP_IMO if q.kind == "ship_imo" else SHIP_MMSI, q.value)
            return [e for e in (self.store.get(entry_key(k)) for k in keys) if e is not None and e["record"] is not None]
        if q.kind in WATER_LOOKUPS:  # by the register's own key: one register per kind
            register, field = WATER_LOOKUPS[q.kind]
            held = self.store.get(entry_key(entity_key(register, {field: q.value})))
            return [held] if held is not None and held["record"] is not None else []
        fields = {"operator": {"uscc": q.value}, "practitioner": {"id_number": q.value},
                  "vehicle": {"plate": q.value, "plate_color": q.color}}[q.kind]
        held = self.store.get(entry_key(entity_key(q.kind, fields)))
        return [held] if held is not None and held["record"] is not None else []

    def _licences(self, licence_no: str) -> list[dict[str, Any]]:
        found = []
        for key, _v in self._scan(index_prefix(LICENCE_NO, licence_no)):
            held = self.store.get(entry_key(indexed_key(key)))
            if held is not None and held["record"] is not None:
                found.append(held)
        return found

    def _filings(self, practitioner_key: str) -> list[dict[str, Any]]:
        """Other provinces' filings of the practitioner working there (异地从业人员备案)."""
        out = []
        for province in self._linked(AWAY, practitioner_key):
            held = self.store.get(entry_key(f"{practitioner_key}@{province}"))
            if held is not None and held["record"] is not None:
                out.append({"province": province, "employer_uscc": held["record"].get("employer_uscc"),
                            "last_change": dt.datetime.fromtimestamp(held["ts_ms"] / 1000, dt.timezone.utc).isoformat()})
        return out

    def _linked(self, index: str, value: str) -> list[str]:
        return [indexed_key(key) for key, _v in self._scan(index_prefix(index, value))]

    def _scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, value in self.store.items_from(prefix):
            if not key.startswith(prefix):
                return
            yield key, value

    def _present(self, entry: Mapping[str, Any], party: str) -> dict[str, Any]:
        own = entry["province"] == party
        return {
            "entity_type": entry["entity_type"],
            "entity_key": entry["entity_key"] if own else self.masker.entity_key(entry["entity_key"]),
            "province": entry["province"],
            "version": entry["version"],
            "seq": entry["seq"],
            "last_change": dt.datetime.fromtimestamp(entry["ts_ms"] / 1000, dt.timezone.utc).isoformat(),
            "masked": not own,
            "record": dict(entry["record"]) if own else self._masked(entry),
        }

    def _masked(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        masked = self.masker.record(entry["record"]) or {}
        return seals.masked_seal(entry["record"], masked) if entry["entity_type"] == "licence" else masked

    def _own(self, holder: str, party: str) -> bool:
        held = self.store.get(entry_key(holder))
        return held is not None and held["province"] == party

    def shown(self, q: Question) -> str:
        """The identifier as an error may repeat it: personal numbers masked."""
        return self.masker.text(q.value) if q.kind == "practitioner" else q.value


def _licence_record(record: Mapping[str, Any]) -> LicenceRecord:
    return LicenceRecord(
        licence_no=record["licence_no"], licence_type=record["licence_type"], holder_key=record["holder_key"],
        issuer_region_code=record["issuer_region_code"], valid_from=_date(record.get("valid_from")),
        valid_until=_date(record.get("valid_until")), status=record["status"],
    )


def _date(value: Any) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(str(value))
