"""``roadx bench``: the ceilings of this machine and the stages of the line, measured in one run.

    run.py       one run: options, its fresh embedded broker and temporary directory, figures
    phases.py    the phases in order (``PHASES``): ceilings, pipeline, peers, end to end, big state,
                 the information service
    service.py   the information service's phase: a big register, start-up, recovery,
                 lookups, freshness
    scale.py     ``--scale``: a national initial load in rounds, the curve of rates, memory
                 and store bytes per entity (and its fill child)
    measure.py   what is measured in this process: Avro, a plain Kafka loop, the stage alone, paced sends
    http_load.py load on the information service's API: open-loop lookups, freshness
    watch.py     watching the parts: child processes and their peak RSS, group progress
    report.py    figures, ceilings and targets as plain data: ratios, verdicts, table, JSON
    child.py     ``python -m deploy.bench.child adapter|faust``: the processes it starts
                 besides the workers and the peers
    peers.py     the worker's pure stage as a peer framework runs it (``PeerStage``)
    peer_child.py ``python -m deploy.bench.peer_child faust|quix``: the peers, faust-streaming and
                 Quix Streams running that stage with their own state, changelogs and commits
    outputs.py   what a run of the stage wrote, reduced to what the worker's and a peer's are compared by

The command is ``deploy.commands.bench``. The names below are loaded on first use, so that
``python -m deploy.bench.child`` does not load the run into the processes whose memory it measures.
"""

from schemas.exports import lazy_names


_HOME = {
    "PHASES": "phases",
    "ALL_FIGURES": "report", "TARGETS": "report", "Figure": "report", "Target": "report", "evaluate": "report",
    "format_table": "report", "report_json": "report",
    "Bench": "run", "BenchOptions": "run", "describe_machine": "run", "machine_facts": "run", "write_json": "run",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_names(__name__, _HOME)
