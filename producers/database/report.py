"""What one polling round of the database adapter did: rows read, events spooled and acknowledged,
rows rejected, submissions closed and the receipts taken, resent or still missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RowRejected
from .source import Unorderable


@dataclass
class CycleReport:
    read: int = 0
    spooled: int = 0
    ignored: int = 0
    acked: int = 0
    pending: int = 0
    rejected: list[RowRejected] = field(default_factory=list)
    normalised: int = 0  # identifiers written in canonical form
    unorderable: Unorderable | None = None  # set by a read: rows with a NULL cursor or key
    broker_error: str | None = None
    full: bool = False  # reading stopped at the spool limit
    submissions: int = 0  # closed with a signed manifest
    receipts: int = 0  # verified receipts taken into the spool
    refused_receipts: list[str] = field(default_factory=list)  # why each refused receipt was refused
    resent: int = 0  # submissions sent again for want of a receipt
    missing: int = 0  # submissions still without a receipt after their resend
    waiting_receipts: int = 0  # submissions with no verified receipt yet (after this cycle)

    def add(self, other: "CycleReport") -> None:
        self.read += other.read
        self.spooled += other.spooled
        self.ignored += other.ignored
        self.acked += other.acked
        self.pending = other.pending
        self.rejected += other.rejected
        self.normalised += other.normalised
        if other.unorderable is not None:
            self.unorderable = other.unorderable
        self.broker_error = other.broker_error or self.broker_error
        self.full = self.full or other.full
        self.submissions += other.submissions
        self.receipts += other.receipts
        self.refused_receipts += other.refused_receipts
        self.resent += other.resent
        self.missing += other.missing
        self.waiting_receipts = other.waiting_receipts
