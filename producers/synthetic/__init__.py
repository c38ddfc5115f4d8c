"""Synthetic provinces: deterministic registers and their change events, published like an adapter's.

``SyntheticProvinces`` (``generator``) yields events with realistic identifiers
(``identities``, county codes from ``regions``) from per-province state (``registers``);
``publish_synthetic`` (``publish``) encodes, signs, spools and sends them, at a rate
(``Pacer``) and resuming after a checkpoint.
"""

from __future__ import annotations

from schemas.exports import lazy_names


__all__ = ["Generated", "Pacer", "SyntheticProvinces", "SyntheticReport", "publish_synthetic", "resume_point"]
_HOMES = {  # public name -> the module that defines it
    "Generated": "generator", "Pacer": "publish", "SyntheticProvinces": "generator", "SyntheticReport": "publish",
    "publish_synthetic": "publish", "resume_point": "publish",
}
__getattr__ = lazy_names(__name__, _HOMES)
