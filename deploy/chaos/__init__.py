"""``roadx chaos``: the synthetic workload and the provinces' replies to their cases through the line
while parts are killed and the broker stops.

    run.py       the run (``ChaosRun``): its broker, adapter, stream workers, case workflows
                 and sink, the plan played, the wait for the store, the final check
    plan.py      the schedule of kills and broker outages, drawn from a seed (pure)
    check.py     what the store and topics must hold, and the check against it (pure)
    cases.py     what the target provinces reply to their cases, drawn from the seed, and the
                 check of the case workflows against the replies sent (pure)
    desk.py      the target provinces' desks: read the cases routed to them, send the replies
    probe.py     what the run reads from the line: spool checkpoints, the store, the topics
    trace.py     why a routed case is missing, from the topics and the workers' logs (pure)

The command is ``deploy.commands.chaos``. The names below are loaded on first use.
"""

from schemas.exports import lazy_names


_HOME = {
    "ChaosOptions": "run", "ChaosRun": "run", "chaos_data_dir": "run",
    "ChaosPlan": "plan", "plan_chaos": "plan",
    "ChaosReport": "check", "format_report": "check",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_names(__name__, _HOME)
