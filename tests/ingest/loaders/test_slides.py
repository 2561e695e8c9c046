"""Slide decks (.pptx): one page per slide, its title the heading, notes included."""

from __future__ import annotations

from pathlib import Path

import pytest
from pptx import Presentation
from pptx.util import Inches

from ingest._chunk import chunk_document
from ingest._reasons import Rejection
from ingest.load import load_file

LIMIT = 50 * 1024 * 1024


def deck(path: Path) -> Path:
    prs = Presentation()
    first = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
    first.shapes.title.text = "季度经营回顾"
    first.placeholders[1].text_frame.text = "营收同比增长 12%"
    first.placeholders[1].text_frame.add_paragraph().text = "毛利率 41%"
    first.notes_slide.notes_text_frame.text = "强调华东区贡献最大。"
    prs.slides.add_slide(prs.slide_layouts[6])  # blank: no text at all
    third = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    third.shapes.title.text = "区域明细"
    table = third.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["区域", "营收(亿)"], ["华东", "5.2"], ["华南", "3.1"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    box = third.shapes.add_textbox(Inches(1), Inches(5), Inches(6), Inches(1))
    box.text_frame.text = "数据截至 9 月 30 日"
    prs.save(path)
    return path


def test_each_slide_is_a_page_with_title_body_tables_and_notes(tmp_path: Path) -> None:
    doc = load_file(deck(tmp_path / "review.pptx"), LIMIT).docs[0]
    assert doc.doc_type == "pptx" and doc.title == "季度经营回顾"
    assert [page.number for page in doc.pages] == [1, 3]  # the empty slide 2 gives no page
    assert doc.pages[0].text == (
        "# 季度经营回顾\n\n营收同比增长 12%\n毛利率 41%\n\n## 备注 Notes\n\n强调华东区贡献最大。"
    )
    assert doc.pages[1].text == (
        "# 区域明细\n\n| 区域 | 营收(亿) |\n|---|---|\n| 华东 | 5.2 |\n| 华南 | 3.1 |\n\n"
        "数据截至 9 月 30 日"
    )
    chunks = chunk_document(doc, 400, 60)
    assert {(c.page, c.headings[0]) for c in chunks} == {(1, "季度经营回顾"), (3, "区域明细")}


def test_a_broken_deck_is_rejected_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "broken.pptx"
    path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip
    with pytest.raises(Rejection) as info:
        load_file(path, LIMIT)
    assert info.value.code == "bad_office" and info.value.zh
