"""A party's daily file checked offline with the hub's own rules (数据校验工具, ``roadx check``).

``check_file`` runs, with no broker and no store, what the file reaches on its way in:

1. the file adapter's reading and row parsing (``producers.files``: tabular reading, header
   labels and ``--mapping``, row conversion), giving the adapter's row failures and notes — the
   same ``<file>.errors.csv`` report the adapter writes. A file the adapter cannot read at all
   (its ``rejected/`` case) is a ``FileRejected``: the result says why, nothing else is checked;
2. each row that parsed, built into the change event the adapter would send (``file_event``: the
   same envelope, ``source`` and submission; unsigned, sent nowhere), encoded and decoded with
   the contract's codec as the hub decodes it, then the stream stage's checks of a decoded
   event: ``streams.validation.validate_shape`` and ``streams.pipeline.event_findings`` (the
   rules of ``streams.rules``), and ``streams.pipeline.rejecting_rule``, the rule the stage
   would put on ``national.dlq``.

Relational rules about a referenced entity (``rules.Rule.refers_to``: a vehicle's operator, a
licence's holder) and a case's stage order need the national register: they run only against a
``Snapshot`` (``load_snapshot``); without one their findings are left out and the relational
score is "not checked". An accepted row's ownership entries (``streams.routing.ownership_keys``)
are added to the registry as the stage adds them.

Scores follow the hub's monthly report (``sinks.report``): per dimension, in the order of the
2019 plan (completeness 完整性, conformity 规范性, relational 关联性), the share of rows without
a finding of that dimension, errors and warnings alike; a row the adapter refuses is scored on
the fault that refused it (``missing_required`` is completeness, every other adapter rule
conformity). A row is rejected when the adapter refuses it or the stage would send its event to
the DLQ; warnings never reject.

A snapshot is the entity keys of the national register, read from a file or every
``.csv``/``.tsv``/``.json``/``.jsonl``/``.ndjson``/``.txt`` file of a directory: CSV or TSV with a
header naming ``entity_key`` (downloads and ``roadx query`` of the ``current_*`` views), JSON (a
list of objects, as ``roadx query --format json`` prints, or ``{"rows": [...]}``), JSON lines (an
object or a key string per line) or text (one key per line). An object without ``entity_key``
gives ``entity_type`` and its key fields; ``province`` says which party's register holds it, and
a case's ``stage`` is its last stage.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from producers.errors import FileRejected
from producers.files.adapter import file_event
from producers.files.daily_file import ParsedFile, parse_daily_file, report_path, write_error_report
from producers.files.snapshot import FileState, diff_snapshot
from producers.files.tabular import ReadLimits
from producers.submissions import file_submission
from schemas import contract
from schemas.codec import EventCodec
from schemas.codes import QUALITY_DIMENSIONS
from schemas.errors import DecodeError, EncodeError
from schemas.registry import make_registry
from streams import routing, rules
from streams.errors import Rejection
from streams.pipeline import event_findings, rejecting_rule
from streams.validation import validate_shape

from .errors import DeployError

COMPLETENESS, CONFORMITY, RELATIONAL = QUALITY_DIMENSIONS
ADAPTER, HUB = "adapter", "hub"  # where a finding is made: the file adapter's parser, the stream stage
EXIT_ACCEPTED, EXIT_REJECTED_ROWS, EXIT_UNREADABLE = 0, 1, 2
SNAPSHOT_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".txt")
_ADAPTER_COMPLETENESS = frozenset({"missing_required"})


class CheckError(DeployError):
    """A check cannot run: a bad option or an unreadable snapshot."""


@dataclass(frozen=True)
class Snapshot:
    """The national register as exported: entity key → registry entry (the party holding it), and
    a case's last state (``{"stage": …}``)."""

    entries: Mapping[str, str]
    last: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckOptions:
    mapping: Mapping[str, str | None] = field(default_factory=dict)
    limits: ReadLimits = ReadLimits()
    uscc_allow: frozenset[str] = frozenset()
    today: dt.date | None = None  # the rules' day (birth dates after it are refused); None: not compared
    snapshot: Snapshot | None = None
    report: Path | None = None  # where the row report goes; None: beside the file, as the adapter writes it


@dataclass(frozen=True)
class Finding:
    row: int
    rule: str
    dimension: str
    severity: str  # error (the row is rejected) | warning
    stage: str  # adapter | hub
    field: str | None
    message: str
    key: str | None = None


@dataclass(frozen=True)
class Score:
    dimension: str
    checked: bool
    rows: int
    passed: int

    @property
    def percent(self) -> float | None:
        return None if not self.checked or not self.rows else round(100.0 * self.passed / self.rows, 1)


@dataclass
class CheckResult:
    path: Path
    party: str
    register: str
    status: str  # checked | unreadable
    rows: int = 0
    format: str = ""
    encoding: str = ""
    rejected_rows: int = 0
    warned_rows: int = 0
    normalised: int = 0
    findings: list[Finding] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    report: Path | None = None
    rule: str | None = None  # why an unreadable file is refused
    reason: str | None = None
    snapshot: tuple[str, ...] | None = None

    @property
    def exit_status(self) -> int:
        if self.status != "checked":
            return EXIT_UNREADABLE
        return EXIT_REJECTED_ROWS if self.rejected_rows else EXIT_ACCEPTED

    def as_dict(self) -> dict[str, Any]:
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()
                if k not in ("findings", "scores")}
        data["accepted"] = self.exit_status == EXIT_ACCEPTED
        data["exit_status"] = self.exit_status
        data["scores"] = [asdict(s) | {"percent": s.percent} for s in self.scores]
        data["findings"] = [asdict(f) for f in self.findings]
        return data


def check_file(path: Path, party: str, register: str, options: CheckOptions = CheckOptions()) -> CheckResult:
    """Check one daily file as the adapter and the stream stage would; never sends or signs anything."""
    path = Path(path)
    result = CheckResult(path, party, register, "checked",
                         snapshot=options.snapshot.sources if options.snapshot is not None else None)
    try:
        parsed = parse_daily_file(path, register, options.mapping, options.limits, options.uscc_allow, None,
                                  options.today)
    except FileRejected as exc:
        result.status, result.rule, result.reason = "unreadable", exc.rule, str(exc)
        return result
    result.rows, result.format, result.encoding = parsed.rows, parsed.format, parsed.encoding
    result.normalised = len(parsed.notes)
    result.report = _write_report(path, parsed, options.report)
    result.findings = _adapter_findings(parsed) + _hub_findings(path, party, register, parsed, options)
    result.findings.sort(key=lambda f: (f.row, f.stage != ADAPTER, f.severity != rules.ERROR))
    rejected = {f.row for f in result.findings if f.severity == rules.ERROR}
    result.rejected_rows = len(rejected)
    result.warned_rows = len({f.row for f in result.findings if f.severity != rules.ERROR} - rejected)
    result.scores = _scores(result.rows, result.findings, options.snapshot is not None)
    return result


def _write_report(path: Path, parsed: ParsedFile, target: Path | None) -> Path | None:
    """The adapter's row report: written when the file has failures or notes; else a stale one beside it goes."""
    if parsed.failures or parsed.notes:
        return write_error_report(path, parsed.failures + parsed.notes, target)
    if target is None:
        report_path(path).unlink(missing_ok=True)
    return None


def _adapter_findings(parsed: ParsedFile) -> list[Finding]:
    return [Finding(f.row, f.rule, COMPLETENESS if f.rule in _ADAPTER_COMPLETENESS else CONFORMITY, rules.ERROR,
                    ADAPTER, f.field, f.message) for f in parsed.failures]


def _hub_findings(path: Path, party: str, register: str, parsed: ParsedFile, options: CheckOptions) -> list[Finding]:
    """The stream stage's verdict on the event of each row that parsed, in file order."""
    codec = EventCodec(make_registry(None))
    fingerprint, mtime_ms = _fingerprint(path)
    state = FileState(fingerprint, path.name, "started", 0, mtime_ms, "")
    submission = file_submission(party, register, fingerprint)
    snapshot = options.snapshot
    owners: dict[str, str] = dict(snapshot.entries) if snapshot is not None else {}
    last = snapshot.last if snapshot is not None else {}
    findings: list[Finding] = []
    for index, change in enumerate(diff_snapshot({}, parsed.current, parsed.bad_keys)):
        row = change.row or 0
        try:
            value = codec.encode(file_event(party, register, state, index + 1, change, True, submission))
            event = codec.decode(value)[1]
            validate_shape(event)
        except EncodeError as exc:
            findings.append(Finding(row, "event_encode_error", CONFORMITY, rules.ERROR, ADAPTER, None, str(exc),
                                    change.key))
            continue
        except DecodeError as exc:
            findings.append(Finding(row, exc.rule, CONFORMITY, rules.ERROR, HUB, None, str(exc), change.key))
            continue
        except Rejection as exc:
            findings.append(Finding(row, exc.rule, CONFORMITY, rules.ERROR, HUB, None, exc.message, change.key))
            continue
        found = event_findings(event, owners.get, last.get(event["entity_key"]), options.uscc_allow, options.today)
        if snapshot is None:  # who is registered is not known here: the reference rules cannot be judged
            found = [f for f in found if f.rule.refers_to is None]
        findings += [Finding(row, f.rule.code, f.rule.dimension, f.rule.severity, HUB, f.rule.field, f.text,
                             change.key) for f in found]
        if rejecting_rule(found) is None:
            for key in routing.ownership_keys(event):
                owners[key] = routing.owner_entry(party, routing.registration_region(event))
    return findings


def _fingerprint(path: Path) -> tuple[str, int]:
    """SHA-256 of the content and the mtime in ms, as the adapter takes them."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), path.stat().st_mtime_ns // 1_000_000


def _scores(rows: int, findings: list[Finding], relational: bool) -> list[Score]:
    scores = []
    for dimension in (COMPLETENESS, CONFORMITY, RELATIONAL):
        failed = {f.row for f in findings if f.dimension == dimension}
        checked = relational or dimension != RELATIONAL
        scores.append(Score(dimension, checked, rows, rows - len(failed) if checked else 0))
    return scores


# ---- snapshots of the national register -------------------------------------------------

def load_snapshot(where: Path) -> Snapshot:
    """Read a snapshot file, or every snapshot file of a directory; raises ``CheckError``."""
    where = Path(where)
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if p.is_file() and p.suffix.lower() in SNAPSHOT_SUFFIXES)
        if not files:
            raise CheckError(f"snapshot directory {where} holds no {', '.join(SNAPSHOT_SUFFIXES)} file")
    elif where.is_file():
        files = [where]
    else:
        raise CheckError(f"no such snapshot file or directory: {where}")
    entries: dict[str, str] = {}
    last: dict[str, dict[str, Any]] = {}
    for file in files:
        for number, item in enumerate(_snapshot_items(file), start=1):
            key, province, stage = _snapshot_entry(item, file, number)
            entries[key] = province or "snapshot"
            if stage:
                last[key] = {"stage": stage}
    return Snapshot(entries, last, tuple(str(f) for f in files))


def _snapshot_items(file: Path) -> Iterable[Any]:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise CheckError(f"cannot read snapshot {file}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise CheckError(f"snapshot {file} is neither UTF-8 nor GBK text") from exc
    suffix = file.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
            return [{k: (None if v in ("", "\\N", "NULL") else v) for k, v in row.items() if k} for row in reader]
        if suffix == ".json":
            data = json.loads(text)
            data = data.get("rows", data.get("data")) if isinstance(data, dict) else data
            if not isinstance(data, list):
                raise CheckError(f"snapshot {file}: expected a JSON list of records or {{\"rows\": [...]}}")
            return data
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return [json.loads(line) for line in lines] if suffix in (".jsonl", ".ndjson") else lines
    except (ValueError, csv.Error) as exc:
        raise CheckError(f"snapshot {file} cannot be read as {suffix[1:]}: {exc}") from exc


def _snapshot_entry(item: Any, file: Path, number: int) -> tuple[str, str | None, str | None]:
    """(entity key, province, case stage) of one snapshot record."""
    if isinstance(item, str) and ":" in item:
        return item, None, None
    if isinstance(item, dict):
        key = item.get("entity_key")
        if not key and item.get("entity_type") in contract.KEY_FIELDS:
            etype = item["entity_type"]
            if all(item.get(name) not in (None, "") for name in contract.KEY_FIELDS[etype]):
                key = contract.entity_key(etype, item)
        if isinstance(key, str) and ":" in key:
            province, stage = item.get("province"), item.get("stage")
            return key, str(province) if province else None, str(stage) if stage else None
    raise CheckError(f"snapshot {file} record {number} names no entity: give entity_key (e.g. operator:<USCC>), "
                     f"or entity_type and its key fields")
