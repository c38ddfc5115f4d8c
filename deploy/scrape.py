"""Read a roadx process's Prometheus metrics into plain numbers."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from .errors import StackError


def scrape(address: str, timeout: float = 5) -> list[tuple[str, dict[str, str], float]]:
    """Every sample at ``http://<address>/metrics`` as (name, labels, value)."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as resp:
            text = resp.read().decode("utf-8")
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise StackError(f"cannot read metrics from {address}: {exc}") from exc
    try:
        return [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except ValueError as exc:
        raise StackError(f"{address} does not serve Prometheus metrics: {exc}") from exc


def totals(samples: list[tuple[str, dict[str, str], float]], name: str, by: str) -> Counter:
    """Sum of metric ``name`` grouped by one label."""
    out: Counter = Counter()
    for sample_name, labels, value in samples:
        if sample_name == name:
            out[labels.get(by, "")] += int(value)
    return out
