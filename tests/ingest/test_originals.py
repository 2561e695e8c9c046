"""Originals kept at ingestion (`ingest/_originals.py`): a copy per file content under the data
home, none for uploads or with KEEP_ORIGINALS=false, and the copy found after the source moved."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support import make_settings

from ingest._embed import Embedder
from ingest._insert import ingest_paths, remove_documents
from ingest._originals import discard_originals, original_file, originals_dir
from ingest._store import KnowledgeBase
from ingest._upload import save_uploads
from ingest.settings import Settings

TEXT = "# 年假\n\n员工每年享有十五天带薪年假。"


def test_an_ingested_file_is_kept_and_found_after_it_moved(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = make_settings(tmp_path / "home")
    source = tmp_path / "docs" / "年假.md"
    source.parent.mkdir()
    source.write_text(TEXT, encoding="utf-8")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    ingest_paths(settings, [source], "default", embedder=embedder)
    kept = originals_dir(settings, "default") / f"{sha}.md"
    assert kept.read_text(encoding="utf-8") == TEXT
    origin = str(source.resolve())
    with KnowledgeBase.open(settings, "default") as kb:
        assert kb.source_sha256(origin) == sha
    source.unlink()
    assert original_file(settings, "default", origin, sha) == kept
    assert discard_originals(settings, "default", keep={sha}) == 0
    assert discard_originals(settings, "default", keep=set()) == 1
    assert original_file(settings, "default", origin, sha) is None


def test_no_copy_when_turned_off_or_for_uploads(tmp_path: Path, embedder: Embedder) -> None:
    off = make_settings(tmp_path / "home", keep_originals=False)
    source = tmp_path / "年假.md"
    source.write_text(TEXT, encoding="utf-8")
    ingest_paths(off, [source], "default", embedder=embedder)
    assert not originals_dir(off, "default").exists()
    # without a copy the file itself is opened while it still has the ingested bytes
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert original_file(off, "default", str(source), sha) == source
    source.write_text(TEXT + "\n改过了。", encoding="utf-8")
    assert original_file(off, "default", str(source), sha) is None

    on = make_settings(tmp_path / "home2")
    saved = save_uploads(on, "default", [("年假.md", TEXT.encode())])
    ingest_paths(on, [saved[0].path], "default", embedder=embedder)  # type: ignore[list-item]
    assert not originals_dir(on, "default").exists()  # the upload is the kept copy


def test_removing_a_document_removes_its_copy_unless_another_still_uses_it(
    store_settings: Settings, tmp_path: Path, embedder: Embedder
) -> None:
    settings = store_settings
    docs = tmp_path / "docs"
    docs.mkdir()
    note = docs / "年假.md"
    note.write_text(TEXT, encoding="utf-8")
    records = docs / "faq.jsonl"  # one file, two documents: one kept copy serves both
    records.write_text(
        '{"id": "q1", "title": "报销", "text": "差旅费在出差结束后三十天内报销。"}\n'
        '{"id": "q2", "title": "加班", "text": "工作日加班可以申请调休。"}\n',
        encoding="utf-8",
    )
    for kb in ("a", "b"):  # the same file in another knowledge base has its own copy
        ingest_paths(settings, [docs], kb, embedder=embedder)

    def copy_of(kb: str, path: Path) -> Path:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return originals_dir(settings, kb) / f"{sha}{path.suffix}"

    assert all(copy_of(kb, p).is_file() for kb in ("a", "b") for p in (note, records))
    removed, _ = remove_documents(settings, "a", [str(note)])
    assert removed and not copy_of("a", note).exists()
    assert copy_of("b", note).is_file()  # b still holds it
    with KnowledgeBase.open(settings, "a") as kb:
        first, second = (d.doc_id for d in kb.documents())
    remove_documents(settings, "a", [first])
    assert copy_of("a", records).is_file()  # the other record still comes from that file
    remove_documents(settings, "a", [second])
    assert not copy_of("a", records).exists()
    assert copy_of("b", records).is_file()
    assert note.is_file() and records.is_file()  # the user's own files are never touched


def test_a_changed_or_pruned_file_leaves_no_stale_copy(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path / "home")
    source = tmp_path / "docs" / "年假.md"
    source.parent.mkdir()
    source.write_text(TEXT, encoding="utf-8")
    ingest_paths(settings, [source.parent], "default", embedder=embedder)
    source.write_text(TEXT + "\n\n病假另有规定。", encoding="utf-8")
    ingest_paths(settings, [source.parent], "default", embedder=embedder)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert [p.name for p in originals_dir(settings, "default").iterdir()] == [f"{sha}.md"]
    source.unlink()
    ingest_paths(settings, [source.parent], "default", prune=True, embedder=embedder)
    assert list(originals_dir(settings, "default").iterdir()) == []
