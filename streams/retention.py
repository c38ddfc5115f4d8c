"""Remembering accepted event ids with their entity, for the deduplication retention.

An accepted event id is kept in its entity's state (``entity:<key>``, under ``seen``) as
``{event_id: accepted_ms}``: the one state record an event writes holds both the entity's
last version and the ids that made it, so deduplication costs no record of its own. Each
time the entity's state is written, the ids accepted before the retention are dropped
(``remember``); an entity that receives no more events keeps the few ids of its last
writes, so an id is forgotten no sooner than the retention, at its entity's next write. A
duplicate is thus an event whose id its own entity remembers.

After an id is forgotten, a resend of the same event is still not applied twice: its
content equals the entity's last version (dropped as unchanged) or its ``source.seq`` is
older than the entity's (flagged stale).
"""

from __future__ import annotations

from typing import Any, Mapping

SEEN = "seen"  # the field of an entity's state holding its remembered event ids


def remembered(state: Mapping[str, Any] | None, event_id: str) -> bool:
    """Whether an entity whose state is ``state`` has accepted ``event_id`` (and not yet forgotten it)."""
    return bool(state) and event_id in (state.get(SEEN) or ())


def remember(state: Mapping[str, Any] | None, event_id: str, accepted_ms: int, retention_ms: int) -> tuple[dict, int]:
    """(the ids to keep in the entity's state once ``event_id`` is accepted at ``accepted_ms``,
    how many ids were forgotten: those accepted more than ``retention_ms`` before it)."""
    held = (state or {}).get(SEEN) or {}
    cutoff = accepted_ms - retention_ms
    kept = {i: ms for i, ms in held.items() if isinstance(ms, int) and ms >= cutoff}
    forgotten = len(held) - len(kept)
    kept[event_id] = accepted_ms
    return kept, forgotten
