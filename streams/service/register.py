"""The national register as the service keeps it: one entry per entity, lookup indexes, and
what one change of ``national.changes`` does to them — pure, so the reader and the tests
apply the same decisions.

Store keys (one RocksDB store per service worker, ``streams.state.StateStore``):

    e:<entity key>                         the entry: type, province, seq, version, last
                                           change, the record (None once deleted)
    x:lic:<licence no>\\x1f<entity key>     licence number → licence (whatever its type)
    x:holder:<holder key>\\x1f<entity key>  holder → their licences
    x:opveh:<uscc>\\x1f<entity key>         operator → its vehicles
    x:idtok:<token>\\x1f<entity key>        ID-number token (as the store shows it) → practitioner
    x:away:<entity key>\\x1f<province>       a practitioner → the provinces that filed them as
                                           working there (异地从业人员备案); each filing's entry is
                                           e:<entity key>@<province>, beside the home entry
    x:imo:<imo>\\x1f<entity key>            IMO number → ship
    x:mmsi:<mmsi>\\x1f<entity key>          MMSI → ship
    x:entship:<uscc>\\x1f<entity key>       shipping enterprise (the ship's operator) → its ships;
                                           apart from x:opveh, as an operator (经营业户) and a
                                           shipping enterprise may share a USCC

A change is applied when its ``source.seq`` is not older than the entry's: a stale event
(flagged by the stream worker, or older than what is held) changes nothing. A delete keeps
the entry as a tombstone (record None, its seq kept) so a late older event cannot bring the
entity back; lookups answer it as not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..routing import away_filing_home

ENTRY = "e:"
INDEX = "x:"
SEP = "\x1f"
LICENCE_NO, HOLDER, OPERATOR_VEHICLES, ID_TOKEN, AWAY = "lic", "holder", "opveh", "idtok", "away"
SHIP_IMO, SHIP_MMSI, ENTERPRISE_SHIPS = "imo", "mmsi", "entship"

Tokenize = Callable[[str], str]
Lookup = Callable[[str], Any]


@dataclass(frozen=True)
class Change:
    """One message of ``national.changes``, decoded."""

    partition: int
    offset: int
    envelope: Mapping[str, Any]
    stale: bool = False


def entry_key(entity_key: str) -> str:
    return ENTRY + entity_key


def index_prefix(index: str, value: str) -> str:
    """The store prefix under which ``value``'s entries of ``index`` lie."""
    return f"{INDEX}{index}:{value}{SEP}"


def indexed_key(store_key: str) -> str:
    """The entity key an index entry points to."""
    return store_key.rsplit(SEP, 1)[1]


def index_keys(entity_type: str, entity_key: str, record: Mapping[str, Any] | None,
               tokenize: Tokenize) -> list[str]:
    """The index entries of one entity's record."""
    if record is None:
        return []
    keys: list[str] = []
    if entity_type == "licence":
        keys.append(index_prefix(LICENCE_NO, str(record["licence_no"])) + entity_key)
        if record.get("holder_key"):
            keys.append(index_prefix(HOLDER, str(record["holder_key"])) + entity_key)
    elif entity_type == "vehicle" and record.get("operator_uscc"):
        keys.append(index_prefix(OPERATOR_VEHICLES, str(record["operator_uscc"])) + entity_key)
    elif entity_type == "practitioner" and record.get("id_number"):
        keys.append(index_prefix(ID_TOKEN, tokenize(str(record["id_number"]))) + entity_key)
    elif entity_type == "ship":
        for index, field in ((SHIP_IMO, "imo"), (SHIP_MMSI, "mmsi"), (ENTERPRISE_SHIPS, "operator_uscc")):
            if record.get(field):
                keys.append(index_prefix(index, str(record[field])) + entity_key)
    return keys


def plan_changes(changes: Iterable[Change], lookup: Lookup, tokenize: Tokenize) -> dict[str, Any]:
    """Store writes (key → value, None deletes) of a run of changes, in order; ``lookup``
    reads the store as it was before them."""
    writes: dict[str, Any] = {}

    def current(key: str) -> Any:
        return writes[key] if key in writes else lookup(key)

    for change in changes:
        writes.update(plan_change(change, current, tokenize))
    return writes


def plan_change(change: Change, lookup: Lookup, tokenize: Tokenize) -> dict[str, Any]:
    """Store writes of one change: empty when it is stale."""
    event = change.envelope
    if change.stale:
        return {}
    source = event["source"]["province"]
    filed_away = away_filing_home(event, source) is not None
    key = entry_key(f"{event['entity_key']}@{source}" if filed_away else event["entity_key"])
    held = lookup(key)
    seq = int(event["source"]["seq"])
    if held is not None and seq < held["seq"]:
        return {}
    entity_type = event["entity_type"]
    record = None if event["op"] == "d" else event["after"]
    if filed_away:  # another province's filing: its own entry, listed beside the home one
        writes: dict[str, Any] = {index_prefix(AWAY, event["entity_key"]) + source: None if record is None else 1}
    else:
        writes = {k: None for k in index_keys(entity_type, event["entity_key"], held["record"] if held else None,
                                               tokenize)}
    writes[key] = {
        "entity_type": entity_type,
        "entity_key": event["entity_key"],
        "province": event["source"]["province"],
        "seq": seq,
        "version": (held["version"] if held else 0) + 1,
        "op": event["op"],
        "event_id": event["event_id"],
        "ts_ms": millis(event["ts_ms"]),
        "record": record,
    }
    for index in [] if filed_away else index_keys(entity_type, event["entity_key"], record, tokenize):
        writes[index] = 1
    return writes


def millis(value: Any) -> int:
    """Milliseconds since the epoch of a decoded ``ts_ms`` (fastavro gives a datetime)."""
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)
