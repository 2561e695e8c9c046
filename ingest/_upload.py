"""Files uploaded through the web app, saved under the data home before they are ingested.

A browser sends a file name chosen by whoever made the file, so nothing of it is trusted: only
its last path component is kept, control, invisible and file-system-illegal characters go, and
the result fits in 255 UTF-8 bytes (the name limit of ext4, APFS and NTFS alike). A name already
taken by a different file is never overwritten: the new one becomes `name (2).ext`, so every
document in a knowledge base keeps its own original. The same bytes under the same name reuse
the stored file, which makes uploading a folder twice a no-op for the ingester.

Limits: a file over `max_file_mb` is rejected unread; within one upload, files are kept in order
while the running total stays within `max_upload_mb`, and each file that would take it over is
rejected (`upload_too_large`). Keeping the files that fit rather than refusing the whole upload
means a user who dropped too much gets the first part in and is told exactly which files to send
again, instead of nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ingest._reasons import Rejection
from ingest.load import SUPPORTED_SUFFIXES
from ingest.settings import Settings
from ingest.store import KnowledgeBase, StoreError, validate_kb_name

UPLOADS_DIR = "uploads"
MAX_NAME_BYTES = 255
_LOCK_NAME = ".uploads.lock"
_TEMP_PREFIX = ".upload-"
_MAX_COPIES = 10_000
_COMPARE_BLOCK = 1 << 20

# Illegal on Windows (and `/` everywhere); replaced rather than dropped so words stay apart.
_ILLEGAL_CHARS = frozenset('<>:"/\\|?*')
# Control, format (bidi overrides that disguise an extension, zero-width), surrogate (cannot be
# encoded) and line/paragraph separator characters never belong in a file name.
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


@dataclass(frozen=True)
class SavedUpload:
    """One uploaded file: where it was stored, or why it was not."""

    name: str  # the name as the browser sent it
    path: Path | None = None  # absolute; None when rejected
    rejection: Rejection | None = None
    reused: bool = False  # the same bytes were already stored under this name
    renamed: bool = False  # the name was taken by a different file: stored as `name (n).ext`

    @property
    def ok(self) -> bool:
        return self.path is not None

    @property
    def stored_name(self) -> str:
        return self.path.name if self.path is not None else ""


def uploads_dir(settings: Settings, kb_name: str) -> Path:
    return settings.zhiku_home / UPLOADS_DIR / validate_kb_name(kb_name)


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not extension:
        return name, ""
    return stem, "." + extension


def _fit(stem: str, tail: str, limit: int = MAX_NAME_BYTES) -> str | None:
    """`stem + tail` cut to `limit` UTF-8 bytes by shortening the stem at a character
    boundary; None when not even one character of the stem fits."""
    budget = limit - len(tail.encode("utf-8"))
    if budget <= 0:
        return None
    cut = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
    return cut + tail if cut else None


def sanitize_filename(raw: str) -> str:
    """A safe base name for `raw`, or `Rejection("bad_name")` when nothing usable is left."""
    # NFKC first: it turns look-alikes such as the full-width solidus into `/`, which the next
    # step then treats as the separator it pretends not to be.
    name = unicodedata.normalize("NFKC", raw)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in _STRIPPED_CATEGORIES)
    name = "".join("_" if c in _ILLEGAL_CHARS else c for c in name)
    name = " ".join(name.split())
    # Leading dots would hide the file; trailing dots and spaces are dropped by Windows.
    name = name.strip(" .")
    if not name:
        raise Rejection("bad_name", detail=f"{raw!r} has no usable characters")
    stem, extension = _split_extension(name)
    if stem.upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    fitted = _fit(stem, extension)
    if fitted is None:
        raise Rejection("bad_name", detail=f"the extension of {raw!r} is too long")
    return fitted


def _copy_name(name: str, copy: int) -> str:
    if copy == 1:
        return name
    stem, extension = _split_extension(name)
    fitted = _fit(stem, f" ({copy}){extension}")
    if fitted is None:  # cannot happen for names sanitize_filename returned; be explicit
        raise Rejection("bad_name", detail=f"no room for a copy number in {name!r}")
    return fitted


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        view = memoryview(data)
        with path.open("rb") as handle:
            position = 0
            while block := handle.read(_COMPARE_BLOCK):
                if block != view[position : position + len(block)]:
                    return False
                position += len(block)
        return position == len(data)
    except OSError:
        return False


def _write_atomically(target: Path, data: bytes) -> None:
    """Readers (and a crash) see the whole file or none of it."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename
        dir=target.parent, prefix=_TEMP_PREFIX, delete=False
    )
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _store(folder: Path, name: str, data: bytes) -> tuple[Path, bool, bool]:
    """Save under `name`, or its first free `name (n).ext`; reuse a copy with the same bytes.
    Returns (path, reused, renamed). Callers hold the folder lock."""
    for copy in range(1, _MAX_COPIES + 1):
        target = folder / _copy_name(name, copy)
        if not target.exists():
            _write_atomically(target, data)
            return target, False, copy > 1
        if target.is_file() and _same_bytes(target, data):
            return target, True, copy > 1
    raise Rejection("internal", detail=f"more than {_MAX_COPIES} files named {name!r}")


def _check(name: str, data: bytes, settings: Settings) -> str:
    """The sanitized name, or the Rejection that keeps this file out."""
    safe = sanitize_filename(name)
    extension = _split_extension(safe)[1]
    if extension.lower() not in SUPPORTED_SUFFIXES:
        raise Rejection(
            "unsupported",
            suffix=extension or safe,
            supported=", ".join(sorted(SUPPORTED_SUFFIXES)),
        )
    if not data:
        raise Rejection("empty")
    if len(data) > settings.max_file_mb * 2**20:
        raise Rejection("too_large", size_mb=len(data) / 2**20, limit_mb=settings.max_file_mb)
    return safe


def save_uploads(
    settings: Settings, kb_name: str, files: Sequence[tuple[str, bytes]]
) -> list[SavedUpload]:
    """Save uploaded `(name, bytes)` pairs under `<ZHIKU_HOME>/uploads/<kb>/`, one result per
    file in the same order. Nothing rejected is written."""
    folder = uploads_dir(settings, kb_name)
    limit = settings.max_upload_mb * 2**20
    results: list[SavedUpload] = []
    accepted: list[tuple[int, str, bytes]] = []
    total = 0
    for index, (name, data) in enumerate(files):
        try:
            safe = _check(name, data, settings)
            if total + len(data) > limit:
                raise Rejection(
                    "upload_too_large",
                    size_mb=(total + len(data)) / 2**20,
                    limit_mb=settings.max_upload_mb,
                )
        except Rejection as rejection:
            results.append(SavedUpload(name, rejection=rejection))
            continue
        total += len(data)
        accepted.append((index, safe, data))
        results.append(SavedUpload(name))  # replaced once stored
    if not accepted:
        return results
    folder.mkdir(parents=True, exist_ok=True)
    # One saver at a time per folder: "is this name free?" and the rename must not interleave
    # with another browser tab or process saving the same name.
    with FileLock(str(folder / _LOCK_NAME), timeout=settings.lock_timeout_s):
        for index, safe, data in accepted:
            try:
                path, reused, renamed = _store(folder, safe, data)
            except Rejection as rejection:
                results[index] = SavedUpload(results[index].name, rejection=rejection)
                continue
            except OSError as exc:
                rejection = Rejection("save_failed", detail=exc.strerror or str(exc))
                results[index] = SavedUpload(results[index].name, rejection=rejection)
                continue
            results[index] = SavedUpload(
                results[index].name, path.resolve(), reused=reused, renamed=renamed
            )
    return results


def discard_upload(settings: Settings, kb_name: str, origin: str) -> bool:
    """Delete the stored upload `origin` once no document of the knowledge base comes from it
    (a removed document should not leave its private copy behind). Files outside the
    knowledge base's upload folder, such as ones ingested from the command line, are the
    user's own and never touched. Returns whether a file was deleted."""
    folder = uploads_dir(settings, kb_name).resolve()
    path = Path(origin)
    if path.parent != folder or not path.is_file():
        return False
    try:
        kb = KnowledgeBase.open(settings, kb_name)
    except StoreError:
        return False
    with kb:
        if kb.doc_ids_of_origin(origin):
            return False
    path.unlink(missing_ok=True)
    return True


def delete_kb_uploads(settings: Settings, kb_name: str) -> None:
    """Remove the uploaded copies of a deleted knowledge base; raises OSError when some stay."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(uploads_dir(settings, kb_name))


__all__ = [
    "MAX_NAME_BYTES",
    "SavedUpload",
    "delete_kb_uploads",
    "discard_upload",
    "sanitize_filename",
    "save_uploads",
    "uploads_dir",
]
