"""The chaos run: the synthetic workload through the whole line while parts are killed and the broker stops.

``ChaosRun`` starts its own embedded broker, the synthetic adapter, stream workers, the
case workflows and the sink, each a separate process started through the worker shell
(``roadx worker synthetic|streams|cases|sink``, ``deploy.worker``), and
plays the plan of ``deploy.chaos.plan``: SIGKILL a part, start it again after a pause;
SIGSTOP the broker for a few seconds, then SIGCONT, while the adapter keeps spooling.
All along, the target provinces reply to the cases routed to them (``deploy.chaos.desk``:
receipts, answers, declines that re-route, some left open, as the seed decides).
Then it waits until the store holds every valid event and routed case and shows every
workflow as the replies sent say (watched through the sink's read-only HTTP endpoint; a
stall ends the wait), stops the parts, reads ``national.changes``, the inbound topics and
``national.dlq`` from the still running broker, stops it, reads the store and checks both
against the generator's truth (``deploy.chaos.check``) and the replies sent
(``deploy.chaos.cases``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from schemas.parties import NAVIGATION_ADMINISTRATION
from schemas.settings import Settings, to_environ

from ..broker import EmbeddedBroker, die_with_parent, free_port, wait_for_port
from ..consumer_lag import GroupLag
from ..demo import Progress
from ..errors import DeployError, StackError
from ..stack import StackInfo, submissions_answered
from ..topics import create_topics, exchange_topics
from ..worker import worker_argv
from .cases import CaseTruth, check_cases
from .check import ChaosReport, TopicSnapshot, Truth, build_truth, check
from .desk import ProvinceDesks
from .plan import KILL, PAUSE_BROKER, RESTART, RESUME_BROKER, Action, ChaosPlan, plan_chaos
from .probe import (
    read_snapshot, read_stored_ids, read_topic_counts, served_case_store, spooled_so_far, store_counts, trace_lost,
    trace_missing_routes,
)
from .receipts import ReceiptResult, check_receipts, hub_public_key, read_submissions

ADAPTER, SINK, CASES = "adapter", "sink", "cases"
TICK = 0.2
ADAPTER_CHUNK = 50  # events per province per spool append: small, so pacing is smooth
SHOW_EVERY = 5.0
SETTLE_SECONDS = 3.0  # the drained state must hold this long (late repeats would show up meanwhile)
DRAIN_TICK = 0.5


@dataclass(frozen=True)
class ChaosOptions:
    rounds: int = 5
    events: int = 30_000
    seed: int = 2024
    provinces: int = 6
    round_seconds: float = 20.0
    kills_per_round: int = 3
    stream_workers: int = 2
    water: bool = False  # the navigation administrations take part too (``ChaosRun``)
    stall_seconds: float = 90.0
    duplicate_rate: float = 0.02
    invalid_rate: float = 0.01

    def validate(self, known_provinces: int) -> None:
        if self.events < 1:
            raise DeployError("--events must be at least 1")
        if not 1 <= self.provinces <= known_provinces:
            raise DeployError(f"--provinces must be between 1 and {known_provinces}")
        if self.stream_workers < 1:
            raise DeployError("--stream-workers must be at least 1")
        self.plan()

    @property
    def targets(self) -> list[str]:
        """What may be killed: the adapter, each stream worker, the sink, the case workflows."""
        return [ADAPTER, *(f"streams-{i}" for i in range(1, self.stream_workers + 1)), SINK, CASES]

    def plan(self) -> ChaosPlan:
        return plan_chaos(self.seed, self.rounds, self.targets, self.round_seconds, self.kills_per_round)

    @property
    def adapter_rate(self) -> float:
        """Events/s that spread generation over most of the rounds, so kills find the adapter at work."""
        return self.events / (self.rounds * self.round_seconds * 0.8)


class Part:
    """One restartable process of the line (``python ARGV``), its output appended to a log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.process: subprocess.Popen | None = None
        self.finished = False  # exited 0 by itself (the adapter, once everything is published)

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, *self.argv], env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class ChaosRun:
    def __init__(self, settings: Settings, options: ChaosOptions, data_dir: Path,
                 say: Callable[[str], None], progress: Progress | None = None) -> None:
        options.validate(len(settings.provinces))
        self.options = options
        self.data_dir = data_dir
        self.say = say
        self.progress = progress or Progress()
        water = settings.parties().of_kind(NAVIGATION_ADMINISTRATION) if options.water else ()
        self.settings = settings.with_overrides(
            data_dir=data_dir, provinces=(*settings.provinces[: options.provinces], *water), clickhouse_url="",
            metrics_port=0, store_http_port=0)
        self.log_dir = data_dir / "logs"
        self.broker: EmbeddedBroker | None = None
        self.parts: dict[str, Part] = {}
        self.desks: ProvinceDesks | None = None
        self.down: set[str] = set()  # killed by the plan, waiting for their restart
        self.kills: Counter = Counter()
        self.crashes: Counter = Counter()
        self.outages, self.outage_seconds = 0, 0.0
        self.problems: list[str] = []
        self.http_port = free_port()
        self._paused_at: float | None = None
        self._last_show = 0.0
        self._stored: tuple[int, int] | None = None

    # -- the run -------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        started = time.monotonic()
        plan = self.options.plan()
        try:
            truth = self._start()
            self._play(plan, truth)
            self._drain(truth)
            self._stop_parts()
            topics = self._read_topics()
            self.say("reading the store and checking it against the generator's registers")
            snapshot = read_snapshot(self.settings)
            result = check(truth, snapshot, topics)
            cases = check_cases(self._case_truth(truth), snapshot.cases, topics)
            receipts = self._check_receipts(truth)
            if result.lost:
                self.say(f"tracing the {result.lost} lost events through the topics")
                self.problems += trace_lost(self.settings, truth, read_stored_ids(self.settings))
            if result.routed_missing:
                self.say(f"tracing the {result.routed_missing} missing routed cases through the topics and logs")
                self.problems += trace_missing_routes(self.settings, sorted(truth.routed - snapshot.routed.keys()),
                                                      self.log_dir)
        finally:
            self._shutdown()
        return ChaosReport(check=result, kills=dict(self.kills), outages=self.outages,
                           outage_seconds=round(self.outage_seconds, 1), crashes=dict(self.crashes),
                           seconds=round(time.monotonic() - started, 1), problems=self.problems, cases=cases,
                           receipts=receipts)

    def _case_truth(self, truth: Truth) -> CaseTruth:
        return CaseTruth(routed=truth.workflows, sent=list(self.desks.sent) if self.desks else [])

    def _read_topics(self) -> TopicSnapshot | None:
        """Every message on national.changes, the inbound topics and national.dlq, or None (a problem of the
        run) if unreadable."""
        self.say("reading national.changes, the inbound topics and national.dlq for doubled and refused messages")
        try:
            return read_topic_counts(self.settings)
        except DeployError as exc:
            self.problems.append(str(exc))
            self.say(self.problems[-1])
            return None

    def _check_receipts(self, truth: Truth) -> ReceiptResult | None:
        """Every submission's receipt against the events sent in it, read from the topics (None if unreadable)."""
        self.say("reading the events, manifests and receipts for one true receipt per submission")
        try:
            sent = read_submissions(self.settings)
        except DeployError as exc:
            self.problems.append(str(exc))
            self.say(self.problems[-1])
            return None
        return check_receipts(sent, truth.valid_ids, hub_public_key(self.settings))

    def _start(self) -> Truth:
        settings, opts = self.settings, self.options
        for stale in (settings.store_path, settings.spool_dir, settings.data_dir / "streams", settings.data_dir / CASES):
            shutil.rmtree(stale, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        settings.master_key()
        self.broker = EmbeddedBroker.start(log_path=self.log_dir / "broker.log")
        live = self.settings = settings.with_overrides(bootstrap_servers=self.broker.bootstrap_servers)
        create_topics(live.kafka_conf(), exchange_topics(live))
        self.say(f"broker {live.bootstrap_servers} (pid {self.broker.process.pid}), data in {self.data_dir}")
        self.say(f"building the truth of {opts.events:,} events from seed {opts.seed} in {opts.provinces} provinces"
                 + (" and the navigation administrations" if opts.water else ""))
        truth = build_truth(live.provinces, opts.seed, opts.events, _masker(live), opts.duplicate_rate,
                            opts.invalid_rate)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
        sink_env = {**env, **to_environ(live.with_overrides(store_http_port=self.http_port))}
        self.parts[SINK] = Part(SINK, worker_argv("sink"), sink_env, self.log_dir / "sink.log")
        for name in opts.targets:
            if name.startswith("streams-"):
                self.parts[name] = Part(name, worker_argv("streams"), {**env, **to_environ(live)},
                                        self.log_dir / f"{name}.log")
        self.parts[CASES] = Part(CASES, worker_argv("cases"), {**env, **to_environ(live)}, self.log_dir / "cases.log")
        self.parts[ADAPTER] = Part(ADAPTER, worker_argv(
            "synthetic", "--events", str(opts.events), "--seed", str(opts.seed),
            "--duplicate-rate", str(opts.duplicate_rate), "--invalid-rate", str(opts.invalid_rate),
            "--rate", f"{opts.adapter_rate:.1f}", "--chunk", str(ADAPTER_CHUNK),
        ), {**env, **to_environ(live)}, self.log_dir / "adapter.log")
        for name, part in self.parts.items():
            if name != ADAPTER:
                part.start()
        wait_for_port(self.http_port, 120, self.parts[SINK].process)
        self._record_stack()
        self.desks = ProvinceDesks(live, opts.seed, truth.cases, self.log_dir / "replies-sent.jsonl")
        self.parts[ADAPTER].start()
        self.say(f"line up: adapter at {opts.adapter_rate:.0f} events/s, {opts.stream_workers} stream workers, "
                 f"case workflows, sink; {len(truth.workflows):,} case workflows to reply to; "
                 f"store served on 127.0.0.1:{self.http_port}")
        return truth

    def _record_stack(self) -> None:
        """Write stack.json so ``roadx query --data-dir`` reaches the store while the run goes on."""
        StackInfo(supervisor_pid=os.getpid(), bootstrap_servers=self.settings.bootstrap_servers,
                  data_dir=str(self.data_dir.resolve()),
                  pids={"broker": self.broker.process.pid,
                        **{n: p.process.pid for n, p in self.parts.items() if p.process}},
                  started_at=time.time(), store_http=f"127.0.0.1:{self.http_port}").write(self.settings.stack_file)

    def _play(self, plan: ChaosPlan, truth: Truth) -> None:
        t0 = time.monotonic()
        for action in plan.timeline():
            while (left := t0 + action.at - time.monotonic()) > 0:
                self._tend()
                self.desks.tend()
                self._show(f"round {action.round}/{len(plan.rounds)}", truth)
                time.sleep(min(TICK, left))
            self._do(action, time.monotonic() - t0)
        self.say(f"all {len(plan.rounds)} rounds played: {sum(self.kills.values())} kills, {self.outages} outages")

    def _do(self, action: Action, at: float) -> None:
        where = f"round {action.round} t={at:5.1f}s"
        if action.kind == PAUSE_BROKER:
            os.kill(self.broker.process.pid, signal.SIGSTOP)
            self._paused_at = time.monotonic()
            self.say(f"{where}: broker unreachable (SIGSTOP)")
        elif action.kind == RESUME_BROKER:
            self._resume_broker()
            self.say(f"{where}: broker back (SIGCONT)")
        elif action.kind == KILL:
            part = self.parts[action.target]
            if part.finished:
                self.say(f"{where}: {action.target} has finished its work; nothing to kill")
                return
            part.kill()
            self.down.add(action.target)
            self.say(f"{where}: SIGKILL {action.target} (pid {part.process.pid})")
        elif action.kind == RESTART and action.target in self.down:
            self.down.discard(action.target)
            self.parts[action.target].start()
            self.kills[action.target] += 1
            self.say(f"{where}: restarted {action.target} (pid {self.parts[action.target].process.pid})")

    def _resume_broker(self) -> None:
        if self._paused_at is not None:
            os.kill(self.broker.process.pid, signal.SIGCONT)
            self.outages += 1
            self.outage_seconds += time.monotonic() - self._paused_at
            self._paused_at = None

    def _tend(self) -> None:
        """Restart a part that exited by itself (the adapter's exit 0 means it is done)."""
        if self.broker.process.poll() is not None:
            raise StackError(f"the broker exited with code {self.broker.process.returncode}")
        for name, part in self.parts.items():
            if name in self.down or part.finished or part.running:
                continue
            code = part.process.returncode
            if name == ADAPTER and code == 0:
                part.finished = True
                self.say("adapter finished: every event generated and acknowledged")
                continue
            self.crashes[name] += 1
            self.say(f"{name} exited by itself with code {code}; restarting it (see {part.log_path})")
            part.start()

    def _show(self, phase: str, truth: Truth, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_show < SHOW_EVERY:
            return
        self._last_show = now
        stored = self._stored = store_counts(self.settings) or self._stored
        events, routed = (f"{n:,}" for n in stored) if stored else ("?", "?")
        self.progress.done(
            f"chaos: {phase}: produced {spooled_so_far(self.settings):,}/{truth.produced:,}, stored {events} "
            f"of {truth.valid:,} valid events and {routed} of {len(truth.routed):,} routed cases; "
            f"{len(self.desks.sent) if self.desks else 0:,} case replies sent; "
            f"kills {sum(self.kills.values())}, outages {self.outages}")

    def _drain(self, truth: Truth) -> None:
        """Wait until the store holds every valid event and routed case, shows every case workflow as
        the replies sent say, and the groups are caught up."""
        self._resume_broker()
        for name in list(self.down):
            self.down.discard(name)
            self.parts[name].start()
        names = self.settings.topics
        inbound = [names.province_inbound(p) for p in self.settings.provinces]
        source = [names.province_changes(p) for p in self.settings.provinces]
        manifests = [names.province_manifests(p) for p in self.settings.provinces]
        sunk = [names.national_changes, names.national_dlq, names.national_quality, names.national_submissions,
                *inbound, *manifests]
        replies = [names.province_replies(p) for p in self.settings.provinces]
        want = (truth.valid, len(truth.routed))
        lags = [(GroupLag(self.settings.kafka_conf(), names.streams_group), source),
                (GroupLag(self.settings.kafka_conf(), names.sink_group), sunk),
                (GroupLag(self.settings.kafka_conf(), names.cases_group), [*inbound, *replies])]
        try:
            last, changed, drained_since = None, time.monotonic(), None
            while True:
                self._tend()
                self.desks.tend()
                stored = store_counts(self.settings)
                behind = sum(sum(lag.behind(topics).values()) for lag, topics in lags)
                self._stored = stored or self._stored
                workflows = self._case_progress(truth)
                self._show("draining", truth)
                receipts = submissions_answered(self.settings)
                seen = (stored, behind, self.parts[ADAPTER].finished, workflows, len(self.desks.sent), receipts)
                if self.parts[ADAPTER].finished and stored == want and behind == 0 and workflows == "settled" \
                        and receipts is not None and receipts[0] == receipts[1]:
                    drained_since = drained_since or time.monotonic()
                    if time.monotonic() - drained_since >= SETTLE_SECONDS:
                        self.say(f"drained: {truth.valid:,} valid events and {len(truth.routed):,} routed cases "
                                 f"stored, {len(self.desks.sent):,} replies sent and every case workflow as they say")
                        break
                else:
                    drained_since = None
                if seen != last:
                    last, changed = seen, time.monotonic()
                elif time.monotonic() - changed > self.options.stall_seconds:
                    self.problems.append(
                        f"no progress for {self.options.stall_seconds:.0f}s while draining (store holds "
                        f"{stored} of {want} (events, routed cases), {behind} messages behind, receipts for "
                        f"{receipts[1] if receipts else '?'} of {receipts[0] if receipts else '?'} submissions, adapter "
                        f"{'finished' if self.parts[ADAPTER].finished else 'not finished'}, case workflows: "
                        f"{workflows}); logs in {self.log_dir}")
                    self.say(self.problems[-1])
                    break
                time.sleep(DRAIN_TICK)
        finally:
            for lag, _topics in lags:
                lag.close()
        try:
            self.desks.flush()
        except DeployError as exc:
            self.problems.append(str(exc))
            self.say(self.problems[-1])

    def _case_progress(self, truth: Truth) -> str:
        """"settled" when the desks have replied to every workflow there is and the store shows each as
        the replies say; else what is still awaited."""
        case_truth = self._case_truth(truth)
        unseen = case_truth.workflows().keys() - self.desks.seen.keys()
        if unseen or not self.desks.idle:
            return f"{len(unseen)} workflows not seen by their province, {len(self.desks.sent)} replies sent"
        store = served_case_store(self.settings)
        if store is None:
            return "store unreachable"
        result = check_cases(case_truth, store)
        if result.ok:
            return "settled"
        return (f"{result.missing} missing, {result.state_differ} in another state, {result.replies_lost} replies "
                f"not stored (of {result.workflows} workflows, {result.replies_sent} replies)")

    def _stop_parts(self) -> None:
        for name in [ADAPTER, *(n for n in self.parts if n.startswith("streams-")), CASES, SINK]:
            self.parts[name].stop()

    def _shutdown(self) -> None:
        if self.broker is not None and self._paused_at is not None:
            os.kill(self.broker.process.pid, signal.SIGCONT)
            self._paused_at = None
        for part in self.parts.values():
            part.kill()
        if self.desks is not None:
            self.desks.close()
        if self.broker is not None:
            self.broker.stop()
        self.settings.stack_file.unlink(missing_ok=True)


def _masker(settings: Settings) -> Any:
    from schemas.pii import PiiMasker

    return PiiMasker(settings.pii_key())


def chaos_data_dir(given: Path | None) -> tuple[Path, bool]:
    """The run's data directory and whether it is a temporary one (removed after a passing run)."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="roadx-chaos-")), True
    if StackInfo.read(given / "stack.json"):
        raise StackError(f"a stack is running for {given}: stop it first with `roadx down --data-dir {given}`")
    given.mkdir(parents=True, exist_ok=True)
    return given, False
