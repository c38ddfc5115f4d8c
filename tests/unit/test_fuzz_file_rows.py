"""Fuzzing the daily-file parser: random cells, odd numbers and dates, formula prefixes,
missing and extra columns, random encodings of CSV bytes and random XLSX workbooks.

Each row becomes a record or a ``BadRow`` naming a field (or the whole row) and a rule,
never both, never neither; a file that cannot be read at all is a ``FileRejected`` with a
rule. A parsed record must become an event: it encodes with the contract's codec.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from pathlib import Path

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from producers.files.daily_file import parse_daily_file
from producers.errors import FileRejected, BadRow
from producers.files.adapter import file_event
from producers.files.headers import DEFAULT_LABELS
from producers.files.rows import RowParser
from producers.files.snapshot import Change, FileState
from producers.files.tabular import ReadLimits
from schemas import contract
from schemas.codec import EventCodec
from schemas.contract import field_specs, required_fields
from schemas.errors import EncodeError
from schemas.registry import EmbeddedRegistry

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FILES = settings(FUZZ, max_examples=150)
CODEC = EventCodec(EmbeddedRegistry())
ENTITIES = contract.ENTITY_TYPES
# Rules that concern a whole row rather than one of its fields.
ROW_RULES = {"wrong_column_count", "line_too_long", "undecodable_line", "malformed_csv", "duplicate_key"}
LIMITS = ReadLimits(max_line_bytes=4000)

GOOD = {  # cells a province would send, per field
    "uscc": ["91350100M000100Y43", "91110000600037341L", "91350100m000100y43"],
    "operator_uscc": ["91350100M000100Y43"], "employer_uscc": ["91110000600037341L", ""],
    "involved_operator_uscc": ["91110000600037341L", ""],
    "region_code": ["350100", "110105", "440300"], "issuer_region_code": ["350100", "120128"],
    "id_number": ["11010519491231002X", "11010519491231002x"], "legal_rep_id_number": ["11010519491231002X", ""],
    "involved_id_number": ["11010519491231002X", ""],
    "plate": ["闽A12345", "粤b12345", "京AD12345", "闽A1234挂"], "involved_plate": ["京A12345", ""],
    "plate_color": ["2", "黄", "93", "黄绿"], "vehicle_class": ["truck", "危险货物运输车", "班线客车"],
    "stage": ["立案", "filed", "结案", "decided"],
    "licence_type": ["道路运输证", "operating_permit", "从业资格证"],
    "valid_from": ["2024-06-01", "2024/6/1", "20240601", "2024年6月1日"], "valid_until": ["2030-01-01", "2099-12-31"],
    "occurred_at": ["2024-06-01 08:30:00", "2024-06-01", "2024/06/01 8:30", "2024-06-01T08:30:00+08:00"],
    "seats": ["45", "", "1,200"], "tonnage_kg": ["18000", "18t", "10.5吨", "1800千克", ""],
    "penalty_cents": ["20000", ""], "qualification_types": ["货运驾驶员；押运人员", ""],
    "holder_key": ["operator:91350100M000100Y43"],
}
GOOD.update({  # the water registers' fields
    "owner_uscc": ["91350100M000100Y43"], "imo": ["9074729", "IMO 9074729", ""], "mmsi": ["413000001", ""],
    "ship_id": ["CN20190001"], "port_of_registry": ["武汉"], "gross_tonnage": ["1200", "1,200", ""],
    "ship_type": ["散货船", "bulk_carrier", "渔船"], "business_scope": ["国内沿海；省际", "inland", ""],
    "port": ["宁波舟山港"], "total_investment_yuan": ["1200000", "3200万元", "1.5亿元", ""],
    "start_date": ["2024-06-01", ""], "end_date": ["2026-12-31", ""],
})
STATUS = {"operator": ["正常", "active", "注销"], "vehicle": ["营运", "active", "报废"],
          "practitioner": ["有效", "active"], "licence": ["有效", "valid", "过期"],
          "ship": ["营运", "active", "停航"], "shipping_enterprise": ["营业", "active"],
          "port_enterprise": ["正常", "closed"], "waterway_project": ["在建", "completed", "已审批"]}
ODD_NUMBERS = ["-1", "+5", "0", "00012", "1e5", "1.5", "12.0", "12.", "１２", "٤٥", "9" * 11, "9" * 20, "9" * 400,
               "-" + "9" * 30, "99999999999t", "0.0001t", "1,2,3", "NaN", "inf", "-0", "4 5"]
ODD_DATES = ["2024-13-01", "2024-02-30", "0000-01-01", "0001-01-01", "9999-12-31", "9999-12-31 23:59:59",
             "0001-01-01 00:00:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "31/12/2024",
             "2024.6.1", "2024年6月1日 25:00", "20241301", "2024-06-01T08:30:00Z", "2024-06-01 24:00",
             "２０２４-06-01", "2024-06-01 8:61", "1970-01-01", "2024-06"]
FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")", "+", "-",
            "--", "+86 138-0000-0000"]
odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
control_text = st.text(st.characters(min_codepoint=1, max_codepoint=0x1F), max_size=8)
long_text = st.integers(1000, 1500).map(lambda n: "长" * n)  # 3000..4500 bytes, around the line limit


def wild_cells() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ODD_NUMBERS + ODD_DATES + FORMULAS), odd_text, control_text, long_text,
                     st.integers(-(2**70), 2**70).map(str), st.floats().map(str))


def good_cells(entity: str, field: str | None) -> st.SearchStrategy[str]:
    if field == "status":
        return st.sampled_from(STATUS[entity])
    return st.sampled_from(GOOD[field]) if field in GOOD else st.sampled_from(["C-1", "张伟", "粤交执〔2024〕1号"])


@st.composite
def layouts(draw):
    """(entity, header labels, canonical column fields): every required column, some optional ones."""
    entity = draw(st.sampled_from(ENTITIES))
    fields = [s.name for s in field_specs(entity)]
    required = required_fields(entity)
    chosen = [f for f in fields if f in required or draw(st.booleans())]
    chosen = draw(st.permutations(chosen))
    aliases = {}
    for label, field in DEFAULT_LABELS[entity].items():
        aliases.setdefault(field, []).append(label)
    labels = [draw(st.sampled_from([f, *aliases.get(f, [])])) for f in chosen]
    return entity, labels, list(chosen)


@st.composite
def rows_for(draw, entity: str, columns: list[str | None]):
    """One row: plausible cells with up to three replaced by wild ones; sometimes narrower or wider."""
    cells = [draw(good_cells(entity, field)) for field in columns]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        if cells:
            cells[draw(st.integers(0, len(cells) - 1))] = draw(wild_cells())
    shape = draw(st.sampled_from(["same"] * 8 + ["missing", "extra", "extra_blank"]))
    if shape == "missing" and cells:
        cells = cells[: draw(st.integers(0, len(cells) - 1))]
    elif shape == "extra":
        cells += draw(st.lists(wild_cells(), min_size=1, max_size=3))
    elif shape == "extra_blank":
        cells += [""] * draw(st.integers(1, 3))
    return tuple(cells)


def row_outcome(parser: RowParser, cells: tuple[str, ...]):
    """A record, or the BadRow: exactly one of them, and nothing else escapes."""
    try:
        return parser.parse(cells), None
    except BadRow as exc:
        return None, exc


def check_row_error(entity: str, error: BadRow) -> None:
    fields = {s.name for s in field_specs(entity)}
    assert error.rule and error.detail and isinstance(error.rule, str)
    assert error.field in fields or (error.field is None and error.rule in ROW_RULES), (error.field, error.rule)


@st.composite
def parsed_rows(draw):
    entity, _labels, columns = draw(layouts())
    return entity, columns, draw(rows_for(entity, columns))


@FUZZ
@given(parsed_rows())
def test_each_row_becomes_a_record_or_a_row_error_naming_field_and_rule(case):
    entity, columns, cells = case
    parser = RowParser(entity, tuple(columns))
    record, error = row_outcome(parser, cells)
    assert (record is None) != (error is None)
    if error is not None:
        check_row_error(entity, error)
        parser.key_of(cells)  # a bad row's key is known or None, never an exception
        return
    assert set(record) == {s.name for s in field_specs(entity)}
    assert parser.key_of(cells) == contract.entity_key(entity, record)


FILE_STATE = FileState("f" * 64, "fuzz.csv", "started", 0, 1_717_200_000_000, "")


def as_event(entity: str, record: dict) -> dict:
    key = contract.entity_key(entity, record)
    return file_event("35", entity, FILE_STATE, 1, Change("c", key, None, record, 2), snapshot=True)


@FUZZ
@given(parsed_rows())
@example(("vehicle", ["plate", "plate_color", "vehicle_class", "operator_uscc", "status", "seats"],
          ("闽A12345", "2", "truck", "91350100M000100Y43", "active", "99999999999")))
@example(("vehicle", ["plate", "plate_color", "vehicle_class", "operator_uscc", "status", "tonnage_kg"],
          ("闽A12345", "2", "truck", "91350100M000100Y43", "active", "99999999999t")))
@example(("case", ["case_no", "region_code", "stage", "violation_code", "occurred_at", "penalty_cents"],
          ("C1", "350100", "立案", "V1", "2024-06-01", "9" * 20)))
@example(("case", ["case_no", "region_code", "stage", "violation_code", "occurred_at"],
          ("C1", "350100", "立案", "V1", "0001-01-01 00:00:00")))
def test_every_parsed_row_becomes_an_event_the_codec_carries(case):
    entity, columns, cells = case
    record, _error = row_outcome(RowParser(entity, tuple(columns)), cells)
    if record is None:
        return
    try:
        CODEC.decode(CODEC.encode(as_event(entity, record)))
    except EncodeError as exc:
        raise AssertionError(f"row {cells!r} parsed to {record!r} but is no event: {exc}") from exc


# ---- whole files ----------------------------------------------------------------------------------

ENCODINGS = ["utf-8"] * 3 + ["utf-8-sig", "gbk", "gb18030"] * 2 + ["utf-16", "latin-1", "big5", "shift_jis"]


def encode_text(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, errors="replace")


@st.composite
def csv_files(draw):
    entity, labels, columns = draw(layouts())
    if draw(st.integers(0, 9)) == 0:
        labels.append(draw(st.sampled_from(["备注", "remark", ""])))  # a column no mapping knows
        columns.append(None)
    rows = draw(st.lists(rows_for(entity, columns), max_size=12))
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(labels)
    for row in rows:
        if draw(st.integers(0, 9)) == 0:
            out.write(delimiter.join(row) + "\n")  # unquoted: stray quotes and delimiters as they come
        else:
            writer.writerow(row)
    encoding = draw(st.sampled_from(ENCODINGS))
    return entity, encode_text(out.getvalue(), encoding)


def check_file_accounted_for(entity: str, path: Path):
    """Every data row read is a record or a failure, once; or the whole file is rejected with a rule."""
    try:
        parsed = parse_daily_file(path, entity, limits=LIMITS)
    except FileRejected as exc:
        assert exc.rule and str(exc)
        return None
    numbers = [number for number, _record in parsed.current.values()] + [f.row for f in parsed.failures]
    assert len(numbers) == len(set(numbers)) == parsed.rows
    for failure in parsed.failures:
        check_row_error(entity, BadRow(failure.field, failure.rule, failure.message))
    for key, (_number, record) in parsed.current.items():
        assert key == contract.entity_key(entity, record)
    return parsed


@FILES
@given(csv_files())
def test_each_row_of_a_fuzzed_csv_file_is_a_record_or_a_failure(tmp_path_factory, case):
    entity, content = case
    path = tmp_path_factory.getbasetemp() / f"{uuid.uuid4().hex}.csv"
    path.write_bytes(content)
    try:
        check_file_accounted_for(entity, path)
    finally:
        path.unlink()


@FILES
@given(layouts(), st.lists(st.lists(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.floats(allow_nan=False, allow_infinity=False)
    | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(9999, 12, 31)) | st.dates()
    | st.sampled_from(FORMULAS[:1] + ODD_NUMBERS + ODD_DATES + sum(GOOD.values(), []))
    | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20), max_size=9), max_size=10))
def test_each_row_of_a_fuzzed_workbook_is_a_record_or_a_failure(tmp_path_factory, layout, rows):
    entity, labels, _columns = layout
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(labels)
    for row in rows:
        sheet.append(row)
    path = tmp_path_factory.getbasetemp() / f"{uuid.uuid4().hex}.xlsx"
    workbook.save(path)
    try:
        parsed = check_file_accounted_for(entity, path)
    finally:
        path.unlink()
    assert parsed is not None  # a workbook written by openpyxl with a known header is always read
    written = sum(1 for row in rows if any(v is not None and str(v).strip() for v in row))
    assert parsed.rows == written


@FILES
@given(st.sampled_from(ENTITIES), st.binary(max_size=400), st.sampled_from([".csv", ".xlsx", ".txt"]))
@example("operator", b"PK\x03\x04" + b"\x00" * 40, ".xlsx")
@example("operator", b"\xff\xfe" + "uscc,name".encode("utf-16-le"), ".csv")
def test_random_bytes_as_a_file_are_read_or_rejected_with_a_rule(tmp_path_factory, entity, content, suffix):
    assume(content)
    path = tmp_path_factory.getbasetemp() / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(content)
    try:
        check_file_accounted_for(entity, path)
    finally:
        path.unlink()




def test_csv_with_classic_mac_line_ends_is_rejected_with_a_rule(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_bytes(b"uscc,name,region_code,status\r91350100M000100Y43,x,350100,active\r")
    check_file_accounted_for("operator", path)
