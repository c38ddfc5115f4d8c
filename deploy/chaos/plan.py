"""The chaos run's schedule, drawn from a seed (pure).

A run is ``rounds`` rounds of ``round_seconds`` each. Every round holds ``kills_per_round``
kills and one broker outage. The round is cut into equal slots, one kill per slot: at a
random moment in its slot a randomly chosen target is killed (SIGKILL) and started again
after a random pause that ends inside the same slot, so one target is never killed while
it is still down. The outage starts at a random moment and ends inside its round.
The same seed and parameters always give the same plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from ..errors import DeployError

KILL, RESTART, PAUSE_BROKER, RESUME_BROKER = "kill", "restart", "pause-broker", "resume-broker"
BROKER = "broker"
SLOT_MARGIN = 0.5  # seconds left in a kill's slot after its restart


@dataclass(frozen=True)
class Kill:
    at: float  # seconds from the start of the round
    target: str
    pause: float  # seconds between the kill and the restart


@dataclass(frozen=True)
class Outage:
    at: float  # seconds from the start of the round
    seconds: float


@dataclass(frozen=True)
class RoundPlan:
    index: int  # 1-based
    kills: tuple[Kill, ...]
    outage: Outage


@dataclass(frozen=True)
class Action:
    at: float  # seconds from the start of the run
    kind: str  # KILL | RESTART | PAUSE_BROKER | RESUME_BROKER
    target: str
    round: int


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    round_seconds: float
    rounds: tuple[RoundPlan, ...]

    @property
    def seconds(self) -> float:
        return self.round_seconds * len(self.rounds)

    def timeline(self) -> list[Action]:
        """Every action of the run in time order (a resume before a kill at the same moment)."""
        actions = []
        for rnd in self.rounds:
            base = (rnd.index - 1) * self.round_seconds
            for kill in rnd.kills:
                actions.append(Action(base + kill.at, KILL, kill.target, rnd.index))
                actions.append(Action(base + kill.at + kill.pause, RESTART, kill.target, rnd.index))
            actions.append(Action(base + rnd.outage.at, PAUSE_BROKER, BROKER, rnd.index))
            actions.append(Action(base + rnd.outage.at + rnd.outage.seconds, RESUME_BROKER, BROKER, rnd.index))
        order = {RESUME_BROKER: 0, RESTART: 1, KILL: 2, PAUSE_BROKER: 3}
        return sorted(actions, key=lambda a: (a.at, order[a.kind]))


def plan_chaos(seed: int, rounds: int, targets: Sequence[str], round_seconds: float = 20.0,
               kills_per_round: int = 3, pause: tuple[float, float] = (0.5, 3.0),
               outage: tuple[float, float] = (2.0, 5.0)) -> ChaosPlan:
    """The kills and outages of a run; raises ``DeployError`` for parameters that do not fit."""
    if rounds < 1:
        raise DeployError(f"--rounds must be at least 1, got {rounds}")
    if not targets or len(set(targets)) != len(targets):
        raise DeployError(f"kill targets must be distinct and at least one, got {list(targets)}")
    if BROKER in targets:
        raise DeployError("the broker is paused, never killed: it is not a kill target")
    if kills_per_round < 0:
        raise DeployError(f"kills per round must not be negative, got {kills_per_round}")
    for name, (low, high) in (("pause", pause), ("outage", outage)):
        if not 0 < low <= high:
            raise DeployError(f"{name} range must satisfy 0 < low <= high, got {low}..{high}")
    slot = round_seconds / max(kills_per_round, 1)
    if slot < pause[1] + SLOT_MARGIN + 0.5 or round_seconds < outage[1] + SLOT_MARGIN:
        raise DeployError(f"rounds of {round_seconds:g}s are too short for {kills_per_round} kills with pauses "
                          f"up to {pause[1]:g}s and outages up to {outage[1]:g}s")
    rng = random.Random(seed)
    planned = []
    for index in range(1, rounds + 1):
        kills = []
        for k in range(kills_per_round):
            pause_s = round(rng.uniform(*pause), 2)
            latest = slot - pause_s - SLOT_MARGIN
            at = round(k * slot + rng.uniform(0, latest), 2)
            kills.append(Kill(at, targets[int(rng.random() * len(targets))], pause_s))
        seconds = round(rng.uniform(*outage), 2)
        start = round(rng.uniform(0, round_seconds - seconds - SLOT_MARGIN), 2)
        planned.append(RoundPlan(index, tuple(kills), Outage(start, seconds)))
    return ChaosPlan(seed, round_seconds, tuple(planned))
