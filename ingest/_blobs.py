"""Originals as rows of the state database (`ORIGINALS_STORE=database`), so that every app server
sharing that database opens the same file at its cited page, whichever server ingested it.

A file is stored once per knowledge base and SHA-256: its bytes as `original_blobs` rows of at
most `CHUNK_BYTES`, then one `original_files` row naming how many there are, in one transaction,
so a reader sees a whole original or none (the header row is the commit). Storing the same bytes
again is a no-op, also when two servers store them at once (INSERT … ON CONFLICT DO NOTHING).
Bytes are checked against their SHA-256 on the way in and on the way out: a wrong file is never
stored nor shown.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ingest.settings import Settings
from ingest.statedb import insert_or_ignore, is_postgresql, state_engine, writing

CHUNK_BYTES = 1 << 20  # a row of PostgreSQL's bytea or SQLite's blob, read one at a time

metadata = sa.MetaData()

original_files = sa.Table(
    "original_files",
    metadata,
    sa.Column("kb", sa.String, primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("name", sa.String, nullable=False),  # the file name it was first stored under
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("stored_at", sa.String(32), nullable=False),
)

original_blobs = sa.Table(
    "original_blobs",
    metadata,
    sa.Column("kb", sa.String, primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose tables exist
_lock = threading.Lock()


class BlobError(RuntimeError):
    """Bytes that are not what their SHA-256 says: refused, never stored nor shown."""


def originals_in_database(settings: Settings) -> bool:
    """Whether originals go into the state database: `ORIGINALS_STORE=database`, or `auto`
    with a PostgreSQL `STATE_URL` (several servers share it; SQLite is one machine's)."""
    if settings.originals_store == "auto":
        return is_postgresql(settings)
    return settings.originals_store == "database"


def blob_engine(settings: Settings) -> Engine:
    """The state database's engine, the originals' tables made once per engine."""
    engine = state_engine(settings)
    with _lock:
        if engine not in _ready:
            with writing(engine) as connection:
                if connection.dialect.name == "postgresql":
                    # two servers starting at once: one creates the tables, the other waits
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(2026120702)"))
                metadata.create_all(connection)
            _ready.add(engine)
    return engine


def _key(kb: str, sha256: str) -> sa.ColumnElement[bool]:
    return sa.and_(original_files.c.kb == kb, original_files.c.sha256 == sha256)


def _header(connection: Connection, kb: str, sha256: str) -> sa.Row | None:
    return connection.execute(
        sa.select(original_files.c.size, original_files.c.chunks).where(_key(kb, sha256))
    ).first()


def has_blob(engine: Engine, kb: str, sha256: str) -> bool:
    with engine.connect() as connection:
        return _header(connection, kb, sha256) is not None


def put_blob(engine: Engine, kb: str, sha256: str, path: Path, name: str) -> bool:
    """Store the bytes of `path` as `kb`'s original `sha256` unless they are stored already;
    True when they were stored now. Raises BlobError (nothing stored) when they do not hash to
    `sha256`, OSError when `path` cannot be read."""
    if has_blob(engine, kb, sha256):
        return False
    with writing(engine) as connection:
        if _header(connection, kb, sha256) is not None:
            return False
        digest = hashlib.sha256()
        size = seq = 0
        with path.open("rb") as handle:
            while block := handle.read(CHUNK_BYTES):
                digest.update(block)
                connection.execute(
                    insert_or_ignore(original_blobs, connection).values(
                        kb=kb, sha256=sha256, seq=seq, data=block
                    )
                )
                size += len(block)
                seq += 1
        if digest.hexdigest() != sha256:
            raise BlobError(f"{path} does not hash to {sha256}: not stored")  # rolls back
        connection.execute(
            insert_or_ignore(original_files, connection).values(
                kb=kb,
                sha256=sha256,
                name=name,
                size=size,
                chunks=seq,
                stored_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )
    return True


def read_blob(engine: Engine, kb: str, sha256: str, target: Path) -> bool:
    """Write `kb`'s original `sha256` to `target` (whole or not at all); False when it is not
    stored. Raises BlobError when the stored bytes are not the original's (`target` untouched)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )
    try:
        with engine.connect() as connection, handle:
            header = _header(connection, kb, sha256)
            if header is None:
                return False
            digest = hashlib.sha256()
            for seq in range(header.chunks):  # one row at a time: a file never sits in memory
                block = connection.execute(
                    sa.select(original_blobs.c.data).where(
                        original_blobs.c.kb == kb,
                        original_blobs.c.sha256 == sha256,
                        original_blobs.c.seq == seq,
                    )
                ).scalar()
                if block is None:
                    raise BlobError(f"part {seq} of {kb}/{sha256} is missing")
                digest.update(block)
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        if digest.hexdigest() != sha256 or Path(handle.name).stat().st_size != header.size:
            raise BlobError(f"the stored bytes of {kb}/{sha256} do not hash to it")
        os.replace(handle.name, target)
        return True
    finally:
        Path(handle.name).unlink(missing_ok=True)


def delete_blobs(engine: Engine, kb: str, sha256s: Iterable[str]) -> int:
    """Delete `kb`'s originals of these SHA-256s; returns how many there were."""
    wanted = sorted(set(sha256s))
    if not wanted:
        return 0
    with writing(engine) as connection:
        removed = connection.execute(
            sa.delete(original_files).where(
                original_files.c.kb == kb, original_files.c.sha256.in_(wanted)
            )
        ).rowcount
        connection.execute(
            sa.delete(original_blobs).where(
                original_blobs.c.kb == kb, original_blobs.c.sha256.in_(wanted)
            )
        )
    return removed


def delete_kb_blobs(engine: Engine, kb: str) -> int:
    """Delete every original of knowledge base `kb`; returns how many there were."""
    with writing(engine) as connection:
        removed = connection.execute(
            sa.delete(original_files).where(original_files.c.kb == kb)
        ).rowcount
        connection.execute(sa.delete(original_blobs).where(original_blobs.c.kb == kb))
    return removed


def stored_blobs(engine: Engine, kb: str) -> dict[str, int]:
    """`kb`'s stored originals: SHA-256 → size in bytes."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(original_files.c.sha256, original_files.c.size).where(
                original_files.c.kb == kb
            )
        )
        return {sha: size for sha, size in rows}


def kb_has_blobs(engine: Engine, kb: str) -> bool:
    with engine.connect() as connection:
        query = sa.select(original_files.c.sha256).where(original_files.c.kb == kb).limit(1)
        return connection.execute(query).first() is not None
