"""Writes to a FAISS + SQLite knowledge base: each method is one SQLite transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from ingest._embed import EmbeddingSpec
from ingest._tokenize import index_text
from ingest.load import LoadedDoc
from ingest.store.base import (
    PreparedChunk,
    StoreError,
    Writer,
    keyword_text,
    layout_json,
    parse_layout,
)
from ingest.store.base import (
    now as utc_now,
)
from ingest.store.faiss_sqlite.schema import (
    DB_FILE,
    _vector_blob,
    _write_error,
)

if TYPE_CHECKING:
    from ingest.store.faiss_sqlite.kb import FaissSqliteKB


class SqliteWriter(Writer):
    """Changes to one knowledge base; each method is one atomic SQLite transaction."""

    def __init__(self, kb: FaissSqliteKB, spec: EmbeddingSpec | None) -> None:
        self.kb = kb
        self.spec = spec
        self.changed = False

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.kb.conn
        db = self.kb.path / DB_FILE
        with self.kb._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _write_error(db, exc, self.kb.name) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError | OSError):
                    raise _write_error(db, exc, self.kb.name) from exc
                raise
        self.changed = True

    def _record_spec(self, conn: sqlite3.Connection) -> None:
        if self.spec is None:
            raise StoreError("an embedding model is needed to add documents")
        if self.kb.embedding_spec() is None:
            self.kb._set_meta("embedding", json.dumps(self.spec.__dict__, ensure_ascii=False))
        else:
            self.kb.ensure_compatible(self.spec)

    def _delete_document_rows(self, conn: sqlite3.Connection, doc_id: str, generation: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO removed(id, gen) SELECT id, ? FROM chunks WHERE doc_id = ?",
            (generation, doc_id),
        )
        conn.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id = ?)",
            (doc_id,),
        )
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,))

    def put_file(
        self,
        origin: str,
        sha256: str,
        size: int,
        documents: Sequence[tuple[LoadedDoc, Sequence[PreparedChunk]]],
        drop_doc_ids: Sequence[str] = (),
    ) -> dict[str, str]:
        """Store what one file holds in one transaction: its documents added or replaced,
        `drop_doc_ids` (records gone from it, or the old copy of a moved file) removed.
        Returns "added" or "updated" per doc id."""
        status: dict[str, str] = {}
        with self._transaction() as conn:
            self._record_spec(conn)
            generation = self.kb._bump_generation()
            for doc_id in drop_doc_ids:
                self._delete_document_rows(conn, doc_id, generation)
                conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            now = utc_now()
            for doc, prepared in documents:
                if not prepared:
                    raise ValueError(f"{doc.source}: a document needs at least one chunk")
                previous = conn.execute(
                    "SELECT ingested_at FROM documents WHERE doc_id = ?", (doc.doc_id,)
                ).fetchone()
                self._delete_document_rows(conn, doc.doc_id, generation)
                self._insert_document(
                    conn, doc, origin, prepared, previous[0] if previous else now, now
                )
                self._insert_chunks(conn, doc.title, prepared, generation)
                status[doc.doc_id] = "updated" if previous else "added"
            conn.execute(
                "INSERT OR REPLACE INTO sources(source, sha256, size, ingested_at) "
                "VALUES (?, ?, ?, ?)",
                (origin, sha256, size, now),
            )
        return status

    @staticmethod
    def _insert_document(
        conn: sqlite3.Connection,
        doc: LoadedDoc,
        origin: str,
        prepared: Sequence[PreparedChunk],
        ingested_at: str,
        updated_at: str,
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO documents(doc_id, title, source, origin, doc_type, sha256, "
            "size, pages, chunks, ingested_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                doc.doc_id,
                doc.title,
                doc.source,
                origin,
                doc.doc_type,
                doc.sha256,
                doc.size,
                len(doc.pages),
                len(prepared),
                ingested_at,
                updated_at,
            ),
        )
        conn.executemany(
            "INSERT INTO pages(doc_id, seq, number, text, layout) VALUES (?, ?, ?, ?, ?)",
            [
                (doc.doc_id, seq, page.number, page.text, layout_json(page.layout))
                for seq, page in enumerate(doc.pages)
            ],
        )

    def _insert_chunks(
        self,
        conn: sqlite3.Connection,
        title: str,
        prepared: Sequence[PreparedChunk],
        generation: int,
    ) -> None:
        dimension = self.spec.dimension if self.spec else 0
        for item in prepared:
            c = item.chunk
            if item.vector.shape != (dimension,):
                raise ValueError(f"vector of shape {item.vector.shape} for a {dimension}-d index")
            cursor = conn.execute(
                "INSERT INTO chunks(chunk_key, doc_id, ordinal, page, page_seq, start, end, text, "
                "headings, kind, embed_hash, vector, gen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.chunk_id,
                    c.doc_id,
                    c.ordinal,
                    c.page,
                    c.page_index,
                    c.start,
                    c.end,
                    c.text,
                    json.dumps(list(c.headings), ensure_ascii=False),
                    c.kind,
                    item.embed_hash,
                    _vector_blob(item.vector),
                    generation,
                ),
            )
            conn.execute(
                "INSERT INTO chunks_fts(rowid, tokens) VALUES (?, ?)",
                (cursor.lastrowid, index_text(keyword_text(title, c.headings, c.text))),
            )

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        removed = 0
        with self._transaction() as conn:
            generation = self.kb._bump_generation()
            for doc_id in doc_ids:
                if conn.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone():
                    self._delete_document_rows(conn, doc_id, generation)
                    conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
                    removed += 1
            conn.execute("DELETE FROM sources WHERE source NOT IN (SELECT origin FROM documents)")
        return removed

    def remove_origins(self, origins: Sequence[str]) -> int:
        """Forget files entirely (pruning): their documents and their source records."""
        with self.kb._lock:
            doc_ids = [
                row[0]
                for origin in origins
                for row in self.kb.conn.execute(
                    "SELECT doc_id FROM documents WHERE origin = ?", (origin,)
                )
            ]
        removed = self.remove_documents(doc_ids)
        with self._transaction() as conn:
            conn.executemany("DELETE FROM sources WHERE source = ?", [(o,) for o in origins])
        return removed

    def replace_all(
        self, documents: Iterable[tuple[LoadedDoc, Sequence[PreparedChunk], str, str]]
    ) -> int:
        """Rebuild every chunk (a reindex) in one transaction: a crash keeps the old index.
        Each item is (doc, chunks, origin, ingested_at). Source records stay as they are."""
        count = 0
        with self._transaction() as conn:
            if self.spec is None:
                raise StoreError("an embedding model is needed to reindex")
            conn.execute("DELETE FROM chunks_fts")
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM pages")
            conn.execute("DELETE FROM documents")
            conn.execute("DELETE FROM removed")
            self.kb._set_meta("embedding", json.dumps(self.spec.__dict__, ensure_ascii=False))
            self.kb._set_meta("epoch", str(int(self.kb._meta("epoch") or 1) + 1))
            generation = self.kb._bump_generation()
            now = utc_now()
            for doc, prepared, origin, ingested_at in documents:
                self._insert_document(conn, doc, origin, prepared, ingested_at, now)
                self._insert_chunks(conn, doc.title, prepared, generation)
                count += 1
        self.kb._vectors = None
        return count

    def stored_documents(self) -> Iterator[tuple[LoadedDoc, str, str]]:
        """Every document as loaded (from its stored pages), with its origin and when it was
        first ingested."""
        from ingest.load import LoadedDoc, Page, structure_of

        conn = self.kb.conn
        with self.kb._lock:
            docs = conn.execute(
                "SELECT doc_id, title, source, doc_type, sha256, size, origin, ingested_at "
                "FROM documents"
            ).fetchall()
            out = []
            for doc_id, title, source, doc_type, sha256, size, origin, ingested_at in docs:
                pages = tuple(
                    Page(number, text, parse_layout(layout))
                    for number, text, layout in conn.execute(
                        "SELECT number, text, layout FROM pages WHERE doc_id = ? ORDER BY seq",
                        (doc_id,),
                    )
                )
                structure = structure_of(doc_type)
                doc = LoadedDoc(doc_id, title, source, doc_type, sha256, size, pages, structure)  # type: ignore[arg-type]
                out.append((doc, origin, ingested_at))
        yield from out
