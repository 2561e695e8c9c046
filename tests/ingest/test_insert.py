"""Ingestion with the real embedding model: idempotent by content hash, updates replace, pruning,
bad files fail with a reason while the rest goes on, model mismatch, reindex."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingest._embed import Embedder
from ingest._insert import Progress, discover, embedding_text, ingest_paths
from ingest.settings import Settings
from ingest.store import KnowledgeBase, ModelMismatch

A = (
    "# 量化\n\n量化把权重从 FP32 压缩到 INT8，显存占用减少约四倍。\n\n"
    + "推理速度也随之提高。" * 20
)
B = "杭州是浙江省省会。西湖位于杭州市区西部。" * 15
C = "向量检索使用稠密向量；关键词检索使用 BM25。" * 10


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text(A, encoding="utf-8")
    (folder / "sub" / "b.txt").write_text(B, encoding="utf-8")
    (folder / ".hidden.txt").write_text("hidden", encoding="utf-8")
    return folder


@pytest.fixture(params=["faiss", "milvus"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Every ingestion test against both stores (Milvus: the real core on 127.0.0.1)."""
    if request.param == "milvus":
        return request.getfixturevalue("milvus_settings")
    return settings


def snapshot(settings: Settings, kb: str = "default") -> dict[str, object]:
    with KnowledgeBase.open(settings, kb) as base:
        docs = {d.source: (d.doc_id, d.sha256, d.chunks) for d in base.documents()}
        chunk_ids = sorted(c.id for d in base.documents() for c in base.document_chunks(d.doc_id))
        assert base.check() == []
        # updated_at changes with every write of a document, whatever the store
        return {"docs": docs, "chunks": chunk_ids, "records": base.documents()}


def test_discover_walks_folders_and_skips_hidden_files(corpus: Path) -> None:
    files, missing = discover([corpus, corpus / "a.md", corpus / "nope.txt"])
    assert [f.name for f in files] == ["a.md", "b.txt"]
    assert [m.reason.code for m in missing if m.reason] == ["unreadable"]


def test_a_second_run_skips_everything_and_changes_nothing(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    first = ingest_paths(settings, [corpus], embedder=embedder)
    assert [o.status for o in first.outcomes] == ["added", "added"]
    assert first.exit_code == 0 and first.embedded_chunks > 0
    before = snapshot(settings)
    second = ingest_paths(settings, [corpus], embedder=embedder)
    assert [o.status for o in second.outcomes] == ["skipped", "skipped"]
    assert second.embedded_chunks == 0
    assert snapshot(settings) == before


def test_the_model_is_not_loaded_when_nothing_changed(
    settings: Settings, embedder: Embedder, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_paths(settings, [corpus], embedder=embedder)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding model was loaded for an unchanged corpus")

    monkeypatch.setattr("ingest._insert.load_embedder", refuse)
    report = ingest_paths(settings, [corpus])
    assert {o.status for o in report.outcomes} == {"skipped"}


def test_a_changed_file_replaces_its_old_chunks(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    ingest_paths(settings, [corpus], embedder=embedder)
    before = snapshot(settings)
    (corpus / "a.md").write_text(
        A.replace("四倍", "4 倍") + "\n\n新增一段关于蒸馏的说明。", encoding="utf-8"
    )
    report = ingest_paths(settings, [corpus], embedder=embedder)
    assert sorted(o.status for o in report.outcomes) == ["skipped", "updated"]
    after = snapshot(settings)
    source = str((corpus / "a.md").resolve())
    assert after["docs"][source][0] == before["docs"][source][0]  # same document, new content
    assert after["docs"][source][1] != before["docs"][source][1]
    with KnowledgeBase.open(settings) as kb:
        texts = " ".join(c.text for c in kb.document_chunks(before["docs"][source][0]))
    assert "蒸馏" in texts and "四倍" not in texts
    # unchanged chunks reuse their stored vectors: only the edited ones were embedded again
    assert 0 < report.embedded_chunks < before["docs"][source][2] + 1


def test_prune_removes_documents_whose_files_are_gone(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    ingest_paths(settings, [corpus], embedder=embedder)
    (corpus / "sub" / "b.txt").unlink()
    kept = ingest_paths(settings, [corpus], embedder=embedder)
    assert len(snapshot(settings)["docs"]) == 2, "without --prune nothing is removed"
    assert all(o.status == "skipped" for o in kept.outcomes)
    pruned = ingest_paths(settings, [corpus], prune=True, embedder=embedder)
    assert [o.status for o in pruned.outcomes if o.status == "removed"] == ["removed"]
    assert list(snapshot(settings)["docs"]) == [str((corpus / "a.md").resolve())]


def test_bad_files_fail_with_a_reason_and_the_rest_is_ingested(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (corpus / "movie.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (corpus / "c.txt").write_text(C, encoding="utf-8")
    report = ingest_paths(settings, [corpus], embedder=embedder)
    by_name = {Path(o.path).name: o for o in report.outcomes}
    assert by_name["empty.txt"].reason.code == "empty"
    assert by_name["binary.txt"].reason.code == "binary"
    assert by_name["movie.mp4"].reason.code == "unsupported"
    assert "不支持" in by_name["movie.mp4"].reason_zh
    assert {by_name[n].status for n in ("a.md", "b.txt", "c.txt")} == {"added"}
    assert report.exit_code == 2
    assert report.totals()["failed"] == 3 and report.totals()["added"] == 3


def test_an_oversized_file_is_rejected_unread(
    settings: Settings, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(3 * 1024 * 1024)  # sparse: no data is ever written
    small = settings.model_copy(update={"max_file_mb": 1.0})
    opened: list[Path] = []
    real_open = Path.open

    def watch(self: Path, *args: object, **kwargs: object) -> object:
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", watch)
    report = ingest_paths(small, [big], embedder=embedder)
    assert report.outcomes[0].reason.code == "too_large"
    assert big not in opened


def test_the_same_content_under_two_names_is_stored_once(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    (corpus / "copy.md").write_text(A, encoding="utf-8")
    report = ingest_paths(settings, [corpus], embedder=embedder)
    by_name = {Path(o.path).name: o for o in report.outcomes}
    assert by_name["copy.md"].status == "skipped" or by_name["a.md"].status == "skipped"
    assert len(snapshot(settings)["docs"]) == 2


def test_a_moved_file_replaces_its_old_copy(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    ingest_paths(settings, [corpus], embedder=embedder)
    (corpus / "a.md").rename(corpus / "renamed.md")
    report = ingest_paths(settings, [corpus], embedder=embedder)
    assert report.embedded_chunks == 0, "a moved file reuses its vectors"
    sources = sorted(Path(s).name for s in snapshot(settings)["docs"])
    assert sources == ["b.txt", "renamed.md"]


def test_jsonl_records_are_documents_and_follow_their_file(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = [
        json.dumps({"id": "r1", "title": "甲", "text": B}, ensure_ascii=False),
        json.dumps({"id": "r2", "title": "乙", "text": C}, ensure_ascii=False),
    ]
    corpus.write_text("\n".join(lines) + "\nnot json\n", encoding="utf-8")
    report = ingest_paths(settings, [corpus], embedder=embedder)
    [outcome] = report.outcomes
    assert outcome.status == "added" and outcome.documents == 2
    assert "line 3" in outcome.reason_en and "第 3 行" in outcome.reason_zh
    with KnowledgeBase.open(settings) as kb:
        assert {d.doc_id: d.title for d in kb.documents()} == {"r1": "甲", "r2": "乙"}
    corpus.write_text(lines[0] + "\n", encoding="utf-8")  # r2 removed from the file
    ingest_paths(settings, [corpus], embedder=embedder)
    with KnowledgeBase.open(settings) as kb:
        assert [d.doc_id for d in kb.documents()] == ["r1"]


def test_another_embedding_model_is_refused_and_reindex_rebuilds(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    ingest_paths(settings, [corpus], embedder=embedder)
    other = settings.model_copy(update={"embedding_model": "some/other-model"})
    with pytest.raises(ModelMismatch, match="--reindex"):
        ingest_paths(other, [corpus])
    smaller = settings.model_copy(update={"chunk_size": 120, "chunk_overlap": 20})
    before = snapshot(settings)
    report = ingest_paths(smaller, [corpus], reindex=True, embedder=embedder)
    assert all(o.status == "skipped" for o in report.outcomes)
    after = snapshot(settings)
    assert set(after["docs"]) == set(before["docs"])
    assert sum(n for *_, n in after["docs"].values()) > sum(n for *_, n in before["docs"].values())
    assert set(after["chunks"]).isdisjoint(before["chunks"])


def test_progress_reports_files_and_chunks(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    seen: dict[str, int] = {"start": 0, "files": 0, "planned": 0, "embedded": 0}

    class Counting(Progress):
        def start(self, files: int) -> None:
            seen["start"] = files

        def file_done(self, outcome: object) -> None:
            seen["files"] += 1

        def chunks_planned(self, chunks: int) -> None:
            seen["planned"] += chunks

        def chunks_embedded(self, chunks: int) -> None:
            seen["embedded"] += chunks

    ingest_paths(settings, [corpus], progress=Counting(), embedder=embedder)
    assert seen["start"] == 2 and seen["files"] == 2
    assert seen["planned"] == seen["embedded"] > 0


def test_passages_are_embedded_with_their_context(embedder: Embedder) -> None:
    assert embedding_text("量化指南", ("第二章",), "正文") == "量化指南 > 第二章\n正文"
    assert embedding_text("量化指南", (), "量化指南 开头就是标题") == "量化指南 开头就是标题"
    vectors = embedder.encode_passages(["量化压缩权重", "西湖在杭州"])
    assert vectors.shape == (2, embedder.spec.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
