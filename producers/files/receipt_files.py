"""A file's receipt beside it (``<file>.receipt.json``), and waiting for the receipts of loaded files.

The receipt file is the hub's receipt document as it came and was verified (its signature
over the canonical form of the other fields, so anyone with the hub's public key can check
it again), written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..receipts import RECEIVED, REFUSED, RESENT, ReceiptOutcome
from ..submissions import MISSING, RECEIPTED

if TYPE_CHECKING:
    from .adapter import FileAdapter, FileResult

RECEIPT_SUFFIX = ".receipt.json"


def receipt_path(input_path: Path) -> Path:
    return input_path.with_name(input_path.name + RECEIPT_SUFFIX)


def write_receipt(input_path: Path, receipt: Mapping[str, Any]) -> Path:
    path = receipt_path(input_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(receipt), ensure_ascii=False, sort_keys=True, indent=1) + "\n", "utf-8")
    tmp.replace(path)
    return path


def apply_outcome(result: "FileResult", outcome: ReceiptOutcome) -> bool:
    """Note ``outcome`` on the file's result; True once the file's wait is over (received or missing)."""
    if outcome.outcome == RECEIVED:
        result.receipt = receipt_path(Path(outcome.place)) if outcome.place else None
        result.receipt_status = outcome.status
        result.receipt_problem = None
        return True
    if outcome.outcome == RESENT:
        result.resent += 1
    elif outcome.outcome == REFUSED:
        result.receipt_problem = f"a receipt was refused: {outcome.reason}"
    elif outcome.outcome == MISSING:
        refused = f"; {result.receipt_problem}" if result.receipt_problem else ""
        result.receipt_problem = f"no receipt: {outcome.reason}{refused}"
        return True
    return False


def settle(adapter: "FileAdapter", results: list["FileResult"], poll_s: float = 0.5) -> list["FileResult"]:
    """Check ``adapter``'s receipts until every loaded file of ``results`` has one or is reported without."""
    waiting = {r.submission: r for r in results if r.status == "loaded" and r.submission and r.receipt is None}
    if adapter.options.receipt_seconds <= 0:
        return results
    while waiting:
        for outcome in adapter.check_receipts(poll_s):
            result = waiting.get(outcome.submission)
            if result is not None and apply_outcome(result, outcome):
                del waiting[outcome.submission]
        for submission in list(waiting):  # settled before this wait began (an earlier run)
            item = adapter.book.get(submission)
            if item is None or item.state in (RECEIPTED, MISSING):
                result = waiting.pop(submission)
                if item is not None and item.state == RECEIPTED:
                    result.receipt_status = item.status
                    result.receipt = receipt_path(Path(item.place)) if item.place else None
                elif item is not None:
                    result.receipt_problem = f"no receipt: {item.problem}"
    return results
