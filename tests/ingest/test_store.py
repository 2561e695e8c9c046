"""The store: documents, chunks, vectors and the keyword index stay consistent through writes,
stale or damaged index files, and competing writers. Tests taking `kb` or `store_settings` run
against both stores (FAISS + SQLite, and the real Milvus core on 127.0.0.1); the others test
what only FAISS + SQLite has (index files, SQLite damage). Vectors here are synthetic unit
vectors: the store's behaviour does not depend on the embedding model."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest._chunk import chunk_document
from ingest._embed import EmbeddingSpec
from ingest._load import LoadedDoc, Page
from ingest._tokenize import keyword_query
from ingest.load import OcrLine, PageLayout
from ingest.settings import Settings
from ingest.store import (
    KnowledgeBase,
    ModelMismatch,
    PreparedChunk,
    StoreError,
    delete_kb,
    list_kbs,
)

SPEC = EmbeddingSpec("test-model", 8, "query: ", "passage: ")
RNG = np.random.default_rng(7)


def unit(seed_text: str) -> np.ndarray:
    vector = np.random.default_rng(abs(hash(seed_text)) % 2**32).normal(size=8).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_doc(doc_id: str, text: str, source: str | None = None) -> LoadedDoc:
    return LoadedDoc(
        doc_id=doc_id,
        title=f"标题{doc_id}",
        source=source or f"/data/{doc_id}.txt",
        doc_type="txt",
        sha256=str(hash(text)),
        size=len(text),
        pages=(Page(None, text),),
        structure="plain",
    )


def prepared(doc: LoadedDoc, size: int = 60) -> list[PreparedChunk]:
    return [PreparedChunk(c, c.chunk_id, unit(c.text)) for c in chunk_document(doc, size, 0)]


def put(kb: KnowledgeBase, doc: LoadedDoc, save: bool = True) -> dict[str, str]:
    with kb.writer(SPEC, save_vectors=save) as writer:
        return writer.put_file(doc.source, doc.sha256, doc.size, [(doc, prepared(doc))])


TEXT_A = "大模型的训练分为预训练和微调两个阶段。预训练使用海量文本。微调使用标注数据。" * 3
TEXT_B = "向量数据库保存文本的嵌入向量，用于语义检索。关键词检索使用倒排索引。" * 3


@pytest.fixture
def kb(store_settings: Settings) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase.open(store_settings, "test", create=True)
    yield base
    base.close()


@pytest.fixture
def faiss_kb(settings: Settings) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase.open(settings, "test", create=True)
    yield base
    base.close()


def chunk_ids(kb: KnowledgeBase, doc_id: str) -> list[int]:
    return [c.id for c in kb.document_chunks(doc_id)]


def test_put_search_and_check(kb: KnowledgeBase) -> None:
    status = put(kb, make_doc("a", TEXT_A))
    put(kb, make_doc("b", TEXT_B))
    assert status == {"a": "added"}
    assert kb.counts()["documents"] == 2
    assert kb.check() == []
    target = kb.document_chunks("b")[1]
    found = kb.dense_search(unit(target.text), 3)
    assert found[0][0] == target.id
    assert found[0][1] == pytest.approx(1.0, abs=1e-5)
    keyword = kb.keyword_search(keyword_query("倒排索引"), 5)
    assert keyword and all(kb.chunks([i])[i].doc_id == "b" for i, _ in keyword)


def test_replacing_a_document_leaves_no_trace_of_the_old_chunks(kb: KnowledgeBase) -> None:
    put(kb, make_doc("a", TEXT_A))
    old = set(chunk_ids(kb, "a"))
    assert put(kb, make_doc("a", TEXT_B)) == {"a": "updated"}
    new = set(chunk_ids(kb, "a"))
    assert old.isdisjoint(new)
    assert {i for i, _ in kb.dense_search(unit(TEXT_A), 100)} == new
    assert kb.chunks(old) == {}
    assert kb.keyword_search(keyword_query("预训练"), 5) == []
    assert kb.check() == []


def test_an_old_index_file_is_caught_up_from_the_journal(settings: Settings) -> None:
    with KnowledgeBase.open(settings, "journal", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))  # saved: the FAISS file reflects "a"
        put(kb, make_doc("b", TEXT_B), save=False)  # committed, file not rewritten
        with kb.writer(SPEC, save_vectors=False) as writer:
            writer.remove_documents(["a"])
        expected = set(chunk_ids(kb, "b"))
    files = list((settings.kbs_dir / "journal").glob("vectors-*.faiss"))
    assert len(files) == 1
    with KnowledgeBase.open(settings, "journal") as again:  # a fresh process would do the same
        assert again.vectors_stale()
        assert set(again.vector_index().ids()) == expected
        assert again.check() == []


def test_a_missing_index_file_is_rebuilt_from_stored_vectors(settings: Settings) -> None:
    with KnowledgeBase.open(settings, "gone", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
        ids = set(chunk_ids(kb, "a"))
    for path in (settings.kbs_dir / "gone").glob("vectors-*.faiss"):
        path.unlink()
    with KnowledgeBase.open(settings, "gone") as again:
        assert set(again.vector_index().ids()) == ids
        assert again.check() == []


def test_a_corrupted_index_file_is_reported_and_repaired(settings: Settings) -> None:
    with KnowledgeBase.open(settings, "bad", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
    [index_file] = (settings.kbs_dir / "bad").glob("vectors-*.faiss")
    index_file.write_bytes(b"garbage" * 10)
    with KnowledgeBase.open(settings, "bad") as again:
        hits = again.dense_search(unit(again.document_chunks("a")[0].text), 1)
        assert hits, "search keeps working from the database while the file is damaged"
        problems = again.check()
        assert any(index_file.name in p and "--repair" in p for p in problems)
        repaired = again.repair()
        assert any("vector index" in line for line in repaired)
        assert again.check() == []


def test_check_finds_a_keyword_index_out_of_step_and_repair_fixes_it(
    faiss_kb: KnowledgeBase,
) -> None:
    kb = faiss_kb
    put(kb, make_doc("a", TEXT_A))
    victim = chunk_ids(kb, "a")[0]
    kb.conn.execute("DELETE FROM chunks_fts WHERE rowid = ?", (victim,))
    assert any("missing from the keyword index" in p for p in kb.check())
    kb.repair()
    assert kb.check() == []
    assert kb.keyword_search(keyword_query("预训练"), 5)


def test_another_model_is_refused_with_a_rebuild_hint(kb: KnowledgeBase) -> None:
    put(kb, make_doc("a", TEXT_A))
    other = EmbeddingSpec("other-model", 8, "", "")
    with pytest.raises(ModelMismatch) as raised:
        kb.ensure_compatible(other)
    assert "zhiku ingest --reindex --kb test" in str(raised.value)
    assert "重建" in raised.value.rejection.zh
    with pytest.raises(ModelMismatch), kb.writer(other) as writer:
        doc = make_doc("c", TEXT_B)
        writer.put_file(doc.source, doc.sha256, doc.size, [(doc, prepared(doc))])
    assert kb.document("c") is None


def test_a_failed_transaction_changes_nothing(kb: KnowledgeBase) -> None:
    put(kb, make_doc("a", TEXT_A))
    before = (kb.counts(), kb.documents(), chunk_ids(kb, "a"))
    doc = make_doc("a", TEXT_B)
    chunks = prepared(doc)
    broken = [*chunks[:-1], PreparedChunk(chunks[-1].chunk, "x", np.zeros(3, np.float32))]
    with pytest.raises(ValueError, match="vector of shape"), kb.writer(SPEC) as writer:
        writer.put_file(doc.source, doc.sha256, doc.size, [(doc, broken)])
    assert (kb.counts(), kb.documents(), chunk_ids(kb, "a")) == before
    assert kb.check() == []


def test_check_finds_damaged_vectors_and_orphans(faiss_kb: KnowledgeBase) -> None:
    kb = faiss_kb
    put(kb, make_doc("a", TEXT_A))
    put(kb, make_doc("b", TEXT_B))
    first = chunk_ids(kb, "a")[0]
    kb.conn.execute("UPDATE chunks SET vector = x'00' WHERE id = ?", (first,))
    kb.conn.execute("PRAGMA foreign_keys=OFF")
    kb.conn.execute("DELETE FROM documents WHERE doc_id = 'b'")
    kb.conn.execute("PRAGMA foreign_keys=ON")
    problems = kb.check()
    assert any("vectors of the wrong size" in p for p in problems)
    assert any("chunks without a document" in p for p in problems)
    kb.repair()
    assert kb.check() == []
    assert first not in kb.vector_index().ids()
    assert kb.document("b") is None and kb.document("a") is not None


_HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_waits_and_then_fails_clearly(settings: Settings) -> None:
    fast = settings.model_copy(update={"lock_timeout_s": 0.5})
    with KnowledgeBase.open(fast, "locked", create=True) as kb:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(kb.path / "write.lock"), "30"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            with pytest.raises(StoreError, match="being written by another process"):
                put(kb, make_doc("a", TEXT_A))
            assert time.monotonic() - started >= 0.4
        finally:
            holder.kill()
            holder.wait()
        put(kb, make_doc("a", TEXT_A))  # the lock died with its holder
        assert kb.check() == []


def test_names_listing_and_deletion(store_settings: Settings) -> None:
    settings = store_settings
    for name in ("默认", "work-2"):
        KnowledgeBase.open(settings, name, create=True).close()
    assert list_kbs(settings) == sorted(["默认", "work-2"])
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(StoreError):
            KnowledgeBase.open(settings, bad, create=True)
    with pytest.raises(StoreError, match="does not exist"):
        KnowledgeBase.open(settings, "missing")
    delete_kb(settings, "work-2")
    assert list_kbs(settings) == ["默认"]


def test_a_damaged_database_gives_a_clear_error(settings: Settings) -> None:
    path = settings.kbs_dir / "broken"
    path.mkdir(parents=True)
    (path / "kb.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as raised:
        KnowledgeBase.open(settings, "broken")
    message = str(raised.value)
    assert str(path / "kb.sqlite") in message and "zhiku kb check --repair" in message


def test_page_text_holds_every_chunk_at_its_offsets(kb: KnowledgeBase) -> None:
    put(kb, make_doc("a", TEXT_A * 2))
    for chunk in kb.document_chunks("a"):
        page = kb.page_text("a", chunk.page_seq)
        assert page is not None and page[chunk.start : chunk.end] == chunk.text


def ocr_layout(lines: int, width: int = 1240) -> PageLayout:
    """Line boxes as OCR gives them: `lines` lines of 20 characters down a page."""
    return PageLayout(
        "ocr",
        width,
        1754,
        tuple(
            OcrLine(20 * i, 20 * i + 19, (100, 40 + 30 * i, 700, 60 + 30 * i), 0.987)
            for i in range(lines)
        ),
    )


def scanned_doc(doc_id: str, text: str, layout: PageLayout) -> LoadedDoc:
    """Page 1 with a text layer, page 2 read by OCR (its boxes in `layout`)."""
    return LoadedDoc(
        doc_id=doc_id,
        title=f"扫描件{doc_id}",
        source=f"/data/{doc_id}.pdf",
        doc_type="pdf",
        sha256=str(hash((text, layout.width))),
        size=len(text),
        pages=(Page(1, TEXT_B), Page(2, text, layout)),
        structure="plain",
    )


def test_ocr_line_boxes_are_kept_with_their_page(kb: KnowledgeBase) -> None:
    # 4000 lines: more than one Milvus VARCHAR holds (the boxes are stored in parts)
    big = ocr_layout(4000)
    assert len(json.dumps(big.to_json())) > 65_535
    put(kb, scanned_doc("s", TEXT_A, big))
    assert kb.page_layout("s", 1) == big
    assert kb.page_layout("s", 0) is None  # the page with a text layer has none
    assert kb.page_layout("s", 2) is None and kb.page_layout("missing", 1) is None
    assert kb.page_text("s", 1) == TEXT_A
    with kb.writer(SPEC) as writer:  # what a reindex or a migration reads back
        (stored,) = [doc for doc, _, _ in writer.stored_documents()]
    assert [p.layout for p in stored.pages] == [None, big]
    assert stored.pages[1].ocr and stored.pages[1].text == TEXT_A
    # a new version of the document brings its own boxes; the old ones are gone
    small = ocr_layout(3, width=2480)
    assert put(kb, scanned_doc("s", TEXT_A, small)) == {"s": "updated"}
    assert kb.page_layout("s", 1) == small
    assert kb.check() == []
    with kb.writer(SPEC) as writer:
        writer.remove_documents(["s"])
    assert kb.page_layout("s", 1) is None
    assert kb.check() == []


def test_a_chunk_left_out_stays_out_for_every_reader_and_through_reingestion(
    kb: KnowledgeBase, store_settings: Settings
) -> None:
    put(kb, make_doc("a", TEXT_A))
    put(kb, make_doc("b", TEXT_B))
    target = kb.document_chunks("b")[1]
    assert kb.excluded_keys() == set() and kb.excluded_ids() == set()
    kb.set_excluded(target.chunk_key, True)
    kb.set_excluded(target.chunk_key, True)  # twice is once
    assert kb.excluded_keys() == {target.chunk_key}
    assert kb.excluded_ids() == {target.id}
    # another process or app server using the same knowledge base sees it at once
    with KnowledgeBase.open(store_settings, "test") as other:
        assert other.excluded_ids() == {target.id}
        # the same file ingested again: new chunk ids, the same chunk still left out
        assert put(other, make_doc("b", TEXT_B)) == {"b": "updated"}
        again = next(c for c in other.document_chunks("b") if c.chunk_key == target.chunk_key)
        assert kb.excluded_ids() == {again.id} and other.excluded_ids() == {again.id}
        # and so does a reindex
        with other.writer(SPEC) as writer:
            rows = [(d, prepared(d), o, t) for d, o, t in writer.stored_documents()]
            writer.replace_all(rows)
        latest = next(c for c in kb.document_chunks("b") if c.chunk_key == target.chunk_key)
        assert kb.excluded_ids() == {latest.id}
        other.set_excluded(target.chunk_key, False)
    assert kb.excluded_keys() == set() and kb.excluded_ids() == set()
    # a document removed leaves no excluded id behind; its key waits for the file to return
    kb.set_excluded(target.chunk_key, True)
    with kb.writer(SPEC) as writer:
        writer.remove_documents(["b"])
    assert kb.excluded_ids() == set() and kb.excluded_keys() == {target.chunk_key}
    put(kb, make_doc("b", TEXT_B))
    (back,) = [c.id for c in kb.document_chunks("b") if c.chunk_key == target.chunk_key]
    assert kb.excluded_ids() == {back}
    assert kb.check() == []


def test_unit_vectors_are_stored_exactly(kb: KnowledgeBase) -> None:
    doc = make_doc("a", TEXT_A)
    rows = prepared(doc)
    with kb.writer(SPEC) as writer:
        writer.put_file(doc.source, doc.sha256, doc.size, [(doc, rows)])
    stored = kb.vectors_by_embed_hash([r.embed_hash for r in rows])
    for row in rows:
        np.testing.assert_array_equal(stored[row.embed_hash], row.vector)


def test_index_files_are_replaced_atomically(faiss_kb: KnowledgeBase) -> None:
    kb = faiss_kb
    put(kb, make_doc("a", TEXT_A))
    put(kb, make_doc("b", TEXT_B))
    files = sorted(p.name for p in kb.path.iterdir() if p.suffix == ".faiss" or ".tmp" in p.name)
    assert files == [f"vectors-{kb.epoch}-{kb.generation}.faiss"]


def test_paths_are_kept_out_of_the_data_home(settings: Settings) -> None:
    KnowledgeBase.open(settings, "x", create=True).close()
    assert (settings.zhiku_home / "kbs" / "x" / "kb.sqlite").is_file()
    assert not Path("kbs").exists()
