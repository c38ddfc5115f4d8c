"""Reading daily files: encodings, binary and empty files, line limits, XLSX, formula detection."""

from __future__ import annotations

import pytest
from openpyxl import Workbook

from producers.errors import FileRejected
from producers.files.tabular import ReadLimits, detect_encoding, formula_like, open_table

HEADER = "统一社会信用代码,业户名称,行政区划代码,状态\n"
ROW = "91350100M000100Y43,福州顺达运输有限公司,350100,正常\n"


def read(path, limits=ReadLimits()):
    table = open_table(path, limits)
    try:
        return table, list(table.rows)
    finally:
        table.close()


@pytest.mark.parametrize("encoding, expected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"),
                                                ("gbk", "gb18030"), ("gb18030", "gb18030")])
def test_chinese_csv_is_read_in_each_supported_encoding(tmp_path, encoding, expected):
    path = tmp_path / "operators.csv"
    path.write_bytes((HEADER + ROW).encode(encoding))
    table, rows = read(path)
    assert table.encoding == expected
    assert table.header == ("统一社会信用代码", "业户名称", "行政区划代码", "状态")
    assert rows[0].cells == ("91350100M000100Y43", "福州顺达运输有限公司", "350100", "正常")
    assert rows[0].number == 2


def test_binary_file_named_csv_is_rejected(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(FileRejected) as caught:
        open_table(path)
    assert caught.value.rule == "binary_content"


def test_workbook_named_csv_is_rejected_as_an_archive(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_bytes(b"PK\x03\x04" + b"x" * 100)
    with pytest.raises(FileRejected, match="ZIP archive"):
        open_table(path)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_bytes(b"")
    with pytest.raises(FileRejected) as caught:
        open_table(path)
    assert caught.value.rule == "empty_file"


def test_file_of_blank_lines_has_no_header(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text("\n  \n\n", "utf-8")
    with pytest.raises(FileRejected) as caught:
        open_table(path)
    assert caught.value.rule == "no_header"


def test_unsupported_format_is_rejected(tmp_path):
    path = tmp_path / "operators.pdf"
    path.write_bytes(b"%PDF-1.4")
    with pytest.raises(FileRejected, match="only .csv and .xlsx"):
        open_table(path)


def test_file_beyond_the_size_limit_is_rejected(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(HEADER + ROW * 10, "utf-8")
    with pytest.raises(FileRejected) as caught:
        open_table(path, ReadLimits(max_file_bytes=100))
    assert caught.value.rule == "file_too_large"


def test_line_beyond_the_size_limit_is_reported_and_the_next_rows_are_read(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(HEADER + ROW + "9" * 5000 + ",x,y,z\n" + ROW, "utf-8")
    _table, rows = read(path, ReadLimits(max_line_bytes=1000))
    assert [r.number for r in rows] == [2, 3, 4]
    assert rows[1].error is not None and rows[1].error.rule == "line_too_long"
    assert "5007 bytes" in rows[1].error.detail
    assert rows[0].error is None and rows[2].cells == rows[0].cells


def test_tab_separated_file_is_read(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text((HEADER + ROW).replace(",", "\t"), "utf-8")
    table, rows = read(path)
    assert len(table.header) == 4 and len(rows[0].cells) == 4


def test_quoted_field_spanning_lines_is_one_row(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(HEADER + '91350100M000100Y43,"福州\n顺达",350100,正常\n' + ROW, "utf-8")
    _table, rows = read(path)
    assert rows[0].cells[1] == "福州\n顺达" and len(rows) == 2


def test_invalid_byte_sequence_later_in_the_file_fails_only_its_line(tmp_path):
    path = tmp_path / "operators.csv"
    good = ROW * 2000  # past the 64 KiB sample the encoding is detected from
    path.write_bytes((HEADER + good).encode("utf-8") + b"\xff\xfe\xfd,x,y,z\n" + ROW.encode("utf-8"))
    table, rows = read(path)
    assert table.encoding == "utf-8" and len(rows) == 2002
    assert [(r.number, r.error.rule) for r in rows if r.error] == [(2002, "undecodable_line")]
    assert rows[-1].cells == rows[0].cells


def test_xlsx_rows_come_as_text_with_formulas_visible(tmp_path):
    path = tmp_path / "vehicles.xlsx"
    book = Workbook()
    sheet = book.active
    sheet.append(["车牌号码", "车牌颜色", "核定座位", "有效期起"])
    sheet.append(["粤B12345", 2, 45.0, __import__("datetime").date(2024, 6, 1)])
    sheet.append(["粤B12346", "=1+1", None, None])
    book.save(path)
    table, rows = read(path)
    assert table.format == "xlsx" and table.header == ("车牌号码", "车牌颜色", "核定座位", "有效期起")
    assert rows[0].cells == ("粤B12345", "2", "45", "2024-06-01")
    assert rows[1].cells[1] == "=1+1"


def test_file_named_xlsx_that_is_not_a_workbook_is_rejected(tmp_path):
    path = tmp_path / "vehicles.xlsx"
    path.write_text(HEADER, "utf-8")
    with pytest.raises(FileRejected) as caught:
        open_table(path)
    assert caught.value.rule == "not_xlsx"


@pytest.mark.parametrize("value", ["=cmd|' /C calc'!A0", "@SUM(A1)", "+cmd|x", "-2+3+cmd|x", "\t=1"])
def test_formula_like_values_are_recognised(value):
    assert formula_like(value)


@pytest.mark.parametrize("value", ["", "-12", "+8613800000000", "+86 (138) 0000-0000", "-", "--", "1,000",
                                   "粤B12345", "a=b"])
def test_ordinary_values_are_not_formulas(value):
    assert not formula_like(value)


def test_encoding_that_is_neither_utf8_nor_gb18030_is_rejected():
    with pytest.raises(FileRejected) as caught:
        detect_encoding(b"\xff\xff\xff\xff abc")
    assert caught.value.rule == "unknown_encoding"
