"""``roadx chaos``: the synthetic workload through the line while parts are killed and the broker stops.

    run.py       the run (``ChaosRun``): its broker, adapter, stream workers and sink, the
                 plan played, the wait for the store, the final check
    plan.py      the schedule of kills and broker outages, drawn from a seed (pure)
    check.py     what the store and topics must hold, and the check against it (pure)
    probe.py     what the run reads from the line: spool checkpoints, the store, the topics
    trace.py     why a routed case is missing, from the topics and the workers' logs (pure)

The command is ``deploy.commands.chaos``.
"""

from .check import ChaosReport, format_report
from .plan import ChaosPlan, plan_chaos
from .run import ChaosOptions, ChaosRun, chaos_data_dir

__all__ = ["ChaosOptions", "ChaosPlan", "ChaosReport", "ChaosRun", "chaos_data_dir", "format_report", "plan_chaos"]
