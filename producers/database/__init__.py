"""The database adapter: change capture from a provincial table (or its outbox) by polling.

``DbAdapter`` (``adapter``) reads rows after its position (``source``: connections, queries,
cursor positions), turns them into records and change events (``changes``), spools and drains
them; ``plan_changes`` is the pure decision of which events a batch of rows gives.
"""

from __future__ import annotations

import importlib

__all__ = ["CycleReport", "DbAdapter", "DbAdapterConfig"]
_HOMES = {  # public name -> the module that defines it
    "CycleReport": "adapter", "DbAdapter": "adapter", "DbAdapterConfig": "adapter",
}


def __getattr__(name: str) -> object:
    """Each public name is imported from its module when first asked for, so importing one
    module of the package loads none of the others (nor their libraries)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
