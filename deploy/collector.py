"""The garbage collector's setting for every long-running roadx process: ``tune_collector``.

A batch of the stream worker or the sink makes hundreds of thousands of short-lived objects. With
Python's threshold of 700 allocations the stream worker ran about 1,100 collections and 10 full ones
per 50,000 events (0.47–0.54 s of its 7 s of CPU, 0.34–0.40 s of it the full ones, each walking the
whole heap); collecting the youngest generation after ``COLLECT_AFTER`` allocations, the older
generations' thresholds unchanged, it ran 31 and 1 (0.19 s). The worker shell (``deploy.worker``)
sets it for each part, and the bench for the processes it starts in their stead.
"""

from __future__ import annotations

import gc

COLLECT_AFTER = 20_000


def tune_collector() -> None:
    """Collect the youngest generation after ``COLLECT_AFTER`` allocations; the older ones as Python does."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(COLLECT_AFTER, middle, old)
