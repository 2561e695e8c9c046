"""Originals kept at ingestion (`ingest/_originals.py`): a copy per file content under the data
home, none for uploads or with KEEP_ORIGINALS=false, and the copy found after the source moved."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support import make_settings

from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest._originals import discard_originals, original_file, originals_dir
from ingest._store import KnowledgeBase
from ingest._upload import save_uploads

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
