"""``roadx check``: a daily file judged offline by the adapter's parser and the stream stage's rules."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from openpyxl import Workbook

from deploy import cli
from deploy.check import CheckError, CheckOptions, check_file, load_snapshot
from producers.files.adapter import file_event
from producers.files.daily_file import parse_daily_file, write_error_report
from producers.files.snapshot import FileState, diff_snapshot
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.topics import TopicNames
from streams.pipeline import Inbound, StageContext, process_batch

HEADER = ["车牌号码", "车牌颜色", "车辆类型", "统一社会信用代码", "车架号", "核定座位", "核定吨位", "道路运输证号", "状态"]
KNOWN = "91350100M000100Y43"  # in the snapshot
STRANGER = "91110000600037341L"  # valid, in no register
ROWS = [
    ["粤B12345", "黄", "旅游客车", KNOWN, "LFV1A2B3C4D5E6F70", "45", "", "440300001", "正常"],  # 2: good
    ["粤B12346", "黄", "旅游客车", "91350100M000100Y44", "LFV1A2B3C4D5E6F71", "45", "", "440300002", "正常"],  # 3: bad USCC
    ["粤B12347", "黄", "", KNOWN, "LFV1A2B3C4D5E6F72", "45", "", "440300003", "正常"],  # 4: no vehicle class
    ["粤B12348", "黄", "普通货车", KNOWN, "LFV1A2B3C4D5E6F73", "", "18吨", "x" * 1100, "营运"],  # 5: stage: too long
    ["京A12349", "黄", "普通货车", KNOWN, "", "", "18吨", "440300005", "营运"],  # 6: warnings only
    ["粤B12350", "黄", "普通货车", STRANGER, "LFV1A2B3C4D5E6F75", "", "18吨", "440300006", "营运"],  # 7: unknown operator
    ["粤B12345", "黄", "旅游客车", KNOWN, "LFV1A2B3C4D5E6F70", "45", "", "440300001", "正常"],  # 8: duplicate of 2
]
GOOD = [ROWS[0], ROWS[4]]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("ROADX_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROADX_DATA_DIR", str(tmp_path / "roadx"))


def write_csv(path: Path, rows: list[list[str]], encoding: str = "gbk", header: list[str] = HEADER) -> Path:
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "current_operators.csv"  # as a download of current_operators gives it
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["entity_key", "province", "uscc", "name", "status"])
        writer.writerow([f"operator:{KNOWN}", "35", KNOWN, "福州运输有限公司", "active"])
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_row_report_is_the_adapters_for_the_same_gbk_file(tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", ROWS)
    result = check_file(path, "44", "vehicle", CheckOptions(report=tmp_path / "check.errors.csv"))
    parsed = parse_daily_file(path, "vehicle")
    adapters = write_error_report(path, parsed.failures + parsed.notes, tmp_path / "adapter.errors.csv")
    assert result.encoding == "gb18030" and result.rows == 7
    assert (tmp_path / "check.errors.csv").read_bytes() == adapters.read_bytes()
    adapter_rows = [(f.row, f.field, f.rule) for f in result.findings if f.stage == "adapter"]
    assert adapter_rows == [(f.row, f.field, f.rule) for f in parsed.failures]
    assert adapter_rows == [(3, "operator_uscc", "invalid_uscc"), (4, "vehicle_class", "missing_required"),
                            (8, None, "duplicate_key")]


def test_report_goes_beside_the_file_by_default_and_a_clean_file_leaves_none(tmp_path):
    bad = write_csv(tmp_path / "vehicles.csv", ROWS)
    assert check_file(bad, "44", "vehicle").report == tmp_path / "vehicles.csv.errors.csv"
    good = write_csv(tmp_path / "good.csv", [ROWS[0]])
    (tmp_path / "good.csv.errors.csv").write_text("stale", "utf-8")
    assert check_file(good, "44", "vehicle").report is None
    assert not (tmp_path / "good.csv.errors.csv").exists()


def stage_verdicts(path: Path, snapshot_keys: dict[str, str]) -> tuple[dict[str, str], set[tuple[str, str, str]]]:
    """The same file's events signed and run through ``process_batch``: DLQ rule per entity key,
    and every (entity key, rule, severity) the stage publishes on national.quality."""
    topics, codec, secret = TopicNames("t."), EventCodec(EmbeddedRegistry()), b"a-test-event-secret"
    parsed = parse_daily_file(path, "vehicle")
    state = FileState("f" * 64, path.name, "started", 0, 1_717_200_000_000, "")
    batch = [Inbound(topics.province_changes("44"), 0, offset, change.key.encode(),
                     codec.encode(file_event("44", "vehicle", state, offset + 1, change, True, None), secret))
             for offset, change in enumerate(diff_snapshot({}, parsed.current, parsed.bad_keys))]
    ctx = StageContext(codec, topics, {"44": (secret,)}, frozenset({"44", "35", "11"}))
    stage_state = {f"reg:{key}": entry for key, entry in snapshot_keys.items()}
    result = process_batch(batch, ctx, stage_state)
    dlq = {dict(o.headers)[th.DLQ_ENTITY_KEY].decode(): dict(o.headers)[th.DLQ_RULE].decode()
           for o in result.outputs if o.topic == topics.national_dlq}
    quality = {(f["entity_key"], f["rule"], f["severity"]) for f in
               (ctx.findings.decode(o.value) for o in result.outputs if o.topic == topics.national_quality)}
    return dlq, quality


def test_stage_rejections_and_warnings_are_those_of_the_stream_stage(tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", ROWS)
    result = check_file(path, "44", "vehicle", CheckOptions(snapshot=load_snapshot(snapshot_file(tmp_path))))
    dlq, quality = stage_verdicts(path, {f"operator:{KNOWN}": "35"})
    hub = [f for f in result.findings if f.stage == "hub"]
    assert {f.key: f.rule for f in hub if f.severity == "error"} == dlq == {"vehicle:粤B12348:2": "field_too_long"}
    assert {(f.key, f.rule, f.severity) for f in hub} == quality
    assert ("vehicle:粤B12350:2", "unknown_operator", "warning") in quality
    assert ("vehicle:京A12349:2", "plate_province_mismatch", "warning") in quality


def test_snapshot_finds_an_unknown_operator_and_scores_references(tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", ROWS)
    checked = check_file(path, "44", "vehicle", CheckOptions(snapshot=load_snapshot(snapshot_file(tmp_path))))
    unknown = [f for f in checked.findings if f.rule == "unknown_operator"]
    assert [(f.row, f.field, f.dimension) for f in unknown] == [(7, "operator_uscc", "relational")]
    assert f"operator:{STRANGER}" in unknown[0].message
    relational = checked.scores[2]
    assert (relational.dimension, relational.checked, relational.passed, relational.rows) == ("relational", True, 5, 7)
    blind = check_file(path, "44", "vehicle")
    assert not any(f.rule == "unknown_operator" for f in blind.findings)
    assert blind.scores[2].checked is False and blind.scores[2].percent is None


def test_scores_come_in_the_plans_order_with_counts(tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", ROWS)
    result = check_file(path, "44", "vehicle")
    assert [s.dimension for s in result.scores] == ["completeness", "conformity", "relational"]
    # completeness: row 4 lacks a required field, row 6 its expected VIN; conformity: rows 3, 5, 8
    assert [(s.passed, s.rows) for s in result.scores[:2]] == [(5, 7), (4, 7)]
    assert result.scores[0].percent == 71.4
    assert result.rejected_rows == 4 and result.exit_status == 1


def test_cli_prints_scores_and_first_findings_and_exits_1_on_a_rejected_row(clean_env, capsys, tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", ROWS)
    status, out, _ = run(["check", str(path), "--party", "44", "--register", "vehicle", "--show", "2"], capsys)
    assert status == 1
    lines = out.splitlines()
    scores = [line for line in lines if line.lstrip().startswith(("1.", "2.", "3."))]
    assert "完整性 completeness" in scores[0] and "5/7 rows  71.4%" in scores[0]
    assert "规范性 conformity" in scores[1] and "4/7 rows  57.1%" in scores[1]
    assert "关联性 relational" in scores[2] and "not checked" in scores[2]
    assert "findings (first 2 of" in out and "row 3: error invalid_uscc operator_uscc" in out
    assert "4 of 7 rows would be rejected (exit 1)" in out


def test_warnings_alone_exit_0(clean_env, capsys, tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", GOOD)
    status, out, _ = run(["check", str(path), "--province", "44", "--register", "vehicle"], capsys)
    assert status == 0, out
    assert "plate_province_mismatch" in out and "would accept every row (exit 0)" in out


def test_json_prints_the_whole_result(clean_env, capsys, tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", ROWS)
    snap = snapshot_file(tmp_path)
    status, out, _ = run(["check", str(path), "--party", "44", "--register", "vehicle", "--snapshot", str(snap),
                          "--json"], capsys)
    data = json.loads(out)
    assert status == 1 and data["exit_status"] == 1 and data["accepted"] is False
    assert len(data["findings"]) == len(check_file(path, "44", "vehicle", CheckOptions(
        snapshot=load_snapshot(snap))).findings)
    assert [s["dimension"] for s in data["scores"]] == ["completeness", "conformity", "relational"]
    assert data["scores"][2]["percent"] == 71.4 and data["snapshot"] == [str(snap)]


def xlsx(path: Path, merge: str | None = None, second_sheet: bool = False) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(["车牌号码", "车牌颜色", None, "车辆类型", "统一社会信用代码", "状态"])
    sheet.append(["粤B12345", 2, None, "旅游客车", KNOWN, "正常"])
    if merge:
        sheet.merge_cells(merge)
    if second_sheet:
        book.create_sheet("说明").append(["本表由系统导出"])
    book.save(path)
    return path


@pytest.mark.parametrize("layout, rule", [({"merge": "B1:C1"}, "merged_header"),
                                          ({"merge": "B1:C1", "second_sheet": True}, "extra_sheets")])
def test_xlsx_with_merged_header_or_a_second_sheet_cannot_be_read(clean_env, capsys, tmp_path, layout, rule):
    path = xlsx(tmp_path / "vehicles.xlsx", **layout)
    status, out, _ = run(["check", str(path), "--party", "44", "--register", "vehicle"], capsys)
    assert status == 2
    assert f"cannot be read at all ({rule})" in out
    assert path.exists() and not (tmp_path / "rejected").exists()  # checking moves nothing


def test_a_plain_xlsx_is_checked(tmp_path):
    book = Workbook()
    book.active.append(["车牌号码", "车牌颜色", "车辆类型", "统一社会信用代码", "状态"])
    book.active.append(["粤B12345", 2, "旅游客车", KNOWN, "正常"])
    book.create_sheet("空白")  # an empty extra sheet is no data
    book.save(tmp_path / "vehicles.xlsx")
    result = check_file(tmp_path / "vehicles.xlsx", "44", "vehicle")
    assert (result.status, result.format, result.rows, result.rejected_rows) == ("checked", "xlsx", 1, 0)


@pytest.mark.parametrize("argv, message", [
    (["--party", "99", "--register", "vehicle"], "unknown party '99'"),
    (["--party", "44", "--register", "vehicle", "--snapshot", "nowhere"], "no such snapshot"),
])
def test_bad_usage_exits_2(clean_env, capsys, tmp_path, argv, message):
    path = write_csv(tmp_path / "vehicles.csv", GOOD)
    status, _, err = run(["check", str(path), *argv], capsys)
    assert status == 2 and message in err


def test_a_register_the_party_may_not_publish_exits_2(clean_env, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ROADX_PARTIES", "44,CJ")
    path = write_csv(tmp_path / "vehicles.csv", GOOD)
    status, _, err = run(["check", str(path), "--party", "CJ", "--register", "vehicle"], capsys)
    assert status == 2 and "register_not_allowed: party CJ" in err
    assert run(["check", str(path), "--party", "44", "--register", "vehicle"], capsys)[0] == 0


def test_missing_file_and_unknown_register_exit_2(clean_env, capsys, tmp_path):
    status, _, err = run(["check", str(tmp_path / "none.csv"), "--party", "44", "--register", "vehicle"], capsys)
    assert status == 2 and "no such file" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", str(tmp_path / "none.csv"), "--party", "44", "--register", "bus"])
    assert exc.value.code == 2


def test_mapping_file_is_the_adapters(clean_env, capsys, tmp_path):
    path = write_csv(tmp_path / "vehicles.csv", [r[:8] for r in GOOD], header=HEADER[:8])
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"constants": {"status": "营运"}}, ensure_ascii=False), "utf-8")
    status, out, _ = run(["check", str(path), "--party", "44", "--register", "vehicle"], capsys)
    assert status == 2 and "missing_columns" in out
    status, out, _ = run(["check", str(path), "--party", "44", "--register", "vehicle", "--mapping", str(mapping)],
                         capsys)
    assert status == 0, out


def test_snapshot_formats_and_directories(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "operators.json").write_text(json.dumps([{"entity_key": f"operator:{KNOWN}", "province": "35"}]), "utf-8")
    (folder / "keys.jsonl").write_text(f'"operator:{STRANGER}"\n{{"entity_type": "case", "case_no": "C1", '
                                       f'"stage": "decided"}}\n', "utf-8")
    (folder / "vehicles.tsv").write_text("entity_key\tprovince\nvehicle:粤B12345:2\t\\N\n", "utf-8")
    shutil.copy(snapshot_file(tmp_path), folder / "more.csv")
    snap = load_snapshot(folder)
    assert snap.entries == {f"operator:{KNOWN}": "35", f"operator:{STRANGER}": "snapshot", "case:C1": "snapshot",
                            "vehicle:粤B12345:2": "snapshot"}
    assert snap.last == {"case:C1": {"stage": "decided"}} and len(snap.sources) == 4
    (tmp_path / "bad.json").write_text('[{"name": "no key"}]', "utf-8")
    with pytest.raises(CheckError, match="record 1 names no entity"):
        load_snapshot(tmp_path / "bad.json")


def test_a_case_stage_going_backwards_against_the_snapshot_is_rejected(tmp_path):
    header = ["case_no", "region_code", "stage", "violation_code", "occurred_at", "involved_plate"]
    path = write_csv(tmp_path / "cases.csv", [["C1", "440300", "filed", "V101", "2024-06-01 08:30", "粤B12345"]],
                     header=header)
    (tmp_path / "cases.jsonl").write_text('{"entity_key": "case:C1", "stage": "decided"}\n', "utf-8")
    result = check_file(path, "44", "case", CheckOptions(snapshot=load_snapshot(tmp_path / "cases.jsonl")))
    assert [(f.rule, f.severity) for f in result.findings] == [("case_stage_backwards", "error")]
    assert result.exit_status == 1
    assert check_file(path, "44", "case").exit_status == 0
