"""What the benchmark needs to watch its parts: child processes with their peak RSS, and group progress.

``Child`` starts ``python -m <module>`` with the settings as ``ROADX_*`` variables. Its peak
resident set size is the kernel's ``VmHWM`` of the process (``/proc/<pid>/status``: the
high-water mark of its own memory since it started its program), read while it runs: each
time it is checked or waited for, and last just before it is stopped. Not ``ru_maxrss``
from reaping it: the kernel carries the forking parent's resident size into that figure
across the child's ``exec``, so a child of a large benchmark process would report the
parent's memory. A child that ends by itself may grow in its last moments unseen (at most
the 50 ms between two reads while waiting).
``GroupProgress`` reads a consumer group's state and committed offsets without joining it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.kafka import read_topics
from schemas.settings import Settings, to_environ

from ..broker import die_with_parent
from ..errors import StackError


class Child:
    """One benchmarked process."""

    def __init__(self, name: str, args: list[str], settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
        env.update(to_environ(settings))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, *args], env=env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.name = name
        self.log_path = log_path
        self.started = time.time()
        self.peak_rss_kib: int | None = None
        self.exit_status: int | None = None
        self.reaped_cpu_seconds: float | None = None

    @classmethod
    def module(cls, name: str, module: str, settings: Settings, log_dir: Path, *extra: str) -> "Child":
        return cls(name, ["-m", module, *extra], settings, log_dir / f"{name}.log")

    def check(self) -> None:
        """Raise ``StackError`` if the process ended (it should run until stopped)."""
        self._read_peak_rss()
        if self.process.poll() is not None:
            self.exit_status = self.process.returncode  # reaped: stopping it later finds nothing to do
            raise StackError(f"the {self.name} process exited with code {self.process.returncode}; "
                             f"see {self.log_path}:\n{_tail(self.log_path)}")

    def wait(self, timeout: float) -> int:
        """Wait for the process to end by itself; returns its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read_peak_rss()
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                return self._reaped(status, usage)
            time.sleep(0.05)
        self.stop()
        raise StackError(f"the {self.name} process did not finish within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (then SIGKILL after ``timeout``) and reap, recording the peak RSS."""
        if self.exit_status is not None:
            return
        self._read_peak_rss()
        try:
            self.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self._reaped(status, usage)
                return
            if time.monotonic() > deadline:
                self.kill()
                return
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (a crash: the process closes and flushes nothing) and reap, recording the peak RSS."""
        if self.exit_status is not None:
            return
        self._read_peak_rss()
        self.process.kill()
        _pid, status, usage = os.wait4(self.process.pid, 0)
        self._reaped(status, usage)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (all its threads)."""
        if self.reaped_cpu_seconds is not None:
            return self.reaped_cpu_seconds
        return cpu_seconds(self.process.pid)

    def _read_peak_rss(self) -> None:
        if self.exit_status is None:
            peak = peak_rss_kib(self.process.pid)
            if peak is not None:
                self.peak_rss_kib = max(peak, self.peak_rss_kib or 0)

    def _reaped(self, status: int, usage) -> int:
        self.reaped_cpu_seconds = usage.ru_utime + usage.ru_stime
        self.exit_status = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.exit_status  # reaped here: Popen must not wait for it again
        return self.exit_status

    @property
    def peak_rss_mib(self) -> float:
        if self.peak_rss_kib is None:
            raise StackError(f"the {self.name} process was never seen running: no peak RSS")
        return self.peak_rss_kib / 1024


def peak_rss_kib(pid: int) -> int | None:
    """``VmHWM`` of a live process in KiB, from ``/proc/<pid>/status``; None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from ``/proc/<pid>/stat``; 0.0 where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class GroupProgress:
    """A consumer group's state and committed offsets, read from outside the group."""

    def __init__(self, bootstrap_servers: str, group: str) -> None:
        self.group = group
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self._reader = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group,
                                 "enable.auto.commit": False})
        self._partitions: list[TopicPartition] = []

    def watch(self, topics: Iterable[str]) -> None:
        try:
            metadata = self._reader.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise StackError(f"cannot list topics for group {self.group}: {exc}") from exc
        self._partitions = [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]

    def stable(self) -> bool:
        """True once the group has formed (its members have their partitions)."""
        try:
            described = self._admin.describe_consumer_groups([self.group])[self.group].result(timeout=5)
        except KafkaException:
            return False
        return described.state == ConsumerGroupState.STABLE

    def committed(self) -> int:
        """Messages committed by the group over the watched partitions."""
        try:
            done = self._reader.committed(self._partitions, timeout=10)
        except KafkaException as exc:
            raise StackError(f"cannot read the committed offsets of {self.group}: {exc}") from exc
        return sum(max(tp.offset, 0) for tp in done)

    def close(self) -> None:
        self._reader.close()


class CommitLog:
    """Samples a group's committed total in a thread, so the moment it reached a total is known afterwards."""

    def __init__(self, bootstrap_servers: str, group: str, topics: Iterable[str], every: float = 0.05) -> None:
        self._progress = GroupProgress(bootstrap_servers, group)
        self._progress.watch(topics)
        self._every = every
        self._samples: list[tuple[float, int, float]] = []  # (wall time, committed, CPU seconds of ``cpu``)
        self.cpu: Callable[[], float] | None = None  # the committing process's CPU time, sampled with each total
        self._stop = threading.Event()
        self._failure: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"commits-{group}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                at, done = time.time(), self._progress.committed()
                self._samples.append((at, done, self.cpu() if self.cpu is not None else 0.0))
                self._stop.wait(self._every)
        except Exception as exc:  # reported by the reader of the samples
            self._failure = exc
        finally:
            self._progress.close()

    @property
    def latest(self) -> int:
        if self._failure is not None:
            raise StackError(f"cannot follow the group's commits: {self._failure}") from self._failure
        return self._samples[-1][1] if self._samples else 0

    def first_reaching(self, total: int) -> float | None:
        """Wall time of the first sample at or above ``total``."""
        sample = self.sample_reaching(total)
        return sample[0] if sample else None

    def sample_reaching(self, total: int) -> tuple[float, int, float] | None:
        """(wall time, total, CPU seconds) of the first sample at or above ``total``."""
        return next((sample for sample in list(self._samples) if sample[1] >= total), None)

    def first_commit(self) -> tuple[float, int] | None:
        """(wall time, total) of the first sample with anything committed."""
        sample = self.sample_reaching(1)
        return sample[:2] if sample else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def count_messages(bootstrap_servers: str, topics: Iterable[str]) -> int:
    """Messages in ``topics`` as committed offsets count them (last offset + 1 per partition).

    Read to the end rather than asked for: the embedded broker's end offsets are not reliable.
    The topics must not be growing.
    """
    topics = list(topics)
    ends: dict[tuple[str, int], int] = {}
    for messages in read_topics({"bootstrap.servers": bootstrap_servers}, "roadx-bench-count", topics,
                                error=StackError, what=f"count the messages of {topics}"):
        for m in messages:
            ends[(m.topic(), m.partition())] = max(ends.get((m.topic(), m.partition()), 0), m.offset() + 1)
    return sum(ends.values())


def wait_until(condition: Callable[[], bool], timeout: float, what: str, check: Callable[[], None] = lambda: None,
               every: float = 0.05) -> float:
    """Poll ``condition`` until true; returns the wall time (``time.time()``) it was first seen true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        if condition():
            return time.time()
        time.sleep(every)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
