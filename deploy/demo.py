"""The national demo: synthetic provinces through the whole line into the store.

``reconcile`` is the pure check of a finished run; ``run_demo`` is the runner: it starts
the embedded stack, publishes the synthetic provinces, waits until the stream worker and
the sink have committed everything, asks the information service what the store says
(``deploy.service_check``), has the parties acknowledge and answer their cases
(``deploy.case_check``), reads the worker's counters and the store, and returns the summary.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, TextIO

from schemas.settings import Settings

from .consumer_lag import GroupLag
from .errors import StackError
from .case_check import CaseCheck, answer_cases
from .scrape import scrape, totals
from .service_check import ServiceCheck, check_service
from sinks.ddl import VIEWS

from .evidence_check import check_evidence
from .stack import Stack, StackInfo, submissions_answered

STORE_TABLES = ("change_log", "dlq", "routed_cases", *VIEWS)  # the log, and every register's current view


@dataclass
class DemoSummary:
    provinces: int
    produced: int
    injected_duplicates: int
    injected_invalid: int
    accepted: int
    duplicates_dropped: int
    rejected: int
    rejected_by_rule: dict[str, int]
    routed_by_target: dict[str, int]
    expected_routed_by_target: dict[str, int]
    stored_events: int
    table_rows: dict[str, int]
    seconds: float
    problems: list[str] = field(default_factory=list)
    unchanged: int = 0  # updates equal to the entity's last version: dropped
    stale: int = 0  # older than the entity's last applied version: in the log, flagged, not applied
    findings_by_dimension: dict[str, int] = field(default_factory=dict)  # quality findings published
    service: ServiceCheck = field(default_factory=ServiceCheck)  # the information service against the store
    cases: CaseCheck = field(default_factory=CaseCheck)  # the provinces' replies through the case workflows
    submissions: int = 0  # submissions the provinces closed with a manifest, as the store holds them
    receipts: dict[str, int] = field(default_factory=dict)  # the hub's receipts by status
    evidence_entries: int = 0  # entries of the evidence log, re-checked after the run
    evidence_problems: list[str] = field(default_factory=list)
    keys: str = ""  # where each side's keys are
    other_parties: list[str] = field(default_factory=list)  # parties taking part that are not provinces, by name

    @property
    def reconciled(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "reconciled": self.reconciled}


def reconcile(s: DemoSummary) -> list[str]:
    """Every way the run's counts disagree with each other; empty when they reconcile."""
    problems = []
    if s.produced != s.stored_events + s.duplicates_dropped + s.rejected:
        problems.append(
            f"produced {s.produced} != stored {s.stored_events} + duplicates dropped "
            f"{s.duplicates_dropped} + rejected {s.rejected}"
        )
    if s.accepted != s.stored_events:
        problems.append(f"the stream worker accepted {s.accepted} events but the store holds {s.stored_events}")
    if s.duplicates_dropped != s.injected_duplicates:
        problems.append(f"dropped {s.duplicates_dropped} duplicates, {s.injected_duplicates} were injected")
    if s.rejected != s.injected_invalid:
        problems.append(f"rejected {s.rejected} events, {s.injected_invalid} invalid were injected")
    if s.table_rows.get("dlq", 0) != s.rejected:
        problems.append(f"the dlq table holds {s.table_rows.get('dlq', 0)} rows, {s.rejected} were rejected")
    if s.routed_by_target != s.expected_routed_by_target:
        diff = {
            q: (s.routed_by_target.get(q, 0), s.expected_routed_by_target.get(q, 0))
            for q in set(s.routed_by_target) | set(s.expected_routed_by_target)
            if s.routed_by_target.get(q, 0) != s.expected_routed_by_target.get(q, 0)
        }
        problems.append(f"routed cases per target (stored, expected) differ: {dict(sorted(diff.items()))}")
    if s.routed_by_target and s.cases.workflows == 0:
        problems.append("cases were routed, but the store shows no case workflow")
    problems += [f"case workflows: {p}" for p in s.cases.problems]
    if sum(s.receipts.values()) != s.submissions or set(s.receipts) - {"accepted"}:
        problems.append(f"{s.submissions} submissions were closed, the hub's receipts say {s.receipts}")
    problems += [f"evidence log: {p}" for p in s.evidence_problems]
    if s.service.checked == 0:
        problems.append("the information service was not checked: the store holds no licence or operator")
    elif s.service.agreed != s.service.checked:
        problems.append(f"the information service agrees with the store on {s.service.agreed} of "
                        f"{s.service.checked} answers: " + "; ".join(s.service.disagreements))
    return problems


class Progress:
    """One status line, redrawn in place on a terminal, printed every few seconds otherwise."""

    def __init__(self, out: TextIO = sys.stderr, every: float = 5.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = 0.2 if self.tty else every
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        if self.tty:
            self.out.write("\r\033[K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self, text: str) -> None:
        self.out.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.out.flush()


def run_demo(
    settings: Settings, events: int, seed: int, progress: Progress,
    duplicate_rate: float = 0.02, invalid_rate: float = 0.01, stall_seconds: float = 180,
) -> DemoSummary:
    from producers.synthetic import publish_synthetic
    from sinks.store import open_store

    if StackInfo.read(settings.stack_file):
        raise StackError(f"a stack is running for {settings.data_dir}: stop it first with `roadx down`")
    for stale in (settings.store_path, settings.spool_dir):
        shutil.rmtree(stale, ignore_errors=True)  # the demo starts from an empty store
    started = time.monotonic()
    stack = Stack(settings)
    try:
        info = stack.start()
        progress.done(f"embedded stack up: broker {info.bootstrap_servers}, store {settings.store_path}")
        live = settings.with_overrides(bootstrap_servers=info.bootstrap_servers)
        streams_lag = GroupLag(live.kafka_conf(), live.topics.streams_group)
        try:
            report = publish_synthetic(
                live, events, seed, duplicate_rate=duplicate_rate, invalid_rate=invalid_rate, seal=True,
                progress=lambda done, total: progress.show(f"publishing {done:,}/{total:,} events"),
                settle=lambda party: _taken_in(stack, live, streams_lag, party, stall_seconds),
            )
        finally:
            streams_lag.close()
        progress.done(f"published {report.produced:,} events from {len(settings.provinces)} parties")
        _wait_until_drained(stack, live, progress, stall_seconds)
        _wait_for_receipts(live, progress, stall_seconds)
        samples = scrape(info.metrics["streams"])
        progress.show("asking the information service what the store says", force=True)
        service = check_service(live, info)
        progress.done(f"information service: {service.agreed:,} of {service.checked:,} answers agree with the store")
        progress.show("the parties acknowledge their cases and answer every other one", force=True)
        cases = answer_cases(live, info)
        progress.done(f"case workflows: {cases.received:,} of {cases.workflows:,} received, "
                      f"{cases.answered:,} answered, in the store after {cases.seconds}s")
    finally:
        stack.stop()
    outcomes = totals(samples, "roadx_stream_events_total", "outcome")
    client = open_store(settings)
    try:
        db = settings.clickhouse_database
        rows = {t: int(client.command(f"SELECT count() FROM {db}.{t} FINAL" if t in ("change_log", "dlq", "routed_cases")
                                      else f"SELECT count() FROM {db}.{t}")) for t in STORE_TABLES}
        routed = {str(q): int(n) for q, n in client.query(
            f"SELECT target_province, count() FROM {db}.routed_cases FINAL GROUP BY target_province").result_rows}
        submissions = int(client.command(f"SELECT uniqExact(party, submission_key) FROM {db}.submission_manifests"))
        receipts = {str(status): int(n) for status, n in client.query(
            f"SELECT JSONExtractString(document, 'status'), count() FROM {db}.evidence_log WHERE kind = 'receipt' "
            f"GROUP BY 1").result_rows}
        entries, _before, evidence_problems = check_evidence(settings, client)
    finally:
        client.close()
    summary = DemoSummary(
        provinces=sum(1 for p in settings.provinces if settings.parties()[p].kind == "province"),
        other_parties=[f"{p} {settings.parties()[p].name}" for p in settings.provinces
                       if settings.parties()[p].kind != "province"],
        produced=report.produced,
        injected_duplicates=report.duplicates, injected_invalid=report.invalid,
        accepted=outcomes["accepted"], duplicates_dropped=outcomes["duplicate"], rejected=outcomes["rejected"],
        rejected_by_rule=dict(totals(samples, "roadx_stream_rejected_total", "rule")),
        routed_by_target=dict(sorted(routed.items())),
        expected_routed_by_target=dict(sorted((str(q), int(n)) for q, n in report.expected_routed.items() if n)),
        stored_events=rows["change_log"], table_rows=rows, seconds=round(time.monotonic() - started, 1),
        unchanged=outcomes["unchanged"], stale=outcomes["stale"],
        findings_by_dimension=dict(sorted(totals(samples, "roadx_quality_findings_total", "dimension").items())),
        service=service, cases=cases, submissions=submissions, receipts=receipts, evidence_entries=len(entries),
        evidence_problems=[str(p) for p in evidence_problems],
        keys=(f"each party's SM2 private key and event secret on its own side, {settings.party_keys_dir}/<P>/keys; "
              f"the hub's registry of {len(settings.hub_keys().entries())} public keys and its own key pair in "
              f"{settings.data_dir / 'keys'}"),
    )
    summary.problems = reconcile(summary)
    return summary


def _wait_for_receipts(settings: Settings, progress: Progress, stall_seconds: float) -> None:
    """Wait until the hub has answered every manifest the store holds with a receipt."""
    last_change, last_seen = time.monotonic(), None
    while True:
        answered = submissions_answered(settings)
        if answered is not None:
            progress.show(f"receipts: {answered[1]:,} of {answered[0]:,} submissions answered")
            if answered[0] and answered[0] == answered[1]:
                progress.done(f"receipts: the hub answered all {answered[0]:,} submissions")
                return
        if answered != last_seen:
            last_seen, last_change = answered, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            raise StackError(f"no progress for {stall_seconds:.0f}s waiting for receipts ({answered})")
        time.sleep(0.5)


def _taken_in(stack: Stack, settings: Settings, lag: GroupLag, party: str,
              stall_seconds: float) -> Callable[[bool], bool]:
    """Whether the stream worker has committed what ``party``'s changes topic holds now (with
    ``block``: once it has): a case published after it that names one of the party's ships finds
    the ship registered."""
    marks = lag.ends([settings.topics.province_changes(party)])
    reached = False

    def taken_in(block: bool) -> bool:
        nonlocal reached
        started = time.monotonic()
        while not reached:
            reached = lag.reached(marks)
            if reached or not block:
                break
            stack.check()
            if time.monotonic() - started > stall_seconds:
                raise StackError(f"the stream worker took {party}'s events in for {stall_seconds:.0f}s without "
                                 f"catching up; logs are in {stack.log_dir}")
            time.sleep(0.05)
        return reached
    return taken_in


def _wait_until_drained(stack: Stack, settings: Settings, progress: Progress, stall_seconds: float) -> None:
    names = settings.topics
    source_topics = [names.province_changes(p) for p in settings.provinces]
    sink_topics = [names.national_changes, names.national_dlq, names.national_submissions] + \
        [names.province_inbound(p) for p in settings.provinces] + [names.province_manifests(p) for p in settings.provinces]
    streams_lag = GroupLag(settings.kafka_conf(), names.streams_group)
    sink_lag = GroupLag(settings.kafka_conf(), names.sink_group)
    try:
        last_change, last_seen = time.monotonic(), None
        while True:
            stack.check()
            behind_streams = sum(streams_lag.behind(source_topics).values())
            behind_sink = sum(sink_lag.behind(sink_topics).values())
            progress.show(f"draining: stream worker {behind_streams:,} behind, sink {behind_sink:,} behind")
            if behind_streams == 0 and behind_sink == 0:
                progress.done("drained: every event is processed and stored")
                return
            if (behind_streams, behind_sink) != last_seen:
                last_seen, last_change = (behind_streams, behind_sink), time.monotonic()
            elif time.monotonic() - last_change > stall_seconds:
                raise StackError(
                    f"no progress for {stall_seconds:.0f}s (stream worker {behind_streams} behind, "
                    f"sink {behind_sink} behind); logs are in {stack.log_dir}"
                )
            time.sleep(0.5)
    finally:
        streams_lag.close()
        sink_lag.close()


def format_summary(s: DemoSummary) -> str:
    lines = [
        f"roadx national demo — {s.provinces} provinces"
        + (f" and {', '.join(s.other_parties)}" if s.other_parties else "") + f", {s.seconds}s",
        f"  produced            {s.produced:>10,}  (injected: {s.injected_duplicates:,} duplicates, {s.injected_invalid:,} invalid)",
        f"  stored              {s.stored_events:>10,}",
        f"  duplicates dropped  {s.duplicates_dropped:>10,}",
        f"  rejected            {s.rejected:>10,}  " + ", ".join(f"{r}={n}" for r, n in sorted(s.rejected_by_rule.items())),
        f"  unchanged / stale   {s.unchanged:>10,} / {s.stale:,}",
        f"  quality findings    {sum(s.findings_by_dimension.values()):>10,}  "
        + ", ".join(f"{d}={n}" for d, n in s.findings_by_dimension.items()),
        f"  routed cases        {sum(s.routed_by_target.values()):>10,}  to {len(s.routed_by_target)} parties",
    ]
    lines += [f"    → {q}  {n:>8,}" for q, n in sorted(s.routed_by_target.items())]
    lines.append(f"  case workflows      {s.cases.workflows:>10,}  received {s.cases.received:,}, answered "
                 f"{s.cases.answered:,} (each party acknowledged every case and answered every other one)")
    lines.append(f"  information service {s.service.agreed:>6,} of {s.service.checked:,} answers agree with the store "
                 f"(licence verifications and operators, asked as party {s.service.party}; caught up "
                 f"{s.service.caught_up_seconds:.1f}s after the line drained)")
    lines.append(f"  submissions         {s.submissions:>10,}  receipts signed by the hub: "
                 + (", ".join(f"{status} {n:,}" for status, n in sorted(s.receipts.items())) or "none"))
    lines.append(f"  evidence log        {s.evidence_entries:>10,}  entries, every signature and the hash chain "
                 + ("checked" if not s.evidence_problems else f"with {len(s.evidence_problems)} problems"))
    lines.append(f"  keys                {s.keys}")
    lines.append("  rows per table")
    width = max(map(len, s.table_rows), default=0) + 2
    lines += [f"    {t:<{width}}{n:>10,}" for t, n in s.table_rows.items()]
    verdict = "reconciled: produced = stored + duplicates dropped + rejected" if s.reconciled else "NOT reconciled:"
    lines.append(verdict)
    lines += [f"  - {p}" for p in s.problems]
    return "\n".join(lines)
