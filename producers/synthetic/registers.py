"""The generator's per-province state: live records by entity type, counters, recent events."""

from __future__ import annotations

import collections
import random
from typing import Any

from schemas.identifiers import PROVINCES

from .regions import regions_of


class LivePool:
    """Live records of one entity type, by key, with O(1) random choice and removal."""

    __slots__ = ("keys", "records", "pos")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str, record: dict[str, Any]) -> None:
        self.pos[key] = len(self.keys)
        self.keys.append(key)
        self.records[key] = record

    def choice(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        key = self.keys[int(rng.random() * len(self.keys))]
        return key, self.records[key]

    def remove(self, key: str) -> dict[str, Any]:
        index = self.pos.pop(key)
        last = self.keys.pop()
        if last != key:
            self.keys[index] = last
            self.pos[last] = index
        return self.records.pop(key)


class ProvinceRegister:
    """One synthetic province: its county codes, live records and counters."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.plate_char = PROVINCES[code][1]
        self.system = f"yunzheng-{code}"
        self.regions = regions_of(code)
        self.counties = self.regions.current_counties
        self.pools = {name: LivePool() for name in ("operator", "vehicle", "practitioner", "licence", "open_case", "closed_case")}
        self._pool_keys = [pool.keys for pool in self.pools.values()]
        self.pending_licences: collections.deque[tuple[str, str]] = collections.deque()  # (holder type, key)
        self.used: set[str] = set()
        self.seq = 0
        self.permits = 0
        self.cases = 0
        self.recent: list[dict[str, Any]] = []
        self.water: Any = None  # its water registers (``water.WaterRegisters``) when they are generated

    def live(self) -> int:
        return sum(map(len, self._pool_keys))
