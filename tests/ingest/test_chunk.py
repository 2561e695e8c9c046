"""The Chinese-aware splitter: sizes, break points, tables, headings and exact offsets."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from ingest._chunk import chunk_document, split_text
from ingest._load import LoadedDoc, Page

REPO = Path(__file__).resolve().parents[2]


def doc(text: str, structure: str = "plain", pages: tuple[int | None, ...] = (None,)) -> LoadedDoc:
    return LoadedDoc(
        doc_id="d1",
        title="测试文档",
        source="/tmp/d1.txt",
        doc_type="md" if structure == "markdown" else "txt",
        sha256="0" * 64,
        size=len(text.encode()),
        pages=tuple(Page(n, text) for n in pages),
        structure=structure,  # type: ignore[arg-type]
    )


CHINESE = (
    "大模型的训练分为预训练和微调两个阶段。预训练使用海量无标注文本，让模型学会语言的统计规律；"
    "微调则用少量标注数据让模型适应具体任务！参数规模越大，能力通常越强吗？"
    "研究发现，性能随参数、数据和算力近似按幂律增长，这被称为规模定律。"
)


def test_offsets_point_at_the_exact_text() -> None:
    text = (CHINESE + "\n") * 12
    pieces = split_text(text, 200, 40)
    assert len(pieces) > 3
    for start, end, passage, _, _ in pieces:
        assert text[start:end] == passage
        assert passage == passage.strip()


def test_chunks_respect_the_size_and_cover_everything() -> None:
    text = (CHINESE + "\n") * 20
    pieces = split_text(text, 300, 50)
    assert all(len(p) <= 300 for _, _, p, _, _ in pieces)
    covered = set()
    for start, end, *_ in pieces:
        covered.update(range(start, end))
    non_space = {i for i, ch in enumerate(text) if not ch.isspace()}
    assert non_space <= covered


def test_chunks_end_at_chinese_sentence_ends() -> None:
    text = CHINESE * 8  # one long paragraph: only sentence and clause ends to cut at
    pieces = split_text(text, 150, 0)
    for _, _, passage, _, _ in pieces[:-1]:
        assert passage[-1] in "。！？；", passage[-10:]


def test_falls_back_to_commas_then_characters() -> None:
    clauses = "，".join(["这是一个没有句号的很长的从句"] * 40)
    pieces = split_text(clauses, 100, 0)
    assert all(p[-1] == "，" for _, _, p, _, _ in pieces[:-1])
    no_punctuation = "字" * 1000
    pieces = split_text(no_punctuation, 100, 0)
    assert [len(p) for _, _, p, _, _ in pieces] == [100] * 10


def test_overlap_repeats_whole_sentences() -> None:
    text = CHINESE * 10
    pieces = split_text(text, 200, 60)
    for (_, e1, *_), (s2, *_) in pairwise(pieces):
        assert s2 < e1, "neighbouring chunks should overlap"
        assert e1 - s2 <= 60
        assert (
            text[s2 - 1] in "。！？；，" or s2 == 0
        )  # starts right after a sentence or clause end


def test_a_table_row_is_never_cut_and_the_header_is_repeated() -> None:
    header = "| 模型 | 位数 | 显存(GB) |\n|---|---|---|\n"
    rows = "".join(f"| {n}B | {b} | {n * b / 8:.1f} |\n" for n in range(1, 40) for b in (4, 8))
    text = "显存占用如下表所示。\n" + header + rows + "表格结束后的说明文字。"
    pieces = split_text(text, 200, 40, "markdown")
    table_pieces = [p for p in pieces if p[4] == "table"]
    assert len(table_pieces) > 3
    assert table_pieces[0][2].startswith("显存占用如下表所示。\n| 模型")  # the caption stays
    for start, end, passage, _, _ in table_pieces:
        rows_in = [line for line in passage.splitlines() if "|" in line]
        assert rows_in[0] == "| 模型 | 位数 | 显存(GB) |"
        assert rows_in[1] == "|---|---|---|"
        for line in rows_in:
            assert line.startswith("|") and line.endswith("|"), line  # whole rows only
        assert text[start:end] in passage  # the offsets cover the rows themselves


def test_pipe_tables_without_leading_pipes_are_tables_too() -> None:
    text = "大小 | 位数 | 显存 |\n---|---|---|\n" + "".join(
        f"{i}B | 4 | {i * 0.6:.1f} |\n" for i in range(60)
    )
    pieces = split_text(text, 150, 0)
    assert len(pieces) > 2
    assert all(p.startswith("大小 | 位数 | 显存 |\n---|---|---|") for _, _, p, _, _ in pieces)


def test_markdown_headings_stay_with_their_text_and_give_a_path() -> None:
    section = "正文内容。" * 30
    text = f"# 第一章 总论\n\n{section}\n\n## 1.1 背景\n\n{section}\n\n## 1.2 目标\n\n{section}\n"
    pieces = split_text(text, 200, 0, "markdown")
    for _, _, passage, path, _ in pieces:
        assert not passage.rstrip().splitlines()[-1].startswith("#"), "a chunk ends on a heading"
        assert path[0] == "第一章 总论"
    paths = {path for *_, path, _ in pieces}
    assert ("第一章 总论", "1.1 背景") in paths
    assert ("第一章 总论", "1.2 目标") in paths
    assert all(len(p) <= 200 for _, _, p, _, _ in pieces)


def test_plain_text_hash_lines_are_not_headings() -> None:
    text = "# 这是代码注释,不是标题\nprint('hi')\n" * 3
    assert all(path == () for *_, path, _ in split_text(text, 100, 0, "plain"))


def test_chunk_document_carries_pages_and_stable_ids() -> None:
    loaded = doc(CHINESE * 6, pages=(3, 4))
    chunks = chunk_document(loaded, 200, 30)
    assert {c.page for c in chunks} == {3, 4}
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.doc_id == "d1" for c in chunks)
    again = chunk_document(loaded, 200, 30)
    assert [c.chunk_id for c in chunks] == [c.chunk_id for c in again]
    first_page = [c for c in chunks if c.page == 3]
    assert {c.chunk_id for c in first_page}.isdisjoint({c.chunk_id for c in chunks if c.page == 4})


def test_empty_and_tiny_pages() -> None:
    assert split_text("", 100, 10) == []
    assert split_text("  \n\n ", 100, 10) == []
    assert [p for _, _, p, _, _ in split_text("短句。", 100, 10)] == ["短句。"]
    with pytest.raises(ValueError):
        split_text("x", 5, 0)


@pytest.mark.parametrize("size", [200, 500])
def test_default_documents_chunk_cleanly(size: int) -> None:
    for path in sorted((REPO / "knowledge").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        pieces = split_text(text, size, size // 6)
        assert pieces, path
        for start, end, passage, _, kind in pieces:
            assert len(passage) <= size
            if kind == "text":
                assert text[start:end] == passage


def test_numbered_section_lines_of_plain_text_give_a_path() -> None:
    section = "正文内容。" * 30
    text = (
        f"第二部分:训练实践\n{section}\n2.1 数据构建\n{section}\n2.1.1 清洗策略\n"
        f"- 语言识别与筛选。\n{section}\n2.2 训练技术\n{section}\n"
    )
    paths = [path for *_, path, _ in split_text(text, 200, 0, "plain")]
    assert ("第二部分:训练实践", "2.1 数据构建", "2.1.1 清洗策略") in paths
    assert paths[-1] == ("第二部分:训练实践", "2.2 训练技术")  # 2.2 closes 2.1 and 2.1.1

    chinese = "\n".join(
        f"{heading}\n{section}"
        for heading in ("第一章 总则", "一、适用范围", "（一）员工", "二、定义")
    )
    paths = [path for *_, path, _ in split_text(chinese, 200, 0, "plain")]
    assert ("第一章 总则", "一、适用范围", "（一）员工") in paths
    assert paths[-1] == ("第一章 总则", "二、定义")


@pytest.mark.parametrize(
    "line",
    [
        "1. 安装依赖",
        "3.14 是圆周率的近似值。",
        "12.5 万元",
        "1.5B 模型需要多少显存",
        "2024.10 发布",
    ],
)
def test_list_items_numbers_and_sentences_are_not_headings(line: str) -> None:
    text = f"{line}\n" + "正文内容。" * 30
    assert all(path == () for *_, path, _ in split_text(text, 100, 0, "plain"))
