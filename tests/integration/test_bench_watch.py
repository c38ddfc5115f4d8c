"""The benchmark's children: their peak RSS is their own memory, not their parent's.

The kernel carries a forking parent's resident size into the child's ``ru_maxrss`` across
``exec``; a child of a benchmark process that holds a big state must still report the few
MiB it used itself, and a child that does use memory must report it.
"""

from __future__ import annotations

import pytest

from deploy.bench.watch import Child, wait_until
from schemas.settings import Settings

pytestmark = pytest.mark.integration

PARENT_MIB = 600
CHILD_MIB = 300

# The child signals it is done with its work by printing, then waits to be stopped.
HOLD = "import sys, time\n{work}\nprint('ready', flush=True)\ntime.sleep(120)\n"


def _run(tmp_path, name: str, work: str) -> Child:
    script = tmp_path / f"{name}.py"
    script.write_text(HOLD.format(work=work))
    child = Child(name, [str(script)], Settings(data_dir=tmp_path), tmp_path / f"{name}.log")
    try:
        wait_until(lambda: "ready" in child.log_path.read_text(), 60, f"the {name} child to do its work", child.check)
    finally:
        child.stop()
    return child


def test_a_small_child_of_a_big_parent_reports_its_own_peak(tmp_path):
    held = bytearray(PARENT_MIB * 1024 * 1024)  # zero-filled: every page is written, so resident
    child = _run(tmp_path, "small", "pass")
    assert len(held) == PARENT_MIB * 1024 * 1024
    assert 0 < child.peak_rss_mib < 100, child.peak_rss_mib


def test_a_child_that_grows_reports_its_growth(tmp_path):
    child = _run(tmp_path, "big", f"block = bytearray({CHILD_MIB} * 1024 * 1024)")
    assert child.peak_rss_mib >= CHILD_MIB, child.peak_rss_mib
