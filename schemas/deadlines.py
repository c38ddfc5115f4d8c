"""How long a province has to answer a case routed to it, said once: the case workflows
raise alerts by it (``streams.cases``), the store and the report judge timeliness by it
(``sinks.cases``, ``sinks.report``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .settings import Settings


@dataclass(frozen=True)
class Deadlines:
    """Seconds a target has for its receipt and its answer (from the routing), by default and
    per routing reason (``involved_plate`` …): the shortest of the case's reasons applies."""

    receipt_seconds: float = 86_400.0
    answer_seconds: float = 30 * 86_400.0
    by_reason: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Deadlines":
        """``ROADX_CASE_RECEIPT_SECONDS`` and ``ROADX_CASE_ANSWER_SECONDS``."""
        return cls(settings.case_receipt_seconds, settings.case_answer_seconds)

    def for_reasons(self, reasons: tuple[str, ...]) -> tuple[float, float]:
        own = [self.by_reason[r] for r in reasons if r in self.by_reason]
        if not own:
            return self.receipt_seconds, self.answer_seconds
        return min(r for r, _a in own), min(a for _r, a in own)
