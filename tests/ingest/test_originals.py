"""Originals kept at ingestion (`ingest/_originals.py`): a copy per file content under the data
home, none for uploads or with KEEP_ORIGINALS=false, and the copy found after the source moved;
with ORIGINALS_STORE=database, copies and uploads in the state database, opened by a server that
never saw the file and removed with their documents."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support import make_settings

from ingest._blobs import blob_engine, stored_blobs
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


def test_in_the_database_an_original_opens_where_it_was_never_ingested(
    state_settings: Settings, tmp_path: Path, embedder: Embedder
) -> None:
    """Two data homes over one state database (SQLite shared on one machine, or PostgreSQL):
    what one ingested or had uploaded, the other opens after the first's files are gone."""
    first = state_settings.model_copy(update={"originals_store": "database"})
    other = first.model_copy(update={"zhiku_home": tmp_path / "other"})
    if not first.state_url:  # the same SQLite file for both homes
        other = other.model_copy(update={"state_url": f"sqlite:///{tmp_path / 'state.sqlite'}"})
        first = first.model_copy(update={"state_url": other.state_url})
    source = tmp_path / "docs" / "年假.md"
    source.parent.mkdir()
    source.write_text(TEXT, encoding="utf-8")
    upload = save_uploads(first, "default", [("病假.md", "# 病假\n\n病假需要医院证明。".encode())])[
        0
    ]
    ingest_paths(first, [source, upload.path], "default", embedder=embedder)  # type: ignore[list-item]
    with KnowledgeBase.open(first, "default") as kb:
        records = {origin: sha for origin, sha, _ in kb.source_records()}
    assert set(stored_blobs(blob_engine(first), "default")) == set(records.values())
    assert not originals_dir(first, "default").exists()  # no second copy on the first server
    wanted = {origin: Path(origin).read_bytes() for origin in records}
    source.unlink()
    upload.path.unlink()  # type: ignore[union-attr]

    for origin, sha in records.items():
        opened = original_file(other, "default", origin, sha)
        assert opened is not None and opened.parent == originals_dir(other, "default")
        assert opened.read_bytes() == wanted[origin]
    assert original_file(other, "default", str(source), "0" * 64) is None  # never stored

    remove_documents(first, "default", [str(source.resolve())])
    assert set(stored_blobs(blob_engine(first), "default")) == {records[str(upload.path)]}


def test_in_the_database_uploads_are_kept_even_when_copies_are_off(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = make_settings(tmp_path / "home", originals_store="database", keep_originals=False)
    source = tmp_path / "年假.md"
    source.write_text(TEXT, encoding="utf-8")
    saved = save_uploads(
        settings, "default", [("病假.md", "# 病假\n\n病假需要医院证明。".encode())]
    )
    ingest_paths(settings, [source, saved[0].path], "default", embedder=embedder)  # type: ignore[list-item]
    upload_sha = hashlib.sha256(saved[0].path.read_bytes()).hexdigest()  # type: ignore[union-attr]
    assert list(stored_blobs(blob_engine(settings), "default")) == [upload_sha]
