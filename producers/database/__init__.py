"""The database adapter: change capture from a provincial table (or its outbox) by polling.

``DbAdapter`` (``adapter``) reads rows after its position (``source``: connections, queries,
cursor positions), turns them into records and change events (``changes``), spools and drains
them; ``plan_changes`` is the pure decision of which events a batch of rows gives.
"""

from __future__ import annotations

from schemas.exports import lazy_names


__all__ = ["CycleReport", "DbAdapter", "DbAdapterConfig"]
_HOMES = {  # public name -> the module that defines it
    "CycleReport": "report", "DbAdapter": "adapter", "DbAdapterConfig": "adapter",
}
__getattr__ = lazy_names(__name__, _HOMES)
