"""`zhiku kb migrate`: a knowledge base moved from FAISS + SQLite to Milvus and back, as a user
runs it, without re-embedding: the same documents, chunks, vectors and answers to searches.
Against the real Milvus core on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import cli
from ingest._chunk import chunk_document
from ingest._embed import Embedder
from ingest._originals import originals_dir
from ingest.load import LoadedDoc, OcrLine, Page, PageLayout
from ingest.settings import Settings, get_settings
from ingest.store import KnowledgeBase, PreparedChunk, open_kb

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def zhiku(
    milvus_settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., object]]:
    """`zhiku ...` in-process; `store=` picks VECTOR_STORE for one command."""
    monkeypatch.setenv("ZHIKU_HOME", str(milvus_settings.zhiku_home))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(REPO / ".zhiku" / "models"))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.setenv("MILVUS_URI", milvus_settings.milvus_uri)
    monkeypatch.setenv("MILVUS_INDEX_TYPE", "FLAT")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, store: str = "faiss") -> object:
        monkeypatch.setenv("VECTOR_STORE", store)
        get_settings.cache_clear()
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield run
    get_settings.cache_clear()


SCAN_LAYOUT = PageLayout(
    "ocr",
    1240,
    1754,
    (OcrLine(0, 9, (100, 200, 700, 260), 0.98), OcrLine(9, 21, (100, 270, 700, 330), 0.95)),
)


def add_scanned_page(kb: KnowledgeBase, embedder: Embedder) -> None:
    """A page read by OCR, stored as ingestion stores it (the chunks embedded by the model)."""
    text = "冷却塔巡检规定。风机轴承温度不得超过八十度。"
    doc = LoadedDoc(
        "scan",
        "冷却塔巡检",
        "/scans/巡检.pdf",
        "pdf",
        "f" * 64,
        1024,
        (Page(1, text, SCAN_LAYOUT),),
        "plain",
    )
    chunks = chunk_document(doc, 200, 0)
    vectors = embedder.encode_passages([c.text for c in chunks])
    spec = kb.embedding_spec()
    with kb.writer(spec) as writer:
        writer.put_file(
            doc.source,
            doc.sha256,
            doc.size,
            [
                (
                    doc,
                    [PreparedChunk(c, c.chunk_id, v) for c, v in zip(chunks, vectors, strict=True)],
                )
            ],
        )


def test_migrate_to_milvus_and_back_keeps_everything(
    zhiku: Callable[..., object],
    milvus_settings: Settings,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "city.txt").write_text("杭州概况\n杭州的市花是桂花，市树是香樟。" * 6, encoding="utf-8")
    (docs / "gpt.md").write_text("# GPT\n\nGPT-1 的参数量为 1.17 亿。" * 6, encoding="utf-8")
    (docs / "db.txt").write_text(
        "向量数据库保存嵌入向量。关键词检索使用倒排索引。" * 8, encoding="utf-8"
    )
    assert zhiku("ingest", str(docs)).exit_code == 0
    faiss = milvus_settings.model_copy(update={"vector_store": "faiss"})
    # an OCR page's line boxes and a chunk left out of retrieval go along, both ways
    with open_kb(faiss, "default") as source:
        add_scanned_page(source, embedder)
        left_out = source.document_chunks(source.documents()[0].doc_id)[0].chunk_key
        source.set_excluded(left_out, True)

    moved = zhiku("kb", "migrate", "--to", "milvus")
    assert moved.exit_code == 0, moved.output
    assert "the same counts" in moved.output
    listing = zhiku("kb", "list", store="milvus")
    assert "default" in listing.output and "milvus" in listing.output
    assert "faiss" in zhiku("kb", "list").output
    # unchanged files are skipped in the copy too: the content hashes came along
    again = zhiku("ingest", str(docs), store="milvus")
    assert again.exit_code == 0 and "skipped 3" in again.output
    assert zhiku("kb", "check", store="milvus").exit_code == 0

    with open_kb(faiss, "default") as source, open_kb(milvus_settings, "default") as copy:
        assert source.counts() == copy.counts()
        for doc in source.documents():
            mine, theirs = source.prepared_chunks(doc.doc_id), copy.prepared_chunks(doc.doc_id)
            assert [p.chunk for p in mine] == [p.chunk for p in theirs]
            for a, b in zip(mine, theirs, strict=True):
                np.testing.assert_array_equal(a.vector, b.vector)  # not re-embedded
            assert copy.page_text(doc.doc_id, 0) == source.page_text(doc.doc_id, 0)
            assert copy.page_layout(doc.doc_id, 0) == source.page_layout(doc.doc_id, 0)
        assert copy.document_chunks(doc.doc_id)[0].source == doc.source
        assert copy.page_layout("scan", 0) == SCAN_LAYOUT
        assert copy.excluded_keys() == {left_out}
        (off,) = copy.excluded_ids()
        assert copy.chunks([off])[off].chunk_key == left_out

    refused = zhiku("kb", "migrate", "--to", "milvus")
    assert refused.exit_code == 1 and "already has documents" in refused.output

    # the FAISS copy alone: the Milvus one still uses the kept copies
    assert zhiku("kb", "delete", "default", "--yes", "--store-only").exit_code == 0
    assert originals_dir(faiss, "default").is_dir()
    back = zhiku("kb", "migrate", "--to", "faiss", store="milvus")
    assert back.exit_code == 0, back.output
    assert zhiku("kb", "check").exit_code == 0
    with open_kb(faiss, "default") as returned, open_kb(milvus_settings, "default") as copy:
        assert returned.counts() == copy.counts()
        assert returned.origins() == copy.origins()
        assert returned.page_layout("scan", 0) == SCAN_LAYOUT
        assert returned.excluded_keys() == {left_out}
