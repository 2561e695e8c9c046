"""The SQLite side of a FAISS + SQLite knowledge base: its schema, connections, folders, and
errors a user can act on."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
from filelock import FileLock, Timeout

from ingest.settings import Settings
from ingest.store.base import (
    ChunkRecord,
    StoreError,
    validate_kb_name,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_FILE = "kb.sqlite"
LOCK_FILE = "write.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents(sha256);
CREATE INDEX IF NOT EXISTS documents_origin ON documents(origin);
CREATE TABLE IF NOT EXISTS pages (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    seq INTEGER NOT NULL,
    number INTEGER,
    text TEXT NOT NULL,
    layout TEXT,
    PRIMARY KEY (doc_id, seq)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_key TEXT NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    ordinal INTEGER NOT NULL,
    page INTEGER,
    page_seq INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    headings TEXT NOT NULL,
    kind TEXT NOT NULL,
    embed_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    gen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE INDEX IF NOT EXISTS chunks_gen ON chunks(gen);
CREATE INDEX IF NOT EXISTS chunks_embed_hash ON chunks(embed_hash);
CREATE TABLE IF NOT EXISTS removed (id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize = 'unicode61');
"""


def _write_error(path: Path, exc: BaseException, kb: str) -> StoreError:
    """A failed write as something a user can act on, naming the file."""
    text = str(exc).lower()
    code = getattr(exc, "errno", None)
    if "full" in text or "no space" in text or code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StoreError(
            f"cannot write {path}: the disk is full. Free some space and run the same command "
            "again; what was committed before is intact and nothing is half-written.",
            f"无法写入 {path}：磁盘已满。请释放空间后重新运行同一命令；"
            "之前提交的内容完好，不会有写了一半的数据。",
        )
    if (
        "readonly" in text
        or "read-only" in text
        or code in (errno.EROFS, errno.EACCES, errno.EPERM)
    ):
        return StoreError(
            f"cannot write {path}: the data home is read-only. Make {path.parent} writable or "
            "set ZHIKU_HOME to a writable folder; reading and asking still work.",
            f"无法写入 {path}：数据目录是只读的。请让 {path.parent} 可写，"
            "或把 ZHIKU_HOME 设为可写的目录；查阅和提问仍然可用。",
        )
    return StoreError(
        f"cannot write {path}: {exc}. Nothing is half-written; run `zhiku kb check --kb {kb}`.",
        f"无法写入 {path}：{exc}。不会有写了一半的数据；请运行 `zhiku kb check --kb {kb}`。",
    )


_CHUNK_COLUMNS = (
    "c.id, c.chunk_key, c.doc_id, c.ordinal, c.page, c.page_seq, c.start, c.end, c.text, "
    "c.headings, c.kind, d.title, d.source, d.doc_type"
)


def _chunk_record(row: Sequence) -> ChunkRecord:
    return ChunkRecord(
        id=row[0],
        chunk_key=row[1],
        doc_id=row[2],
        ordinal=row[3],
        page=row[4],
        page_seq=row[5],
        start=row[6],
        end=row[7],
        text=row[8],
        headings=tuple(json.loads(row[9])),
        kind=row[10],
        title=row[11],
        source=row[12],
        doc_type=row[13],
    )


def _vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def kb_path(settings: Settings, name: str) -> Path:
    return settings.kbs_dir / validate_kb_name(name)


def list_kbs(settings: Settings) -> list[str]:
    if not settings.kbs_dir.is_dir():
        return []
    return sorted(p.name for p in settings.kbs_dir.iterdir() if (p / DB_FILE).is_file())


def delete_kb(settings: Settings, name: str) -> None:
    """Remove a knowledge base; waits for any writer first so no ingest is cut in half."""
    path = kb_path(settings, name)
    if not (path / DB_FILE).is_file():
        raise StoreError(f"knowledge base {name!r} does not exist", f"知识库 {name!r} 不存在")
    lock = FileLock(str(path / LOCK_FILE), timeout=settings.lock_timeout_s)
    try:
        with lock:
            trash = path.with_name(f".deleted-{path.name}-{time.time_ns()}")
            path.rename(trash)
    except Timeout as exc:
        raise StoreError(
            f"knowledge base {name!r} is being written by another process",
            f"知识库 {name!r} 正在被另一个进程写入",
        ) from exc
    shutil.rmtree(trash, ignore_errors=True)


def _connect(db_path: Path) -> tuple[sqlite3.Connection, bool]:
    """A connection, and whether it is read-only (a read-only data home can still be read)."""
    try:
        conn = sqlite3.connect(db_path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn, False
    except sqlite3.OperationalError as exc:
        read_only = "readonly" in str(exc) or "unable to open" in str(exc)
        if not (db_path.is_file() and read_only):
            raise _damaged(db_path, exc) from exc
    except sqlite3.DatabaseError as exc:
        raise _damaged(db_path, exc) from exc
    # immutable: no locks, no WAL (writers checkpoint it into the main file when they finish)
    uri = f"file:{quote(str(db_path.resolve()))}?immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _damaged(db_path, exc) from exc
    return conn, True


def _damaged(db_path: Path, exc: Exception) -> StoreError:
    kb = db_path.parent.name
    return StoreError(
        f"{db_path} cannot be read ({exc}). Run `zhiku kb check --repair --kb {kb}` to salvage "
        "what is readable (the damaged file is kept), or delete the knowledge base and ingest "
        "the files again.",
        f"无法读取 {db_path}（{exc}）。请运行 `zhiku kb check --repair --kb {kb}` "
        "挽救可读的内容（损坏的文件会保留），或删除该知识库后重新导入文件。",
    )
