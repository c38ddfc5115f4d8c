"""Synthetic provinces: deterministic registers and their change events, published like an adapter's.

``SyntheticProvinces`` (``generator``) yields events with realistic identifiers
(``identities``, county codes from ``regions``) from per-province state (``registers``);
``publish_synthetic`` (``publish``) encodes, signs, spools and sends them, at a rate
(``Pacer``) and resuming after a checkpoint.
"""

from __future__ import annotations

import importlib

__all__ = ["Generated", "Pacer", "SyntheticProvinces", "SyntheticReport", "publish_synthetic", "resume_point"]
_HOMES = {  # public name -> the module that defines it
    "Generated": "generator", "Pacer": "publish", "SyntheticProvinces": "generator", "SyntheticReport": "publish",
    "publish_synthetic": "publish", "resume_point": "publish",
}


def __getattr__(name: str) -> object:
    """Each public name is imported from its module when first asked for, so importing one
    module of the package loads none of the others (nor their libraries)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
