"""Verifying a licence issued in any province (互信互认): the decision, said once.

``verdict`` decides valid / suspended / revoked / expired / unknown from the register's
status code (roadx.Licence: valid | suspended | revoked | expired) and the validity dates,
at the day of the question. A number that is not shaped like a licence number (quotes,
spaces, operators, masks) is answered without a lookup, with the reason (rule
``ill_formed_licence_no``). The store (``sinks.verify``) and the information service
(``streams.service``) both look a number up their own way and decide here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Sequence

from . import codes
from .codes import LICENCE_TYPE_NAMES, LICENCE_TYPES
from .contract import entity_key
from .identifiers import PROVINCES
from .pii import PiiMasker

STATUSES = (*codes.STATUSES["licence"], "unknown")  # a verdict: the register's code, or not found
STATUS_LABELS = {
    "valid": "有效 valid", "suspended": "暂扣 suspended", "revoked": "吊销 revoked",
    "expired": "过期 expired", "unknown": "查无此证 unknown",
}
# Letters, digits, CJK and the brackets/dashes licence numbers use; nothing else.
_LICENCE_NO = re.compile(r"^[0-9A-Za-z\u3400-\u9fff〔〕（）()\-]{4,64}$")


@dataclass(frozen=True)
class LicenceRecord:
    """A row of ``current_licences`` (personal identifiers already masked by the store)."""

    licence_no: str
    licence_type: str
    holder_key: str
    issuer_region_code: str
    valid_from: dt.date | None
    valid_until: dt.date | None
    status: str


@dataclass(frozen=True)
class Verdict:
    licence_no: str
    status: str
    licence_type: str | None = None
    issuing_province: str | None = None
    issuing_province_name: str | None = None
    issuer_region_code: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    holder: str | None = None
    register_status: str | None = None
    checked_on: str | None = None
    reason: str | None = None  # why an answer is unknown without a lookup (an ill-formed number)
    # the issuing authority's seal (schemas.seals): valid | invalid | unknown_key | unsealed | unchecked
    seal: str | None = None
    seal_key_id: str | None = None
    sealed_at: str | None = None
    seal_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # every field is a str or None: a shallow copy is the whole answer (asdict would deep-copy
        # each one, a tenth of a millisecond per verification the service answers)
        return dict(self.__dict__)


def well_formed(licence_no: str) -> bool:
    """True when the text can be a licence number (so it is worth a lookup)."""
    return bool(_LICENCE_NO.match(licence_no))


def ill_formed_reason(licence_no: str) -> str:
    """Why ``licence_no`` cannot be a licence number (rule ``ill_formed_licence_no``)."""
    if not 4 <= len(licence_no) <= 64:
        return f"ill_formed_licence_no: {len(licence_no)} characters, a licence number has 4 to 64"
    odd = sorted({c for c in licence_no if not _LICENCE_NO.match(c * 4)})
    shown = ", ".join(repr(c) for c in odd[:5])
    return f"ill_formed_licence_no: holds {shown}; a licence number has only letters, digits, CJK, brackets and '-'"


def verdict(licence_no: str, record: LicenceRecord | None, today: dt.date) -> Verdict:
    """The answer for one number: revoked > suspended > expired (by code or date) > valid."""
    if record is None:
        return Verdict(licence_no, "unknown", checked_on=today.isoformat())
    code = record.status
    if code in ("revoked", "suspended"):
        status = code
    elif code == "expired" or (record.valid_until is not None and record.valid_until < today):
        status = "expired"
    elif code == "valid":
        status = "valid"
    else:
        status = "unknown"
    province = record.issuer_region_code[:2]
    return Verdict(
        licence_no=licence_no, status=status, licence_type=record.licence_type,
        issuing_province=province, issuing_province_name=PROVINCES.get(province, ("?",))[0],
        issuer_region_code=record.issuer_region_code,
        valid_from=record.valid_from.isoformat() if record.valid_from else None,
        valid_until=record.valid_until.isoformat() if record.valid_until else None,
        holder=record.holder_key, register_status=code, checked_on=today.isoformat(),
    )


def candidate_keys(licence_no: str, pii: PiiMasker | None) -> list[str]:
    """Entity keys the number may have in the store, one per licence type (tokenised when personal)."""
    keys = [entity_key("licence", {"licence_type": ltype, "licence_no": licence_no}) for ltype in LICENCE_TYPES]
    if pii is not None:
        keys += [pii.entity_key(key) for key in keys]
    return sorted(set(keys))


def choose(records: Sequence[LicenceRecord], licence_no: str) -> LicenceRecord | None:
    """The record answering the number: an exact number match first, then the first found."""
    exact = [r for r in records if r.licence_no == licence_no]
    return (exact or list(records) or [None])[0]


def format_verdict(v: Verdict) -> str:
    """Bilingual text for an inspector."""
    lines = [f"证照 licence {v.licence_no}: {STATUS_LABELS[v.status]}"]
    if v.reason is not None:
        lines.append(f"  not looked up 未查询: {v.reason}")
        return "\n".join(lines)
    if v.register_status is None:
        lines.append("  no such licence in the national store 全国库中无此证照")
        return "\n".join(lines)
    rows = [
        ("类型 type", LICENCE_TYPE_NAMES.get(v.licence_type or "", v.licence_type or "")),
        ("发证省份 issuing province", f"{v.issuing_province} {v.issuing_province_name} (区划 {v.issuer_region_code})"),
        ("有效期 validity", f"{v.valid_from or '?'} → {v.valid_until or '?'}"),
        ("持证人 holder (masked)", v.holder or ""),
        ("登记状态 register status", v.register_status or ""),
        ("核验日期 checked on", v.checked_on or ""),
    ]
    if v.seal is not None:
        rows.append(("电子印章 seal", " ".join(p for p in (v.seal, v.seal_key_id, v.sealed_at) if p)))
        if v.seal_reason:
            rows.append(("印章说明 seal note", v.seal_reason))
    lines += [f"  {label:<20} {value}" for label, value in rows]
    return "\n".join(lines)
