"""The chaos run's kill and outage schedule, drawn from a seed."""

from __future__ import annotations

import pytest

from deploy.chaos.plan import BROKER, KILL, PAUSE_BROKER, RESTART, RESUME_BROKER, plan_chaos
from deploy.errors import DeployError

TARGETS = ["adapter", "streams-1", "streams-2", "sink"]


def test_the_same_seed_gives_the_same_plan():
    assert plan_chaos(7, 5, TARGETS) == plan_chaos(7, 5, TARGETS)


def test_different_seeds_give_different_plans():
    assert plan_chaos(7, 5, TARGETS).rounds != plan_chaos(8, 5, TARGETS).rounds


def test_each_round_has_its_kills_and_one_outage_inside_the_round():
    plan = plan_chaos(3, 4, TARGETS, round_seconds=20, kills_per_round=3, outage=(2, 5))
    assert [r.index for r in plan.rounds] == [1, 2, 3, 4]
    for rnd in plan.rounds:
        assert len(rnd.kills) == 3
        assert all(k.target in TARGETS for k in rnd.kills)
        assert 2 <= rnd.outage.seconds <= 5
        assert 0 <= rnd.outage.at and rnd.outage.at + rnd.outage.seconds <= 20


def test_a_killed_target_is_restarted_before_the_next_kill():
    plan = plan_chaos(11, 6, TARGETS, round_seconds=15, kills_per_round=3, pause=(0.5, 3.0))
    kills = [a for a in plan.timeline() if a.kind in (KILL, RESTART)]
    assert [a.kind for a in kills] == [KILL, RESTART] * (6 * 3)
    for kill, restart in zip(kills[::2], kills[1::2]):
        assert kill.target == restart.target and 0.5 <= restart.at - kill.at <= 3.0


def test_the_timeline_is_ordered_and_pairs_every_pause_with_a_resume():
    plan = plan_chaos(5, 3, TARGETS)
    timeline = plan.timeline()
    assert [a.at for a in timeline] == sorted(a.at for a in timeline)
    broker = [a.kind for a in timeline if a.target == BROKER]
    assert broker == [PAUSE_BROKER, RESUME_BROKER] * 3
    assert timeline[-1].at <= plan.seconds


def test_every_target_is_chosen_over_enough_rounds():
    plan = plan_chaos(1, 10, TARGETS)
    assert {k.target for r in plan.rounds for k in r.kills} == set(TARGETS)


@pytest.mark.parametrize("kwargs, message", [
    ({"rounds": 0}, "--rounds must be at least 1"),
    ({"targets": []}, "distinct and at least one"),
    ({"targets": ["sink", "sink"]}, "distinct"),
    ({"targets": ["broker"]}, "not a kill target"),
    ({"round_seconds": 5, "kills_per_round": 3}, "too short"),
    ({"pause": (3.0, 1.0)}, "pause range"),
    ({"kills_per_round": -1}, "must not be negative"),
])
def test_parameters_that_do_not_fit_are_refused(kwargs, message):
    args = {"seed": 1, "rounds": 2, "targets": TARGETS, **kwargs}
    with pytest.raises(DeployError, match=message):
        plan_chaos(**args)
