"""Spreadsheets (.xlsx) and CSV: each sheet a section, rows kept whole under their header, in
chunks that repeat the header; merged cells filled in; large sheets streamed."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from ingest._chunk import chunk_document
from ingest._reasons import Rejection
from ingest.load import load_file

LIMIT = 50 * 1024 * 1024


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_each_sheet_is_a_section_with_its_rows_under_the_header(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "预算.xlsx",
        {
            "2024年": [
                ["部门", "预算(万元)", "负责人"],
                ["研发部", 320, "王芳"],
                ["市场部", 180.5, "李强"],
            ],
            "空表": [],
            "说明": [[None, None], [None, "本表由财务处维护"]],
        },
    )
    doc = load_file(path, LIMIT).docs[0]
    assert doc.doc_type == "xlsx" and doc.structure == "markdown" and doc.title == "预算"
    first, notes = doc.pages  # the empty sheet gives no page
    assert first.text == (
        "## 2024年\n\n"
        "| 部门 | 预算(万元) | 负责人 |\n|---|---|---|\n"
        "| 研发部 | 320 | 王芳 |\n| 市场部 | 180.5 | 李强 |"
    )
    assert notes.text == "## 说明\n\n| 本表由财务处维护 |\n|---|"  # empty rows and columns dropped
    chunks = chunk_document(doc, 400, 60)
    assert chunks[0].headings == ("2024年",) and chunks[0].kind == "table"


def test_merged_cells_repeat_their_value_in_every_row_they_span(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "排班"
    for row in (["区域", "门店", "店长"], ["华东", "上海一店", "赵敏"], [None, "杭州二店", "周杰"],
                [None, "南京店", "吴昊"], ["华南", "深圳店", "郑爽"]):  # fmt: skip
        sheet.append(row)
    sheet.merge_cells("A2:A4")
    sheet["B6"] = "合计三店"
    sheet.merge_cells("B6:C6")
    path = tmp_path / "merged.xlsx"
    book.save(path)
    lines = load_file(path, LIMIT).docs[0].pages[0].text.split("\n")
    assert lines[4:8] == [
        "| 华东 | 上海一店 | 赵敏 |",
        "| 华东 | 杭州二店 | 周杰 |",
        "| 华东 | 南京店 | 吴昊 |",
        "| 华南 | 深圳店 | 郑爽 |",
    ]
    assert lines[8] == "|  | 合计三店 | 合计三店 |"


def test_a_workbook_of_empty_sheets_is_rejected_as_blank(tmp_path: Path) -> None:
    path = workbook(tmp_path / "empty.xlsx", {"Sheet1": [], "Sheet2": [[None, None]]})
    with pytest.raises(Rejection) as info:
        load_file(path, LIMIT)
    assert info.value.code == "blank"


def test_a_file_that_is_not_a_workbook_is_rejected_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(Rejection) as info:
        load_file(path, LIMIT)
    assert info.value.code == "bad_office" and "XLSX" in info.value.en


def test_long_tables_are_chunked_by_whole_rows_with_the_header_repeated(tmp_path: Path) -> None:
    rows = [["工号", "姓名", "部门", "入职日期"]]
    rows += [
        [f"E{i:04d}", f"员工{i}", f"第{i % 7}组", f"2020-01-{i % 28 + 1:02d}"] for i in range(300)
    ]
    doc = load_file(workbook(tmp_path / "staff.xlsx", {"员工": rows}), LIMIT).docs[0]
    chunks = chunk_document(doc, 400, 60)
    assert len(chunks) > 10
    seen = []
    for chunk in chunks:
        lines = [line for line in chunk.text.split("\n") if line and line != "## 员工"]
        assert lines[0] == "| 工号 | 姓名 | 部门 | 入职日期 |" and lines[1] == "|---|---|---|---|"
        body = [line for line in lines[2:] if line]
        assert all(line.startswith("| E") and line.endswith(" |") for line in body)
        seen += body
    assert len(set(seen)) == 300  # every row whole, none lost


_MEASURE = """
import resource, sys
from pathlib import Path
from ingest.load import load_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
doc = load_file(Path(sys.argv[1]), 50 * 2**20).docs[0]
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
text = doc.pages[0].text
print(grown, text.count("\\n"), "| D049999 | 客户149 | 74998.5 | 北京 | 已发货 |" in text)
"""


@pytest.mark.slow
def test_a_50000_row_sheet_loads_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xlsx"
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("订单")
    sheet.append(["订单号", "客户", "金额", "城市", "状态"])
    for i in range(50_000):
        sheet.append([f"D{i:06d}", f"客户{i % 997}", i * 1.5, "北京", "已发货"])
    book.save(path)
    # a fresh process: its peak resident memory is the loader's alone
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    grown_kib, newlines, last_row_whole = int(out[0]), int(out[1]), out[2] == "True"
    assert newlines == 50_000 + 3 and last_row_whole
    # the text is ~2.6 MB (~10 MB as a Python str); openpyxl without read_only keeps every
    # one of the 250,000 cells as an object, several times that
    assert grown_kib < 80 * 1024, f"grew by {grown_kib / 1024:.0f} MiB"


def test_gbk_csv_is_decoded_and_rendered_as_a_table(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(
        [
            ["城市", "人口(万)", "备注"],
            ["杭州", "1252", "省会, 西湖所在地"],
            ["宁波", "969", "港口"],
        ]
    )
    path = tmp_path / "城市.csv"
    path.write_bytes(buffer.getvalue().encode("gbk"))
    doc = load_file(path, LIMIT).docs[0]
    assert doc.doc_type == "csv" and doc.title == "城市"
    assert doc.pages[0].text == (
        "| 城市 | 人口(万) | 备注 |\n|---|---|---|\n"
        "| 杭州 | 1252 | 省会, 西湖所在地 |\n| 宁波 | 969 | 港口 |"
    )


def test_semicolon_csv_and_a_bare_list_both_load(tmp_path: Path) -> None:
    semi = tmp_path / "semi.csv"
    semi.write_text("name;score\nAda;90\nLin;85\n", encoding="utf-8")
    assert load_file(semi, LIMIT).docs[0].pages[0].text.split("\n")[2] == "| Ada | 90 |"
    single = tmp_path / "list.csv"
    single.write_text("苹果\n香蕉\n", encoding="utf-8")
    assert load_file(single, LIMIT).docs[0].pages[0].text == "| 苹果 |\n|---|\n| 香蕉 |"


def test_a_binary_file_named_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(Rejection) as info:
        load_file(path, LIMIT)
    assert info.value.code == "binary"
