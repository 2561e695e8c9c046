"""Copies of ingested files kept under the data home (`<ZHIKU_HOME>/originals/<kb>/`), so a
citation can still be opened on its page after the source folder moved or was deleted.

A copy is named by the file's SHA-256 (the name the `sources` table already records), so the
same file ingested twice is kept once and a changed file gets a new copy. Uploads are not
copied again: they already live under the data home (`ingest/_upload.py`).
`KEEP_ORIGINALS=false` turns copying off; the viewer then opens the file where it was ingested
from, when it is still there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ingest._store import validate_kb_name
from ingest.settings import Settings

if TYPE_CHECKING:
    from ingest.store import KnowledgeBase

log = logging.getLogger(__name__)

ORIGINALS_DIR = "originals"
UPLOADS_DIR = "uploads"


def originals_dir(settings: Settings, kb_name: str) -> Path:
    return settings.zhiku_home / ORIGINALS_DIR / validate_kb_name(kb_name)


def _copy_name(sha256: str, origin: str) -> str:
    return sha256 + Path(origin.split("#", 1)[0]).suffix.lower()


def keep_original(settings: Settings, kb_name: str, path: Path, sha256: str) -> Path | None:
    """Copy `path` (whose bytes hash to `sha256`) under the data home; None when copying is off,
    the file is an upload (already kept), or the copy failed (logged: the ingest goes on)."""
    if not settings.keep_originals:
        return None
    uploads = (settings.zhiku_home / UPLOADS_DIR).resolve()
    if path.resolve().is_relative_to(uploads):
        return None
    target = originals_dir(settings, kb_name) / _copy_name(sha256, str(path))
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.part")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
    except OSError as exc:
        log.warning("could not keep a copy of %s: %s", path, exc)
        return None
    return target


def original_file(settings: Settings, kb_name: str, origin: str, sha256: str | None) -> Path | None:
    """The kept copy of `origin`, else `origin` itself when it exists and still has the bytes
    that were ingested (a changed file would show other pages than the citation's)."""
    file = Path(origin.split("#", 1)[0])
    if sha256:
        kept = originals_dir(settings, kb_name) / _copy_name(sha256, origin)
        if kept.is_file():
            return kept
    if not file.is_file():
        return None
    if sha256 is None:
        return file
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return None
    return file if digest == sha256 else None


def discard_originals(settings: Settings, kb_name: str, keep: set[str]) -> int:
    """Delete kept copies whose SHA-256 is not in `keep` (the files still in the knowledge
    base); returns how many were deleted."""
    folder = originals_dir(settings, kb_name)
    removed = 0
    for copy in folder.glob("*") if folder.is_dir() else ():
        if copy.is_file() and copy.name.split(".", 1)[0] not in keep:
            copy.unlink(missing_ok=True)
            removed += 1
    return removed


def release_originals(
    settings: Settings, kb: KnowledgeBase, dropped: Iterable[tuple[str, str]]
) -> int:
    """Delete the kept copies of files, given as (origin, sha256), that `kb` no longer holds,
    unless another of its files has the same bytes (one copy serves all of them). Called under
    the writer lock, after the write: an ingest that would reuse the copy waits for it.
    Returns how many copies were deleted."""
    kept = {_copy_name(sha, origin) for origin, sha, _ in kb.source_records()}
    folder = originals_dir(settings, kb.name)
    removed = 0
    for name in {_copy_name(sha, origin) for origin, sha in dropped} - kept:
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # the document is gone all the same; the copy stays, said so
            log.warning("could not delete the kept copy %s: %s", folder / name, exc)
            continue
        removed += 1
    return removed


def delete_kb_originals(settings: Settings, kb_name: str) -> None:
    """Remove a deleted knowledge base's kept copies; raises OSError when some stay."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(originals_dir(settings, kb_name))
