"""The contract's code tables: the values a coded field of an entity record may hold.

Each table is keyed ``<entity>.<field>`` (``CODE_TABLES``) and lists the codes in their
natural order (a case moves through ``CASE_STAGES`` in order). ``LABELS`` turns the Chinese
labels provincial files use (车牌颜色 黄, 案件阶段 立案, 状态 正常 …) into codes; plate colours
are in ``schemas.identifiers.PLATE_COLORS``. A province's reply to a case routed to it
(``roadx.CaseReply``) is one of ``REPLY_KINDS``, an answer's outcome one of ``REPLY_OUTCOMES``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = [
    "ANSWER", "CASE_STAGES", "CODE_TABLES", "DECLINE", "LABELS", "LICENCE_TYPES", "LICENCE_TYPE_NAMES", "PROGRESS",
    "PROVENANCE", "QUALITY_DIMENSIONS", "RECEIPT", "REPLY_KINDS", "REPLY_OUTCOMES", "STATUSES", "VEHICLE_CLASSES",
]

# The data-quality dimensions the ministry scores (完整性, 规范性, 关联性), the ``dimension`` of a
# finding on national.quality; a finding about where an event came from is ``provenance``.
QUALITY_DIMENSIONS = ("completeness", "conformity", "relational")
PROVENANCE = "provenance"

# 经营许可证 JT/T 1291, 从业资格证 JT/T 1290, 道路运输证 JT/T 1292
LICENCE_TYPES = ("operating_permit", "qualification", "transport_cert")
LICENCE_TYPE_NAMES: Mapping[str, str] = MappingProxyType({
    "operating_permit": "道路运输经营许可证 operating permit (JT/T 1291)",
    "qualification": "从业资格证 qualification certificate (JT/T 1290)",
    "transport_cert": "道路运输证 transport certificate (JT/T 1292)",
})
CASE_STAGES = ("filed", "investigating", "decided", "executed", "closed")  # 立案 调查取证 决定 执行 结案
# A target province's replies to a routed case (``roadx.CaseReply.kind``): it has the case (回执),
# is working on it, says what it did, or says the case is not its own (with a reason).
RECEIPT, PROGRESS, ANSWER, DECLINE = "receipt", "progress", "answer", "decline"
REPLY_KINDS = (RECEIPT, PROGRESS, ANSWER, DECLINE)
REPLY_OUTCOMES = ("action_taken", "decision", "penalty", "closed")  # what an answer says was done
VEHICLE_CLASSES = ("charter_bus", "route_bus", "dangerous_goods", "truck", "taxi")
STATUSES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "operator": ("active", "suspended", "revoked", "closed"),
    "vehicle": ("active", "suspended", "scrapped"),
    "practitioner": ("active", "suspended", "revoked"),
    "licence": ("valid", "suspended", "revoked", "expired"),
})

CODE_TABLES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    **{f"{entity}.status": codes for entity, codes in STATUSES.items()},
    "licence.licence_type": LICENCE_TYPES,
    "vehicle.vehicle_class": VEHICLE_CLASSES,
    "case.stage": CASE_STAGES,
})

LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "operator.status": {"营业": "active", "正常": "active", "停业": "suspended", "暂停": "suspended",
                        "吊销": "revoked", "注销": "closed", "歇业": "closed"},
    "vehicle.status": {"营运": "active", "正常": "active", "停运": "suspended", "暂停": "suspended", "报废": "scrapped",
                       "注销": "scrapped"},
    "practitioner.status": {"正常": "active", "有效": "active", "暂停": "suspended", "吊销": "revoked",
                            "注销": "revoked"},
    "licence.status": {"有效": "valid", "正常": "valid", "暂扣": "suspended", "暂停": "suspended",
                       "吊销": "revoked", "过期": "expired", "失效": "expired"},
    "licence.licence_type": {"经营许可证": "operating_permit", "道路运输经营许可证": "operating_permit",
                             "从业资格证": "qualification", "道路运输证": "transport_cert"},
    "vehicle.vehicle_class": {"旅游客车": "charter_bus", "包车客车": "charter_bus", "班线客车": "route_bus",
                              "危险货物运输车": "dangerous_goods", "危险品运输车": "dangerous_goods",
                              "货车": "truck", "普通货车": "truck", "出租汽车": "taxi", "出租车": "taxi"},
    "case.stage": {"立案": "filed", "调查取证": "investigating", "决定": "decided", "执行": "executed",
                   "结案": "closed"},
})
