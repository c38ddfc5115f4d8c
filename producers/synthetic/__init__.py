"""Synthetic provinces: deterministic registers and their change events, published like an adapter's.

``SyntheticProvinces`` (``generator``) yields events with realistic identifiers
(``identities``, county codes from ``regions``) from per-province state (``registers``);
``publish_synthetic`` (``publish``) encodes, signs, spools and sends them, at a rate
(``Pacer``) and resuming after a checkpoint.
"""

from .generator import Generated, SyntheticProvinces
from .publish import Pacer, SyntheticReport, publish_synthetic, resume_point

__all__ = ["Generated", "Pacer", "SyntheticProvinces", "SyntheticReport", "publish_synthetic", "resume_point"]
