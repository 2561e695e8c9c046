"""Originals in the state database (`ingest/_blobs.py`), on SQLite and a real PostgreSQL: stored
once per SHA-256, read back byte for byte, wrong bytes refused both ways, deleted per file and per
knowledge base; and which setting puts them there."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import make_settings

from ingest._blobs import (
    CHUNK_BYTES,
    BlobError,
    blob_engine,
    delete_blobs,
    delete_kb_blobs,
    has_blob,
    kb_has_blobs,
    original_blobs,
    originals_in_database,
    put_blob,
    read_blob,
    stored_blobs,
)
from ingest.settings import Settings


def _file(path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _rows(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(original_blobs)).scalar()


def test_an_original_is_stored_once_and_read_back_byte_for_byte(
    state_settings: Settings, tmp_path: Path
) -> None:
    engine = blob_engine(state_settings)
    path, sha = _file(tmp_path / "手册.pdf", 2 * CHUNK_BYTES + 123)  # three rows
    assert put_blob(engine, "kb", sha, path, path.name)
    assert not put_blob(engine, "kb", sha, path, path.name)  # the same bytes again: a no-op
    assert _rows(engine) == 3 and stored_blobs(engine, "kb") == {sha: path.stat().st_size}
    target = tmp_path / "cache" / f"{sha}.pdf"
    assert read_blob(engine, "kb", sha, target)
    assert target.read_bytes() == path.read_bytes()
    assert list(target.parent.iterdir()) == [target]  # no partial file left beside it
    assert not read_blob(engine, "other", sha, tmp_path / "x.pdf")  # another knowledge base's
    assert not (tmp_path / "x.pdf").exists()


def test_two_servers_storing_the_same_file_at_once_store_it_once(
    state_settings: Settings, tmp_path: Path
) -> None:
    engine = blob_engine(state_settings)
    path, sha = _file(tmp_path / "a.txt", CHUNK_BYTES + 1)
    errors: list[BaseException] = []

    def store() -> None:
        try:
            put_blob(engine, "kb", sha, path, path.name)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _rows(engine) == 2 and list(stored_blobs(engine, "kb")) == [sha]


def test_bytes_that_do_not_hash_to_their_name_are_refused(
    state_settings: Settings, tmp_path: Path
) -> None:
    engine = blob_engine(state_settings)
    path, sha = _file(tmp_path / "a.pdf", 1000)
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(BlobError):
        put_blob(engine, "kb", wrong, path, path.name)
    assert not has_blob(engine, "kb", wrong) and _rows(engine) == 0  # nothing half-stored

    put_blob(engine, "kb", sha, path, path.name)
    with engine.begin() as connection:  # the stored bytes damaged behind zhiku's back
        connection.execute(sa.update(original_blobs).values(data=b"x" * 1000))
    target = tmp_path / "cache" / "a.pdf"
    with pytest.raises(BlobError):
        read_blob(engine, "kb", sha, target)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_deleting_removes_only_what_was_named(state_settings: Settings, tmp_path: Path) -> None:
    engine = blob_engine(state_settings)
    one, sha1 = _file(tmp_path / "1.txt", 10)
    two, sha2 = _file(tmp_path / "2.txt", CHUNK_BYTES + 10)
    for kb in ("a", "b"):
        put_blob(engine, kb, sha1, one, one.name)
        put_blob(engine, kb, sha2, two, two.name)
    assert delete_blobs(engine, "a", [sha2, sha2]) == 1
    assert list(stored_blobs(engine, "a")) == [sha1] and len(stored_blobs(engine, "b")) == 2
    assert _rows(engine) == 1 + 1 + 2  # a: sha1; b: sha1 and sha2's two rows
    assert delete_kb_blobs(engine, "b") == 2
    assert not kb_has_blobs(engine, "b") and kb_has_blobs(engine, "a")
    assert _rows(engine) == 1
    assert delete_blobs(engine, "a", []) == 0


def test_the_database_holds_originals_when_the_state_is_postgresql_or_when_told(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    pg = "postgresql://zhiku@db:5432/zhiku"
    assert not originals_in_database(make_settings(home))
    assert originals_in_database(make_settings(home, state_url=pg))
    assert not originals_in_database(make_settings(home, state_url=pg, originals_store="files"))
    assert originals_in_database(make_settings(home, originals_store="database"))  # one SQLite
