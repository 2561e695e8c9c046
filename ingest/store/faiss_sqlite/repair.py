"""`kb check` and `kb check --repair` for FAISS + SQLite, and salvage of a damaged database."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import suppress
from urllib.parse import quote

import numpy as np
from filelock import FileLock

from ingest._tokenize import index_text
from ingest.settings import Settings
from ingest.store.base import keyword_text
from ingest.store.faiss_sqlite.schema import DB_FILE, LOCK_FILE, _damaged, kb_path


class Checks:
    """`check` and `repair` of `FaissSqliteKB` (a mixin)."""

    # ----- checking ------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Every problem found; empty when the store is consistent."""
        problems: list[str] = []
        with self._lock:
            try:
                result = self.conn.execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as exc:
                return [str(_damaged(self.path / DB_FILE, exc))]
            if result != [("ok",)]:
                problems.append(f"SQLite quick_check: {'; '.join(r[0] for r in result[:5])}")
            self.conn.execute("BEGIN")
            try:
                problems += self._check_rows()
            finally:
                self.conn.execute("COMMIT")
            self.conn.execute("BEGIN")  # the index and the rows compared from one snapshot
            try:
                self._sync_vectors()
                chunk_ids = np.array(
                    [r[0] for r in self.conn.execute("SELECT id FROM chunks")], dtype=np.int64
                )
            except Exception as exc:
                problems.append(f"vector index cannot be loaded: {exc}")
                return problems
            finally:
                self.conn.execute("COMMIT")
            if self._vectors_problem:
                problems.append(self._vectors_problem)
            index = self._vectors
            if index is not None:
                indexed = index.ids()
                missing = np.setdiff1d(chunk_ids, indexed)
                extra = np.setdiff1d(indexed, chunk_ids)
                if len(missing):
                    problems.append(f"{len(missing)} chunks have no vector in the FAISS index")
                if len(extra):
                    problems.append(f"{len(extra)} FAISS vectors have no chunk row")
                if len(indexed) != len(np.unique(indexed)):
                    problems.append("the FAISS index holds a chunk more than once")
        return problems

    def _check_rows(self) -> list[str]:
        problems = []
        dimension = self._dimension()
        queries = {
            "chunks without a document": "SELECT count(*) FROM chunks c LEFT JOIN documents d "
            "USING (doc_id) WHERE d.doc_id IS NULL",
            "pages without a document": "SELECT count(*) FROM pages p LEFT JOIN documents d "
            "USING (doc_id) WHERE d.doc_id IS NULL",
            "documents whose chunk count is wrong": "SELECT count(*) FROM documents d WHERE "
            "d.chunks != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id)",
            "documents without chunks": "SELECT count(*) FROM documents d WHERE NOT EXISTS "
            "(SELECT 1 FROM chunks c WHERE c.doc_id = d.doc_id)",
            "chunks missing from the keyword index": "SELECT count(*) FROM chunks c WHERE NOT "
            "EXISTS (SELECT 1 FROM chunks_fts f WHERE f.rowid = c.id)",
            "keyword index rows without a chunk": "SELECT count(*) FROM chunks_fts f WHERE NOT "
            "EXISTS (SELECT 1 FROM chunks c WHERE c.id = f.rowid)",
            "vectors of the wrong size": "SELECT count(*) FROM chunks "
            f"WHERE length(vector) != {4 * dimension}",
        }
        for label, sql in queries.items():
            count = self.conn.execute(sql).fetchone()[0]
            if count:
                problems.append(f"{count} {label}")
        return problems

    def repair(self) -> list[str]:
        """Rebuild everything derived (keyword index, counts, FAISS) from the stored chunks."""
        done: list[str] = []
        with FileLock(str(self.path / LOCK_FILE), timeout=self.settings.lock_timeout_s), self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                orphans = self.conn.execute(
                    "DELETE FROM chunks WHERE doc_id NOT IN (SELECT doc_id FROM documents)"
                ).rowcount
                if orphans:
                    done.append(f"removed {orphans} chunks without a document")
                self.conn.execute(
                    "DELETE FROM pages WHERE doc_id NOT IN (SELECT doc_id FROM documents)"
                )
                dimension = self._dimension()
                bad = self.conn.execute(
                    f"DELETE FROM chunks WHERE length(vector) != {4 * dimension}"
                ).rowcount
                if bad:
                    done.append(f"removed {bad} chunks with damaged vectors")
                self.conn.execute(
                    "DELETE FROM documents WHERE doc_id NOT IN (SELECT doc_id FROM chunks)"
                )
                self.conn.execute(
                    "UPDATE documents SET chunks = "
                    "(SELECT count(*) FROM chunks c WHERE c.doc_id = documents.doc_id)"
                )
                self.conn.execute("DELETE FROM chunks_fts")
                for chunk_id, text, headings, title in self.conn.execute(
                    "SELECT c.id, c.text, c.headings, d.title FROM chunks c JOIN documents d "
                    "USING (doc_id)"
                ).fetchall():
                    self.conn.execute(
                        "INSERT INTO chunks_fts(rowid, tokens) VALUES (?, ?)",
                        (chunk_id, index_text(keyword_text(title, json.loads(headings), text))),
                    )
                done.append("rebuilt the keyword index")
                epoch = int(self._meta("epoch") or 1) + 1
                self._set_meta("epoch", str(epoch))
                self._bump_generation()
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            for stale in self.path.glob("vectors-*.faiss"):
                stale.unlink(missing_ok=True)
            self._vectors = None
            self._vectors_problem = None
            self.save_vectors()
            done.append("rebuilt the vector index from the stored vectors")
        return done


_SALVAGED_TABLES = ("meta", "documents", "pages", "chunks", "sources")


def salvage_kb(settings: Settings, name: str) -> list[str]:
    """Rebuild a knowledge base whose database cannot be opened: the damaged file is moved
    aside (never deleted), every row that can still be read is copied into a fresh database,
    and the keyword and vector indexes are rebuilt. Returns what was done."""
    path = kb_path(settings, name)
    db = path / DB_FILE
    with FileLock(str(path / LOCK_FILE), timeout=settings.lock_timeout_s):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        damaged = db.with_name(f"{DB_FILE}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = db.with_name(DB_FILE + suffix)
            if source.exists():
                source.rename(damaged.with_name(damaged.name + suffix))
        for stale in path.glob("vectors-*.faiss"):
            stale.unlink()
        done = [f"moved the damaged database to {damaged}"]
        recovered: dict[str, int] = {}
        from ingest.store.faiss_sqlite.kb import FaissSqliteKB

        with FaissSqliteKB.open(settings, name, create=True) as fresh:
            try:
                old = sqlite3.connect(f"file:{quote(str(damaged))}?mode=ro", uri=True)
                for table in _SALVAGED_TABLES:
                    recovered[table] = _copy_rows(old, fresh.conn, table)
                old.close()
            except sqlite3.DatabaseError as exc:
                done.append(f"nothing more could be read from it ({exc})")
        if any(recovered.values()):
            with FaissSqliteKB.open(settings, name) as rebuilt:
                done += rebuilt.repair()
        count = recovered.get("documents", 0)
        done.append(
            f"recovered {count} documents and {recovered.get('chunks', 0)} chunks; ingest the "
            f"rest again with `zhiku ingest PATH --kb {name}` (unchanged files are skipped)"
        )
        return done


def _copy_rows(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> int:
    """Copy what can be read of `table`, row by row (a damaged page loses only its rows)."""
    copied = 0
    try:
        columns = [row[1] for row in old.execute(f"PRAGMA table_info({table})")]
        rows = old.execute(f"SELECT {', '.join(columns)} FROM {table}")
        marks = ", ".join("?" * len(columns))
        new.execute("BEGIN")
        while True:
            try:
                row = rows.fetchone()
            except sqlite3.DatabaseError:
                break
            if row is None:
                break
            with suppress(sqlite3.Error):
                new.execute(
                    f"INSERT OR REPLACE INTO {table}({', '.join(columns)}) VALUES ({marks})", row
                )
                copied += 1
        new.execute("COMMIT")
    except sqlite3.DatabaseError:
        with suppress(sqlite3.Error):
            new.execute("COMMIT")
    return copied
