"""Avro schema compatibility: can a reader schema read what a writer schema wrote?

Implements the resolution rules of the Avro specification that matter for roadx's
records: fields matched by name, a reader field missing from the writer needs a default,
unions resolve branch by branch, numeric promotion (int → long → float → double,
string ↔ bytes). ``BACKWARD_TRANSITIVE`` = the current schema reads every earlier one.
"""

from __future__ import annotations

from typing import Any

_PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return schema["type"] if isinstance(schema["type"], str) else _kind(schema["type"])
    return schema


def _name(schema: Any) -> str | None:
    return schema.get("name") if isinstance(schema, dict) else None


def incompatibilities(reader: Any, writer: Any, path: str = "") -> list[str]:
    """Reasons ``reader`` cannot read data written with ``writer``; empty if it can."""
    rk, wk = _kind(reader), _kind(writer)
    where = path or "<root>"
    if wk == "union":
        return [p for i, branch in enumerate(writer) for p in incompatibilities(reader, branch, f"{path}[{i}]")]
    if rk == "union":
        if any(not incompatibilities(branch, writer, path) for branch in reader):
            return []
        return [f"{where}: no branch of the reader's union reads the writer's {wk}"]
    if rk != wk:
        if (wk, rk) in _PROMOTIONS:
            return []
        return [f"{where}: writer type {wk} cannot be read as {rk}"]
    if rk == "record":
        if _name(reader) != _name(writer):
            return [f"{where}: record {_name(writer)} cannot be read as {_name(reader)}"]
        written = {f["name"]: f for f in writer["fields"]}
        problems = []
        for field in reader["fields"]:
            source = written.get(field["name"])
            if source is None:
                if "default" not in field:
                    problems.append(f"{path}.{field['name']}: added without a default")
                continue
            problems += incompatibilities(field["type"], source["type"], f"{path}.{field['name']}")
        return problems
    if rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{where}: enum symbols {sorted(missing)} unknown to the reader"]
        return []
    if rk == "array":
        return incompatibilities(reader["items"], writer["items"], f"{path}[]")
    if rk == "map":
        return incompatibilities(reader["values"], writer["values"], f"{path}{{}}")
    if rk == "fixed" and reader.get("size") != writer.get("size"):
        return [f"{where}: fixed size {writer.get('size')} cannot be read as {reader.get('size')}"]
    return []


def backward_transitive(current: Any, earlier: list[tuple[str, Any]]) -> list[str]:
    """Problems reading any earlier version with the current schema."""
    return [f"{name}: {p}" for name, schema in earlier for p in incompatibilities(current, schema)]
