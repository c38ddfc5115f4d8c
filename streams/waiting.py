"""Cases waiting for a register: a case naming an entity no register holds and whose identifier
names no province (a ship) is routed nowhere when it arrives (``streams.routing``). The stage
keeps a waiting entry for it in its partition's state, ``wait:<registry key>|<case key>``: the
field naming the entity and, in order, the first version (its bytes as sent) of each stage the
case reached while waiting, a delete included; the case's own state lists the registry keys it
waits on (``streams.pipeline.WAITING``). A version of the case that finds the entity registered
is routed the usual way and clears the entry.

Once the ownership table holds such an entity (``streams.ownership``: read from the registry
topic, whichever worker's register event set it), ``late_routes`` delivers those versions in
order to the party that registered it, as the stage would have had the register come first,
and records the deliveries in the case's routing state, so each (case, stage, target) is still
delivered once. The worker keeps a ``WaitingIndex`` of its partitions' entries: which ones the
registry has just placed, and all of a partition it has just taken (its last owner may have died
routing them). A late route's origin label (``streams.handover.late_label``) names the partition,
target, stage and case, so the partition's next owner can tell it was written.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import routing
from .changes import StateChanges
from .handover import Scope, Send, late_label
from .pipeline import ENTITY, WAITING, StageContext, routed_copy
from .state import StateStore


@dataclass
class LateRoutes:
    """What routing waiting cases produced: the copies to send, the state to write, and
    ``routed`` keyed (source, target) as ``BatchResult.routed``."""

    sends: list[Send] = field(default_factory=list)
    changes: StateChanges = field(default_factory=StateChanges)
    routed: Counter = field(default_factory=Counter)


def late_routes(entries: Iterable[tuple[str, Mapping[str, Any]]], owner: routing.Lookup,
                state: Callable[[str], Any], ctx: StageContext) -> LateRoutes:
    """Route each waiting entry (wait key, entry) whose entity a register now holds; an entry
    still waiting is left as it is. ``owner`` is the ownership table, ``state`` the local state."""
    done = LateRoutes()
    for key, entry in entries:
        registry = entry["registry"]
        kind, _, value = registry.partition(":")
        where = routing.registered_at(kind, value, owner)
        if where is None:
            continue
        target, region = where
        scope: Scope = (entry["source"], int(entry["partition"]))
        case_key = entry["case"]
        case = dict(done.changes.values.get(ENTITY + case_key) or state(ENTITY + case_key) or {})
        routes = {t: list(stages) for t, stages in (case.get("routes") or {}).items()}
        for stage, version in entry["stages"]:
            if target == scope[0] or target not in ctx.provinces or stage in routes.get(target, []):
                continue
            routes.setdefault(target, []).append(stage)
            copy = routed_copy(ctx.topics, scope[0], target, case_key, base64.b64decode(version),
                               [entry["field"]], routing.correlation_id(scope[0], case_key), stage, region)
            done.sends.append(Send(copy, late_label(scope, target, stage, case_key), scope))
            done.routed[(scope[0], target)] += 1
        case["routes"] = routes
        still = [k for k in case.get(WAITING) or [] if k != registry]
        if still:
            case[WAITING] = still
        else:
            case.pop(WAITING, None)
        done.changes.put(scope, key, None)
        done.changes.put(scope, ENTITY + case_key, case)
    return done


def stored_entries(store: StateStore) -> Iterator[tuple[str, Any]]:
    """Every waiting entry in the local store, of any partition it holds."""
    for key, entry in store.items_from(routing.WAIT):
        if not key.startswith(routing.WAIT):
            return
        yield key, entry


class WaitingIndex:
    """The waiting entries of the partitions this worker owns, by the registry key each waits
    on, and those due to be routed: placed since by the ownership table, or in a partition
    just taken."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {}  # registry key -> wait keys
        self._held: dict[str, tuple[Scope, str]] = {}  # wait key -> its partition and registry key
        self._due: set[str] = set()

    def __len__(self) -> int:
        return len(self._held)

    def take(self, scopes: Iterable[Scope], entries: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Hold the entries of the partitions just taken, each due."""
        taken = set(scopes)
        for key, entry in entries:
            scope = (entry["source"], int(entry["partition"]))
            if scope in taken:
                self._add(key, scope, entry["registry"])
                self._due.add(key)

    def drop(self, scope: Scope) -> None:
        for key in [k for k, (s, _registry) in self._held.items() if s == scope]:
            self._remove(key)

    def wrote(self, changes: StateChanges) -> None:
        """Follow the waiting entries a batch (or ``late_routes``) wrote or cleared."""
        for key, entry in changes.values.items():
            if key.startswith(routing.WAIT):
                if entry is None:
                    self._remove(key)
                else:
                    self._add(key, changes.scopes[key], entry["registry"])

    def registered(self, keys: Iterable[str]) -> None:
        """Mark due the entries waiting on any of the ownership table's ``keys`` just applied."""
        if self._keys:
            for key in keys:
                self._due.update(self._keys.get(key, ()))

    def take_due(self) -> list[str]:
        due, self._due = sorted(self._due), set()
        return due

    def _add(self, key: str, scope: Scope, registry: str) -> None:
        self._held[key] = (scope, registry)
        self._keys.setdefault(registry, set()).add(key)

    def _remove(self, key: str) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        keys = self._keys[held[1]]
        keys.discard(key)
        if not keys:
            del self._keys[held[1]]
        self._due.discard(key)
