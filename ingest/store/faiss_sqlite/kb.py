"""A knowledge base on disk: SQLite for documents, pages, chunks, their vectors and an FTS5
keyword index; FAISS for fast vector search. No pickle anywhere.

LangChain's FAISS store pickles its docstore (and needs `allow_dangerous_deserialization` to load
it): a knowledge-base folder must never be able to run code, so the store is our own.

Crash safety comes from SQLite: every change to a document is one transaction, and the FAISS
file is only a cache named after the database generation it reflects. Chunks record the
generation that added them and removed chunk ids leave a tombstone, so an older FAISS file is
caught up on open (or rebuilt from the stored vectors when it is missing or damaged). A file
lock serialises writers across processes; readers never block.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ingest._chunk import Chunk
from ingest._embed import EmbeddingSpec
from ingest._vectors import VectorIndex, index_file_name
from ingest.load import PageLayout
from ingest.settings import Settings
from ingest.store.base import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeBase,
    PreparedChunk,
    StoreError,
    parse_layout,
    validate_kb_name,
)
from ingest.store.base import (
    now as utc_now,
)
from ingest.store.faiss_sqlite.keyword import KeywordIndex
from ingest.store.faiss_sqlite.repair import Checks
from ingest.store.faiss_sqlite.schema import (
    _CHUNK_COLUMNS,
    _SCHEMA,
    DB_FILE,
    LOCK_FILE,
    SCHEMA_VERSION,
    _chunk_record,
    _connect,
    _damaged,
    _write_error,
    kb_path,
)
from ingest.store.faiss_sqlite.vectors import VectorSync
from ingest.store.faiss_sqlite.write import SqliteWriter

log = logging.getLogger(__name__)


class FaissSqliteKB(KeywordIndex, VectorSync, Checks, KnowledgeBase):
    """One named knowledge base in a folder. Thread-safe; share one instance per process."""

    store = "faiss"

    def __init__(
        self,
        settings: Settings,
        name: str,
        path: Path,
        conn: sqlite3.Connection,
        read_only: bool = False,
    ) -> None:
        self.settings = settings
        self.name = name
        self.path = path
        self.conn = conn
        self.read_only = read_only
        self.has_page_layout = False  # set when the schema is checked
        self._lock = threading.RLock()
        self._vectors: VectorIndex | None = None
        self._vectors_problem: str | None = None

    def identity(self) -> str:
        return str((self.path / DB_FILE).stat().st_ino)

    def describe(self) -> str:
        return f"faiss ({self.path})"

    # ----- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, settings: Settings, name: str | None = None, create: bool = False
    ) -> FaissSqliteKB:
        name = validate_kb_name(settings.default_kb if name is None else name)
        path = kb_path(settings, name)
        db_path = path / DB_FILE
        if not db_path.is_file():
            if not create:
                raise StoreError(
                    f"knowledge base {name!r} does not exist yet: "
                    f"create it with `zhiku ingest PATH --kb {name}`",
                    f"知识库 {name!r} 还不存在：请先在“知识库”页面上传文件，"
                    f"或运行 `zhiku ingest PATH --kb {name}`",
                )
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _write_error(path, exc, name) from exc
        conn, read_only = _connect(db_path)
        kb = cls(settings, name, path, conn, read_only)
        try:
            kb._ensure_schema(create)
        except sqlite3.OperationalError as exc:
            conn.close()
            raise _write_error(db_path, exc, name) from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _damaged(db_path, exc) from exc
        return kb

    def _ensure_schema(self, create: bool) -> None:
        with self._lock:
            exists = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            if not exists:
                if not create:
                    raise StoreError(f"{self.path / DB_FILE} is not a zhiku knowledge base")
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self.conn.execute(statement)
                    for key, value in (
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("generation", "0"),
                        ("epoch", "1"),
                        ("created_at", utc_now()),
                    ):
                        self.conn.execute(
                            "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value)
                        )
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
            version = int(self._meta("schema_version") or 0)
            if version != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path / DB_FILE} has schema version {version}, this zhiku reads "
                    f"{SCHEMA_VERSION}: ingest the files into a new knowledge base"
                )
            self._add_page_layout_column()

    def _add_page_layout_column(self) -> None:
        """Knowledge bases made before OCR have no `pages.layout` (the OCR line boxes of a
        page); a nullable column is added in place, which SQLite does without rewriting."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(pages)")}
        self.has_page_layout = "layout" in columns
        if self.has_page_layout or self.read_only:
            return
        try:
            self.conn.execute("ALTER TABLE pages ADD COLUMN layout TEXT")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it meanwhile
                raise
        self.has_page_layout = True

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # ----- metadata ------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def generation(self) -> int:
        with self._lock:
            return int(self._meta("generation") or 0)

    @property
    def epoch(self) -> int:
        with self._lock:
            return int(self._meta("epoch") or 1)

    def embedding_spec(self) -> EmbeddingSpec | None:
        with self._lock:
            raw = self._meta("embedding")
        return EmbeddingSpec(**json.loads(raw)) if raw else None

    def vectors_stale(self) -> bool:
        """Whether the FAISS file on disk lags behind the database."""

        return not (self.path / index_file_name(self.epoch, self.generation)).is_file()

    # ----- reading -------------------------------------------------------------------------

    def documents(self) -> list[DocumentRecord]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT doc_id, title, source, origin, doc_type, sha256, size, pages, chunks, "
                "ingested_at, updated_at FROM documents ORDER BY ingested_at, title"
            ).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def document(self, doc_id: str) -> DocumentRecord | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT doc_id, title, source, origin, doc_type, sha256, size, pages, chunks, "
                "ingested_at, updated_at FROM documents WHERE doc_id = ?",
                (doc_id,),
            ).fetchone()
        return DocumentRecord(*row) if row else None

    def documents_with_sha256(self, sha256: str) -> list[DocumentRecord]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT doc_id, title, source, origin, doc_type, sha256, size, pages, chunks, "
                "ingested_at, updated_at FROM documents WHERE sha256 = ?",
                (sha256,),
            ).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def source_sha256(self, origin: str) -> str | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT sha256 FROM sources WHERE source = ?", (origin,)
            ).fetchone()
        return row[0] if row else None

    def origins(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.conn.execute("SELECT source FROM sources ORDER BY source")]

    def source_records(self) -> list[tuple[str, str, int]]:
        with self._lock:
            rows = self.conn.execute("SELECT source, sha256, size FROM sources ORDER BY source")
            return [(r[0], r[1], int(r[2])) for r in rows]

    def prepared_chunks(self, doc_id: str) -> list[PreparedChunk]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT chunk_key, doc_id, ordinal, page, page_seq, start, end, text, headings, "
                "kind, embed_hash, vector FROM chunks WHERE doc_id = ? ORDER BY ordinal",
                (doc_id,),
            ).fetchall()
        return [
            PreparedChunk(
                Chunk(*r[:8], tuple(json.loads(r[8])), r[9]),
                r[10],
                np.frombuffer(r[11], "<f4").copy(),
            )
            for r in rows
        ]

    def doc_ids_of_origin(self, origin: str) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self.conn.execute(
                    "SELECT doc_id FROM documents WHERE origin = ?", (origin,)
                )
            ]

    def counts(self) -> dict[str, int]:
        with self._lock:
            docs = self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return {"documents": docs, "chunks": chunks}

    def _rows_where_in(self, sql: str, values: Iterable[object]) -> Iterator[Sequence]:
        """Rows of `sql` (with one `{marks}` placeholder for an IN list) for many values,
        queried in slices: SQLite limits the number of bound parameters."""
        wanted = list(dict.fromkeys(values))
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                yield from self.conn.execute(sql.format(marks=",".join("?" * len(part))), part)

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        """Chunk rows by id; ids that no longer exist are simply absent."""
        sql = (
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d USING (doc_id) "
            "WHERE c.id IN ({marks})"
        )
        return {row[0]: _chunk_record(row) for row in self._rows_where_in(sql, map(int, ids))}

    def document_chunks(self, doc_id: str) -> list[ChunkRecord]:
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d USING (doc_id) "
                "WHERE c.doc_id = ? ORDER BY c.ordinal",
                (doc_id,),
            ).fetchall()
        return [_chunk_record(row) for row in rows]

    def page_layout(self, doc_id: str, page_seq: int) -> PageLayout | None:
        """Where the lines of an OCR page sit on its image (None: the page had a text layer)."""
        if not self.has_page_layout:
            return None
        with self._lock:
            row = self.conn.execute(
                "SELECT layout FROM pages WHERE doc_id = ? AND seq = ?", (doc_id, page_seq)
            ).fetchone()
        return parse_layout(row[0]) if row else None

    def page_text(self, doc_id: str, page_seq: int) -> str | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT text FROM pages WHERE doc_id = ? AND seq = ?", (doc_id, page_seq)
            ).fetchone()
        return row[0] if row else None

    # The table is created by the first exclusion: knowledge bases that never leave anything
    # out are not touched.

    def excluded_keys(self) -> set[str]:
        with self._lock:
            try:
                return {r[0] for r in self.conn.execute("SELECT chunk_key FROM excluded")}
            except sqlite3.OperationalError:  # no such table: nothing was ever left out
                return set()

    def excluded_ids(self) -> set[int]:
        with self._lock:
            try:
                rows = self.conn.execute(
                    "SELECT c.id FROM chunks c JOIN excluded e USING (chunk_key)"
                ).fetchall()
            except sqlite3.OperationalError:
                return set()
        return {r[0] for r in rows}

    def set_excluded(self, chunk_key: str, excluded: bool) -> None:
        if self.read_only:
            raise StoreError(f"{self.path / DB_FILE} is read-only", f"{self.path / DB_FILE} 只读")
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _write_error(self.path / DB_FILE, exc, self.name) from exc
            try:
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS excluded "
                    "(chunk_key TEXT PRIMARY KEY, since TEXT NOT NULL)"
                )
                # every search joins the excluded keys to chunk ids: by index, not a chunk scan
                self.conn.execute("CREATE INDEX IF NOT EXISTS chunks_key ON chunks(chunk_key)")
                if excluded:
                    self.conn.execute(
                        "INSERT OR IGNORE INTO excluded VALUES (?, ?)", (chunk_key, utc_now())
                    )
                else:
                    self.conn.execute("DELETE FROM excluded WHERE chunk_key = ?", (chunk_key,))
                self.conn.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise

    def vectors_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors of identical embedded texts, so unchanged chunks are not re-embedded."""
        sql = "SELECT embed_hash, vector FROM chunks WHERE embed_hash IN ({marks})"
        return {key: np.frombuffer(blob, "<f4") for key, blob in self._rows_where_in(sql, hashes)}

    def vectors_of(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        sql = "SELECT id, vector FROM chunks WHERE id IN ({marks})"
        return {
            i: np.frombuffer(blob, "<f4") for i, blob in self._rows_where_in(sql, map(int, ids))
        }

    # ----- writing -------------------------------------------------------------------------

    @contextmanager
    def writer(
        self, spec: EmbeddingSpec | None, save_vectors: bool = True
    ) -> Iterator[SqliteWriter]:
        """Exclusive write access across processes. Hold it briefly (for commits, not while
        embedding) so concurrent ingests interleave instead of timing out; the FAISS file is
        saved on the way out unless `save_vectors` is off."""
        if self.read_only:
            raise _write_error(self.path / DB_FILE, OSError(errno.EROFS, "read-only"), self.name)
        lock = FileLock(str(self.path / LOCK_FILE), timeout=self.settings.lock_timeout_s)
        try:
            lock.acquire()
        except Timeout as exc:
            raise StoreError(
                f"knowledge base {self.name!r} is being written by another process "
                f"(waited {self.settings.lock_timeout_s:.0f} s for {self.path / LOCK_FILE}); "
                "try again when it has finished",
                f"知识库 {self.name!r} 正被另一个进程写入（已等待 "
                f"{self.settings.lock_timeout_s:.0f} 秒）；请在它完成后重试",
            ) from exc
        except OSError as exc:  # after Timeout, which is an OSError too
            raise _write_error(self.path / LOCK_FILE, exc, self.name) from exc
        try:
            if spec is not None:
                self.ensure_compatible(spec)
            writer = SqliteWriter(self, spec)
            try:
                yield writer
            finally:
                if writer.changed and save_vectors:
                    self.save_vectors()
                if writer.changed:
                    # the main file then holds everything, readable even where the WAL is not
                    with suppress(sqlite3.Error):
                        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            lock.release()

    def _bump_generation(self) -> int:
        generation = int(self._meta("generation") or 0) + 1
        self._set_meta("generation", str(generation))
        return generation
