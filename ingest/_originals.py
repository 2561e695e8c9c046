"""Copies of ingested files kept under the data home (`<ZHIKU_HOME>/originals/<kb>/`), so a
citation can still be opened on its page after the source folder moved or was deleted.

A copy is named by the file's SHA-256 (the name the `sources` table already records), so the
same file ingested twice is kept once and a changed file gets a new copy. Uploads are not
copied again: they already live under the data home (`ingest/_upload.py`).
`KEEP_ORIGINALS=false` turns copying off; the viewer then opens the file where it was ingested
from, when it is still there.

With `ORIGINALS_STORE=database` (`ingest/_blobs.py`) the kept copies and the uploads go into the
state database as well, so that every app server sharing it opens them; `originals/<kb>/` is
then each server's cache of what it opened, filled on first use under the same names.
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

from sqlalchemy.exc import SQLAlchemyError

from ingest._blobs import (
    BlobError,
    blob_engine,
    delete_blobs,
    delete_kb_blobs,
    kb_has_blobs,
    originals_in_database,
    put_blob,
    read_blob,
)
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


def keep_original(settings: Settings, kb_name: str, path: Path, sha256: str) -> bool:
    """Keep the bytes of `path` (which hash to `sha256`): a copy under the data home, or with
    `ORIGINALS_STORE=database` the bytes in the state database, uploads included (they must
    open on every server). False when nothing is kept: copying is off, the file is an upload
    kept in its folder, or keeping failed (logged: the ingest goes on)."""
    uploads = (settings.zhiku_home / UPLOADS_DIR).resolve()
    upload = path.resolve().is_relative_to(uploads)
    if originals_in_database(settings):
        if not (settings.keep_originals or upload):
            return False
        try:
            put_blob(blob_engine(settings), kb_name, sha256, path, path.name)
        except (OSError, SQLAlchemyError, BlobError) as exc:
            log.warning("could not keep %s in the state database: %s", path, exc)
            return False
        return True
    if not settings.keep_originals or upload:
        return False
    target = originals_dir(settings, kb_name) / _copy_name(sha256, str(path))
    if target.is_file():
        return True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.part")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
    except OSError as exc:
        log.warning("could not keep a copy of %s: %s", path, exc)
        return False
    return True


def _unchanged(file: Path, sha256: str) -> bool:
    """`file` exists and still has the bytes that were ingested (a changed file would show
    other pages than the citation's)."""
    try:
        return file.is_file() and hashlib.sha256(file.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def original_file(settings: Settings, kb_name: str, origin: str, sha256: str | None) -> Path | None:
    """The kept copy of `origin`, else `origin` itself when it still has the ingested bytes,
    else (`ORIGINALS_STORE=database`) the original fetched from the state database into this
    server's cache: a local path in every case, None when there is no original."""
    file = Path(origin.split("#", 1)[0])
    if sha256 is None:  # no hash recorded for it: the file itself, as it is
        return file if file.is_file() else None
    kept = originals_dir(settings, kb_name) / _copy_name(sha256, origin)
    if kept.is_file():
        return kept
    if _unchanged(file, sha256):
        return file
    if not originals_in_database(settings):
        return None
    try:
        fetched = read_blob(blob_engine(settings), kb_name, sha256, kept)
    except (OSError, SQLAlchemyError, BlobError) as exc:
        log.warning("could not fetch the original of %s: %s", origin, exc)
        return None
    return kept if fetched else None


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
    unless another of its files has the same bytes (one copy serves all of them); with
    `ORIGINALS_STORE=database` their rows in the state database too. Called under the writer
    lock, after the write: an ingest that would reuse the copy waits for it. Returns how many
    copies were deleted (rows, in the database's case)."""
    dropped = list(dropped)
    records = kb.source_records()
    kept = {_copy_name(sha, origin) for origin, sha, _ in records}
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
    if not originals_in_database(settings):
        return removed
    unheld = {sha for _, sha in dropped} - {sha for _, sha, _ in records}
    try:
        return delete_blobs(blob_engine(settings), kb.name, unheld)
    except SQLAlchemyError as exc:  # as with a copy that could not be deleted
        log.warning("could not delete originals of %s from the state database: %s", kb.name, exc)
        return 0


def kb_has_originals(settings: Settings, kb_name: str) -> bool:
    """Whether knowledge base `kb_name` has kept copies here or originals in the database."""
    if originals_dir(settings, kb_name).exists():
        return True
    if not originals_in_database(settings):
        return False
    try:
        return kb_has_blobs(blob_engine(settings), kb_name)
    except SQLAlchemyError as exc:  # an I/O failure like any other: "cannot tell"
        raise OSError(f"cannot read the state database: {exc}") from exc


def delete_kb_originals(settings: Settings, kb_name: str) -> None:
    """Remove a deleted knowledge base's kept copies (this server's cache of them) and, with
    `ORIGINALS_STORE=database`, its originals in the state database; raises OSError when some
    stay."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(originals_dir(settings, kb_name))
    if not originals_in_database(settings):
        return
    try:
        delete_kb_blobs(blob_engine(settings), kb_name)
    except SQLAlchemyError as exc:
        raise OSError(f"the originals in the state database stay: {exc}") from exc
