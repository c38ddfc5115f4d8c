"""The evidence log re-checked from a store: every signature and the hash chain (``schemas.evidence``).

``check_evidence`` is what ``roadx evidence verify`` and the demo both run: the entries of a
month (or all), the entry before them that the chain continues from, and every problem found.
"""

from __future__ import annotations

from typing import Any

from schemas import evidence, sm2
from schemas.errors import KeyStoreError
from schemas.settings import Settings


def check_evidence(settings: Settings, client: Any, month: str = "") -> tuple[list[dict[str, Any]], dict[str, Any] | None,
                                                                               list[evidence.Problem]]:
    """(entries checked, the entry before them or None, problems) of ``month`` ("" for the whole log)."""
    from sinks.submission_store import evidence_slice

    hub = settings.hub_keys()
    entries, before = evidence_slice(client, settings.clickhouse_database, month)
    first_index = int(before["index"]) + 1 if before else 0
    first_prev = str(before["hash"]) if before else evidence.GENESIS
    return entries, before, evidence.verify(entries, hub.public_key, hub_public(hub), first_index, first_prev)


def hub_public(hub: Any) -> sm2.PublicKey:
    """The hub's public key: ``hub.pem`` beside its key, else from the hub's own key."""
    if hub.hub_public_file.exists():
        return sm2.load_public(hub.hub_public_file.read_bytes(), str(hub.hub_public_file))
    if hub.hub_private_file.exists():
        return sm2.load_public(hub.hub_public_pem(), "the hub's public key")
    raise KeyStoreError(f"no hub key in {hub.directory}: the evidence log's receipts cannot be checked here")
