"""Bad input in one batch with good files: every bad file gets a specific reason, every good
file is ingested, nothing crashes, and nothing huge is read into memory.

The real broken, encrypted and unreadable PDFs of `../shared/fixtures/pdfs` are covered file by
file in tests/ingest/test_load.py; here they go through the whole pipeline together."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from pypdf import PdfWriter

from ingest._chunk import split_text
from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest._load import load_file
from ingest._reasons import Rejection
from ingest.settings import Settings
from ingest.store import KnowledgeBase

GOOD = "知识库里的正常文档。它讲述检索增强生成的基本做法。" * 8


def pdf_with_pages(path: Path, pages: int) -> Path:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def test_a_batch_of_bad_files_beside_good_ones(
    settings: Settings, embedder: Embedder, tmp_path: Path, shared_dir: Path
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    (folder / "好文档.md").write_text("# 标题\n\n" + GOOD, encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text(" \n\n\t\n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 64)
    with (folder / "huge.txt").open("wb") as handle:
        handle.truncate(200 * 2**20)  # 200 MB, sparse: over the 100 MB limit
    (folder / "long-line.txt").write_text("长" * 20_000, encoding="utf-8")
    mixed = "前半部分是 UTF-8 编码的中文。".encode() + "后半部分是 GBK 编码的中文。".encode("gbk")
    (folder / "mixed.txt").write_bytes(mixed * 20)
    pdf_with_pages(folder / "bomb.pdf", 3500)
    (folder / "fake.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 500)
    (folder / "notes.xyz").write_text("unknown type", encoding="utf-8")
    weird = folder / ("控制\x01字符-" + "名" * 60 + ".txt")  # a control character, 200+ bytes
    weird.write_text(GOOD + "（另一份）", encoding="utf-8")
    for name in ("encrypted/pdfminer_aes256__foo.pdf", "bad/evil_xobjects_issue_1113.pdf"):
        source = shared_dir / "fixtures" / "pdfs" / name
        (folder / source.name).write_bytes(source.read_bytes())

    report = ingest_paths(settings, [folder], embedder=embedder)
    by_name = {Path(o.path).name: o for o in report.outcomes}

    def code(name: str) -> str | None:
        reason = by_name[name].reason
        return reason.code if isinstance(reason, Rejection) else None

    assert code("empty.txt") == "empty"
    assert code("blank.md") == "blank"
    assert code("binary.txt") == "binary"
    assert code("huge.txt") == "too_large"
    assert code("bomb.pdf") == "too_many_pages"
    assert code("fake.pdf") == "broken_pdf"
    assert code("notes.xyz") == "unsupported"
    assert code("pdfminer_aes256__foo.pdf") == "encrypted"
    assert code("evil_xobjects_issue_1113.pdf") in {"broken_pdf", "no_text"}
    for name in ("good.txt", "好文档.md", "long-line.txt", weird.name):
        assert by_name[name].status == "added", (name, by_name[name].reason_en)
    # mixed encodings: read with one encoding (losing nothing silently) or rejected, never a crash
    assert by_name["mixed.txt"].status == "added" or code("mixed.txt") == "encoding"
    for outcome in report.outcomes:
        if outcome.status == "failed":
            assert outcome.reason_en and outcome.reason_zh, outcome.path
    assert report.exit_code == 2
    with KnowledgeBase.open(settings) as kb:
        assert kb.check() == []


def test_a_200_mb_file_is_rejected_without_reading_it(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:
        handle.seek(200 * 2**20 - 1)
        handle.write(b"x")  # 200 MB apparent size, one byte of data
    process = psutil.Process()
    before, started = process.memory_info().rss, time.perf_counter()
    report = ingest_paths(settings, [huge], embedder=embedder)
    assert report.outcomes[0].reason.code == "too_large"
    assert "200.0 MB" in report.outcomes[0].reason_en
    assert (process.memory_info().rss - before) / 2**20 < 30
    assert time.perf_counter() - started < 10


def test_a_pathological_single_line_chunks_quickly() -> None:
    text = "没有标点的超长一行" * 200_000  # 1.8 million characters, not one break point
    started = time.perf_counter()
    pieces = split_text(text, 400, 60)
    assert time.perf_counter() - started < 20
    assert all(len(p) <= 400 for _, _, p, _, _ in pieces)
    assert sum(end - start for start, end, *_ in pieces) == len(text)


def test_a_pdf_with_very_many_pages_is_rejected_before_extraction(tmp_path: Path) -> None:
    bomb = pdf_with_pages(tmp_path / "bomb.pdf", 20_000)
    started = time.perf_counter()
    with pytest.raises(Rejection) as raised:
        load_file(bomb, 10**9, max_pdf_pages=3000)
    assert raised.value.code == "too_many_pages"
    assert time.perf_counter() - started < 30
