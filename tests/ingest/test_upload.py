"""Saving browser uploads: hostile names stay inside the upload folder, limits hold, and no
stored file is ever overwritten by a different one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest._embed import Embedder
from ingest._reasons import Rejection
from ingest._upload import (
    MAX_NAME_BYTES,
    delete_kb_uploads,
    discard_upload,
    sanitize_filename,
    save_uploads,
    uploads_dir,
)
from ingest.settings import Settings
from ingest.store import KnowledgeBase

TEXT = "知库把文档切成段落,再用向量检索。".encode()


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def inside(path: Path | None, folder: Path) -> bool:
    assert path is not None
    return path.parent == folder.resolve()


# --- names ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\x.txt", "x.txt"),
        ("C:\\Users\\me\\报告.docx", "报告.docx"),
        ("/abs/x.md", "x.md"),
        ("a/../../b.md", "b.md"),
        # NFKC turns the full-width solidus into "/", which is then a separator like any other
        ("..／..／秘密.txt", "秘密.txt"),
        ("bell\x07\x00name\n.txt", "bellname.txt"),
        # a right-to-left override would show "evil\u202etxt.exe" as "evilexe.txt"
        ("evil\u202egpj.txt", "evilgpj.txt"),
        ('a<b>c:d"e|f?g*h.md', "a_b_c_d_e_f_g_h.md"),
        ("  .hidden.txt. ", "hidden.txt"),
        ("ＡＢＣ　文档.txt", "ABC 文档.txt"),
        ("CON.txt", "_CON.txt"),
        ("中文 名字.PDF", "中文 名字.PDF"),
    ],
)
def test_names_are_reduced_to_a_safe_base_name(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", "..", "...", "../..", "/", "\x00\x01", " . ", "a/.."])
def test_names_with_nothing_usable_are_rejected(raw: str) -> None:
    with pytest.raises(Rejection) as caught:
        sanitize_filename(raw)
    assert caught.value.code == "bad_name"
    assert "文件名不可用" in caught.value.zh


def test_long_chinese_names_fit_255_bytes_and_keep_the_extension() -> None:
    raw = "很长的文件名" * 40 + ".md"  # 720 bytes of Chinese
    name = sanitize_filename(raw)
    assert name.endswith(".md")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert len(name.encode("utf-8")) > MAX_NAME_BYTES - 3  # cut at a character boundary
    name.encode("utf-8").decode("utf-8")  # no broken character


def test_a_name_of_exactly_255_bytes_is_kept() -> None:
    raw = "a" * 252 + ".md"
    assert sanitize_filename(raw) == raw


# --- saving ---


def test_traversal_names_are_saved_inside_the_upload_folder(settings: Settings) -> None:
    files = [
        ("../../etc/passwd.txt", TEXT),
        ("..\\x.txt", TEXT + b"1"),
        ("/abs/x.md", TEXT + b"2"),
    ]
    results = save_uploads(settings, "default", files)
    folder = uploads_dir(settings, "default")
    assert [r.stored_name for r in results] == ["passwd.txt", "x.txt", "x.md"]
    assert all(inside(r.path, folder) for r in results)
    assert not (settings.zhiku_home / "etc").exists()
    assert names_in(folder) == ["passwd.txt", "x.md", "x.txt"]
    assert results[0].path is not None and results[0].path.read_bytes() == TEXT


def test_duplicate_names_in_one_upload_get_numbered_copies(settings: Settings) -> None:
    results = save_uploads(
        settings, "default", [("笔记.md", b"one"), ("笔记.md", b"two"), ("dir/笔记.md", b"three")]
    )
    assert [r.stored_name for r in results] == ["笔记.md", "笔记 (2).md", "笔记 (3).md"]
    assert [r.renamed for r in results] == [False, True, True]
    assert [r.path.read_bytes() for r in results if r.path] == [b"one", b"two", b"three"]


def test_a_different_file_with_a_stored_name_never_overwrites_it(settings: Settings) -> None:
    (first,) = save_uploads(settings, "default", [("报告.txt", b"version 1")])
    (second,) = save_uploads(settings, "default", [("报告.txt", b"version 2")])
    assert first.path is not None and first.path.read_bytes() == b"version 1"
    assert second.stored_name == "报告 (2).txt" and second.renamed
    assert second.path is not None and second.path.read_bytes() == b"version 2"


def test_identical_reupload_reuses_the_stored_file(settings: Settings) -> None:
    (first,) = save_uploads(settings, "default", [("a.txt", TEXT)])
    assert first.path is not None
    mtime = first.path.stat().st_mtime_ns
    again = save_uploads(settings, "default", [("a.txt", TEXT), ("a.txt", TEXT)])
    assert [r.path for r in again] == [first.path, first.path]
    assert all(r.reused and not r.renamed for r in again)
    assert first.path.stat().st_mtime_ns == mtime
    assert names_in(uploads_dir(settings, "default")) == ["a.txt"]


def test_identical_bytes_of_a_numbered_copy_are_reused(settings: Settings) -> None:
    save_uploads(settings, "default", [("a.txt", b"one"), ("a.txt", b"two")])
    (again,) = save_uploads(settings, "default", [("a.txt", b"two")])
    assert again.stored_name == "a (2).txt" and again.reused
    assert names_in(uploads_dir(settings, "default")) == ["a (2).txt", "a.txt"]


def test_numbered_copies_of_long_names_stay_within_255_bytes(settings: Settings) -> None:
    name = "长" * 100 + ".txt"
    results = save_uploads(settings, "default", [(name, b"1"), (name, b"2")])
    assert all(r.ok for r in results)
    assert results[1].stored_name.endswith(" (2).txt")
    assert all(len(r.stored_name.encode()) <= MAX_NAME_BYTES for r in results)


def test_uploads_of_different_kbs_are_kept_apart(settings: Settings) -> None:
    (a,) = save_uploads(settings, "甲", [("x.txt", b"a")])
    (b,) = save_uploads(settings, "乙", [("x.txt", b"b")])
    assert a.path != b.path and not b.renamed


def test_unsupported_empty_and_badly_named_files_are_rejected(settings: Settings) -> None:
    results = save_uploads(
        settings,
        "default",
        [("tool.exe", b"MZ"), ("空.txt", b""), ("..", b"x"), ("ok.md", b"# ok")],
    )
    codes = [r.rejection.code if r.rejection else None for r in results]
    assert codes == ["unsupported", "empty", "bad_name", None]
    assert "不支持的文件类型" in results[0].rejection.zh  # type: ignore[union-attr]
    assert names_in(uploads_dir(settings, "default")) == ["ok.md"]


def test_a_file_over_the_size_limit_is_not_kept(settings: Settings) -> None:
    small = settings.model_copy(update={"max_file_mb": 0.001})  # about 1 KB
    results = save_uploads(small, "default", [("big.txt", b"x" * 2000), ("small.txt", b"x")])
    assert results[0].rejection is not None and results[0].rejection.code == "too_large"
    assert "超过" in results[0].rejection.zh
    assert results[1].ok
    assert names_in(uploads_dir(small, "default")) == ["small.txt"]


def test_files_that_take_an_upload_over_its_limit_are_rejected(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_upload_mb": 0.002})  # about 2 KB in all
    files = [("a.txt", b"a" * 1500), ("b.txt", b"b" * 1500), ("c.txt", b"c" * 100)]
    results = save_uploads(limited, "default", files)
    assert [r.ok for r in results] == [True, False, True]
    rejection = results[1].rejection
    assert rejection is not None and rejection.code == "upload_too_large"
    assert "本次上传" in rejection.zh
    assert names_in(uploads_dir(limited, "default")) == ["a.txt", "c.txt"]


def test_nothing_but_whole_files_ever_appears(settings: Settings) -> None:
    results = save_uploads(settings, "default", [("a.txt", TEXT)])
    folder = uploads_dir(settings, "default")
    leftovers = [p for p in os.listdir(folder) if p.startswith(".upload-")]
    assert results[0].ok and leftovers == []


def test_an_invalid_kb_name_cannot_escape_the_uploads_folder(settings: Settings) -> None:
    from ingest.store import StoreError

    with pytest.raises(StoreError):
        save_uploads(settings, "../escape", [("a.txt", TEXT)])


# --- cleaning up ---


def test_discard_removes_only_unreferenced_uploads(settings: Settings, tmp_path: Path) -> None:
    (saved,) = save_uploads(settings, "default", [("a.txt", TEXT)])
    assert saved.path is not None
    outside = tmp_path / "mine.txt"
    outside.write_bytes(TEXT)
    KnowledgeBase.open(settings, "default", create=True).close()
    # no document comes from the file, so it goes
    assert discard_upload(settings, "default", str(saved.path))
    assert not saved.path.exists()
    assert not discard_upload(settings, "default", str(outside))
    assert outside.exists()


def test_delete_kb_uploads_removes_the_folder(settings: Settings) -> None:
    save_uploads(settings, "default", [("a.txt", TEXT)])
    delete_kb_uploads(settings, "default")
    assert not uploads_dir(settings, "default").exists()


def test_an_upload_a_document_still_comes_from_is_kept(
    settings: Settings, embedder: Embedder
) -> None:
    from ingest._insert import ingest_paths, remove_documents

    (saved,) = save_uploads(settings, "default", [("a.txt", TEXT)])
    assert saved.path is not None
    report = ingest_paths(settings, [saved.path], "default", embedder=embedder)
    assert [o.status for o in report.outcomes] == ["added"]
    assert not discard_upload(settings, "default", str(saved.path))
    assert saved.path.exists()
    removed, _ = remove_documents(settings, "default", [str(saved.path)])
    assert removed
    assert not saved.path.exists()  # removing its last document took the stored upload along
