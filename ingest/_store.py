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
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from filelock import FileLock, Timeout

from ingest._chunk import Chunk
from ingest._embed import EmbeddingSpec
from ingest._reasons import Rejection
from ingest._tokenize import fts_tokens, index_text, keyword_expression, keyword_items
from ingest._vectors import IVF_THRESHOLD, VectorIndex, index_file_name, latest_index_file
from ingest.load import LoadedDoc, PageLayout
from ingest.settings import Settings

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


class StoreError(RuntimeError):
    """A knowledge-base problem a user must act on; the message says what to do, in English
    (CLI) and Chinese (web app)."""

    def __init__(self, en: str, zh: str | None = None) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh or en


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


class ModelMismatch(StoreError):
    def __init__(self, kb: str, indexed: EmbeddingSpec, current: EmbeddingSpec) -> None:
        self.rejection = Rejection(
            "model_mismatch", kb=kb, indexed=indexed.describe(), current=current.describe()
        )
        super().__init__(self.rejection.en)


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    title: str
    source: str
    origin: str  # the file it came from (a JSONL file holds many documents)
    doc_type: str
    sha256: str
    size: int
    pages: int
    chunks: int
    ingested_at: str
    updated_at: str


@dataclass(frozen=True)
class ChunkRecord:
    id: int
    chunk_key: str
    doc_id: str
    ordinal: int
    page: int | None
    page_seq: int
    start: int
    end: int
    text: str
    headings: tuple[str, ...]
    kind: str
    title: str
    source: str
    doc_type: str


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk ready to store: its embedded text's hash and its vector."""

    chunk: Chunk
    embed_hash: str
    vector: np.ndarray


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


def _layout_json(layout: PageLayout | None) -> str | None:
    return json.dumps(layout.to_json(), separators=(",", ":")) if layout is not None else None


def _page_layout(raw: str | None) -> PageLayout | None:
    if not raw:
        return None
    try:
        return PageLayout.from_json(json.loads(raw))
    except (ValueError, TypeError, KeyError):  # a damaged layout costs only the boxes
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def validate_kb_name(name: str) -> str:
    cleaned = name.strip()
    if (
        not cleaned
        or len(cleaned) > 64
        or cleaned in {".", ".."}
        or any(c in cleaned for c in '/\\:*?"<>|')
        or any(ord(c) < 32 for c in cleaned)
        or cleaned.startswith(".")
    ):
        raise StoreError(
            f"invalid knowledge base name {name!r}: use 1-64 letters, digits, Chinese, '-' or '_'",
            f"知识库名称 {name!r} 无效：请使用 1-64 个字母、数字、汉字、'-' 或 '_'",
        )
    return cleaned


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


class KnowledgeBase:
    """One named knowledge base. Thread-safe; share one instance per process."""

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

    # ----- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, settings: Settings, name: str | None = None, create: bool = False
    ) -> KnowledgeBase:
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
                        ("created_at", _now()),
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

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def ensure_model_name(self, name: str) -> None:
        """The cheap check, before loading any model: the recorded model must have this name."""
        indexed = self.embedding_spec()
        if indexed is not None and indexed.name != name:
            raise ModelMismatch(self.name, indexed, EmbeddingSpec(name, 0, "?", "?"))

    def vectors_stale(self) -> bool:
        """Whether the FAISS file on disk lags behind the database."""
        from ingest._vectors import index_file_name

        return not (self.path / index_file_name(self.epoch, self.generation)).is_file()

    def ensure_compatible(self, spec: EmbeddingSpec) -> None:
        """Refuse queries and additions from a model other than the one the index holds."""
        indexed = self.embedding_spec()
        if indexed is not None and indexed != spec:
            raise ModelMismatch(self.name, indexed, spec)

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

    def page_text(self, doc_id: str, page_seq: int) -> str | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT text FROM pages WHERE doc_id = ? AND seq = ?", (doc_id, page_seq)
            ).fetchone()
        return row[0] if row else None

    def page_layout(self, doc_id: str, page_seq: int) -> PageLayout | None:
        """Where the lines of an OCR page sit on its image (None: the page had a text layer)."""
        if not self.has_page_layout:
            return None
        with self._lock:
            row = self.conn.execute(
                "SELECT layout FROM pages WHERE doc_id = ? AND seq = ?", (doc_id, page_seq)
            ).fetchone()
        return _page_layout(row[0]) if row else None

    def vectors_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors of identical embedded texts, so unchanged chunks are not re-embedded."""
        sql = "SELECT embed_hash, vector FROM chunks WHERE embed_hash IN ({marks})"
        return {key: np.frombuffer(blob, "<f4") for key, blob in self._rows_where_in(sql, hashes)}

    def vectors_of(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        sql = "SELECT id, vector FROM chunks WHERE id IN ({marks})"
        return {
            i: np.frombuffer(blob, "<f4") for i, blob in self._rows_where_in(sql, map(int, ids))
        }

    # Keyword search cost: FTS5 computes BM25 for every row that holds any query term before it
    # sorts (5-10 µs a row on a busy 2-core machine), so over a large collection a question
    # with everyday words visits most of it: 100k synthetic chunks, p50 ~300 ms; 1M, seconds
    # (bench/results.md). Past this many rows, estimated from the terms' document frequencies
    # (`fts5vocab`), a query keeps its rarest terms and phrases, rarest first, and leaves out the
    # commonest: they carry the least IDF, so BM25's top ranks barely move, while the words that
    # single a passage out stay. A query whose terms all fit searches exactly as before (every
    # query of the eval sets: they are far below the budget).
    KEYWORD_ROW_BUDGET = 8_000

    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        """BM25 over jieba tokens for an FTS5 query (see `keyword_query`): (chunk id, score),
        best first, higher is better."""
        if not query:
            return []
        with self._lock:
            expression = self._within_budget(query)
            try:
                # ORDER BY the bm25() column, not FTS5's `rank`: the same order, but SQLite keeps
                # only the top k while FTS5's rank sorter sorts every match (~45% faster, bench/)
                rows = self.conn.execute(
                    "SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts "
                    "WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?",
                    (expression, k),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                log.warning("keyword search failed for %r: %s", query, exc)
                return []
        return [(rowid, -score) for rowid, score in rows]

    def keyword_scores(self, query: str, ids: Sequence[int]) -> dict[int, float]:
        """BM25 of the given chunks for `query`; chunks without any query term are absent."""
        if not query or not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            expression = self._within_budget(query)  # the same terms as `keyword_search`
            try:
                # `+rowid`: the IN list is checked on the matching rows of ONE scan. A plain
                # `rowid IN` is handed to FTS5 as one lookup per id, and each lookup recomputes
                # the query's IDFs over the full doclists: 10-40x slower for 40 ids (bench/).
                rows = self.conn.execute(
                    f"SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                    f"AND +rowid IN ({marks})",
                    (expression, *ids),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                log.warning("keyword scoring failed for %r: %s", query, exc)
                return {}
        return {rowid: -score for rowid, score in rows}

    def _within_budget(self, query: str) -> str:
        """`query` without its commonest terms when together they hold more rows than
        `KEYWORD_ROW_BUDGET`; unchanged otherwise, and for anything but `keyword_query` output."""
        items = keyword_items(query)
        if items is None or len(items) < 2:
            return query
        stats = self._keyword_stats()
        if stats is None or stats["rows"] * len(items) <= self.KEYWORD_ROW_BUDGET:
            return query  # small collections never reach the budget: no lookups at all
        words = {item: fts_tokens(item) for item in items}
        frequencies = self._document_frequencies(stats, {w for ws in words.values() for w in ws})
        if frequencies is None:
            return query
        # rows FTS5 visits for an item: a word's own; a phrase is found through its rarest word
        cost = {item: min((frequencies[w] for w in ws), default=0) for item, ws in words.items()}
        if sum(cost.values()) <= self.KEYWORD_ROW_BUDGET:
            return query
        kept: set[str] = set()
        spent = 0
        for item in sorted(items, key=cost.__getitem__):
            if kept and spent + cost[item] > self.KEYWORD_ROW_BUDGET:
                break
            kept.add(item)  # the rarest item always stays, whatever it costs
            spent += cost[item]
        return keyword_expression([item for item in items if item in kept])

    def _keyword_stats(self) -> dict | None:
        """Chunk count and a document-frequency cache, valid until the next commit."""
        key = (self._meta("epoch"), self._meta("generation"))
        stats = self.__dict__.get("_keyword_cache")
        if stats is None or stats["key"] != key:
            try:
                rows = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            except sqlite3.Error:
                return None
            stats = {"key": key, "rows": rows, "df": {}}
            self.__dict__["_keyword_cache"] = stats
        return stats

    def _document_frequencies(self, stats: dict, words: set[str]) -> dict[str, int] | None:
        known: dict[str, int] = stats["df"]
        try:
            missing = [w for w in words if w not in known]
            if missing:
                self.conn.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_fts_vocab "
                    "USING fts5vocab(main, chunks_fts, row)"
                )
            for word in missing:
                row = self.conn.execute(
                    "SELECT doc FROM temp.chunks_fts_vocab WHERE term = ?", (word,)
                ).fetchone()
                known[word] = row[0] if row else 0
        except sqlite3.Error as exc:  # no pruning is slower, never wrong
            log.warning("keyword statistics unavailable: %s", exc)
            return None
        return {w: known[w] for w in words}

    # ----- the vector index ----------------------------------------------------------------

    def vector_index(self) -> VectorIndex:
        """The FAISS index, loaded once and caught up with every commit since (by anyone)."""
        with self._lock:
            self.conn.execute("BEGIN")  # one snapshot for the generation and the rows read
            try:
                self._sync_vectors()
            finally:
                self.conn.execute("COMMIT")
            assert self._vectors is not None
            return self._vectors

    def dense_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        ids, scores = self.vector_index().search(query, k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def _dimension(self) -> int:
        spec = self.embedding_spec()
        return spec.dimension if spec else 0

    def _sync_vectors(self) -> None:
        generation = int(self._meta("generation") or 0)
        epoch = int(self._meta("epoch") or 1)
        current = self._vectors
        if current is not None and current.epoch == epoch and current.generation == generation:
            return
        on_disk = latest_index_file(self.path, epoch, generation)
        if on_disk is not None and (
            current is None
            or current.epoch != epoch
            or current.generation < _generation_of(on_disk)
        ):
            try:
                current = VectorIndex.read(on_disk)
                self._vectors_problem = None
            except Exception as exc:  # faiss raises RuntimeError with C++ text for bad files
                self._vectors_problem = (
                    f"{on_disk} is unreadable ({str(exc).splitlines()[0][:120]}); it was rebuilt "
                    f"in memory from the database: run `zhiku kb check --repair --kb {self.name}`"
                )
                log.warning(self._vectors_problem)
                current = None
        if (
            current is None
            or current.epoch != epoch
            or current.dimension != (self._dimension() or 1)
        ):
            current = self._rebuild_vectors(epoch, generation)
        elif current.generation < generation:
            self._catch_up(current, generation)
        self._vectors = current

    def _rebuild_vectors(self, epoch: int, generation: int) -> VectorIndex:
        dimension = self._dimension()
        count = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        ids = np.empty(count, dtype=np.int64)
        vectors = np.empty((count, max(dimension, 1)), dtype=np.float32)
        for row, (chunk_id, blob) in enumerate(self.conn.execute("SELECT id, vector FROM chunks")):
            ids[row] = chunk_id
            vectors[row] = np.frombuffer(blob, dtype="<f4")
        if dimension == 0:  # nothing ingested yet: no model recorded
            empty = VectorIndex.empty(1, epoch)
            empty.generation = generation
            return empty
        return VectorIndex.build(dimension, epoch, generation, ids, vectors)

    def _catch_up(self, index: VectorIndex, generation: int) -> None:
        removed = np.array(
            [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM removed WHERE gen > ?", (index.generation,)
                )
            ],
            dtype=np.int64,
        )
        index.remove(removed)
        rows = self.conn.execute(
            "SELECT id, vector FROM chunks WHERE gen > ?", (index.generation,)
        ).fetchall()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            index.remove(ids)  # a chunk is never in the index twice, whatever was caught up before
            index.add(ids, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]))
        index.generation = generation

    @property
    def vectors_problem(self) -> str | None:
        return self._vectors_problem

    # ----- writing -------------------------------------------------------------------------

    @contextmanager
    def writer(self, spec: EmbeddingSpec | None, save_vectors: bool = True) -> Iterator[Writer]:
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
            writer = Writer(self, spec)
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

    def save_vectors(self) -> None:
        """Write the caught-up FAISS file and forget tombstones it already reflects."""
        with self._lock:
            index = self.vector_index()
            if index.needs_rebuild():
                self.conn.execute("BEGIN")
                try:
                    index = self._rebuild_vectors(index.epoch, index.generation)
                finally:
                    self.conn.execute("COMMIT")
                self._vectors = index
            try:
                index.write(self.path)
            except (RuntimeError, OSError) as exc:  # faiss reports I/O failures as RuntimeError
                for partial in self.path.glob(".vectors-*.tmp-*"):
                    partial.unlink(missing_ok=True)
                raise _write_error(
                    self.path / index_file_name(index.epoch, index.generation), exc, self.name
                ) from exc
            self.conn.execute("DELETE FROM removed WHERE gen <= ?", (index.generation,))
        for stale in self.path.glob(".vectors-*.tmp-*"):
            stale.unlink(missing_ok=True)

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

    def _bump_generation(self) -> int:
        generation = int(self._meta("generation") or 0) + 1
        self._set_meta("generation", str(generation))
        return generation


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
        with KnowledgeBase.open(settings, name, create=True) as fresh:
            try:
                old = sqlite3.connect(f"file:{quote(str(damaged))}?mode=ro", uri=True)
                for table in _SALVAGED_TABLES:
                    recovered[table] = _copy_rows(old, fresh.conn, table)
                old.close()
            except sqlite3.DatabaseError as exc:
                done.append(f"nothing more could be read from it ({exc})")
        if any(recovered.values()):
            with KnowledgeBase.open(settings, name) as rebuilt:
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


def _generation_of(path: Path) -> int:
    from ingest._vectors import parse_index_file_name

    parsed = parse_index_file_name(path.name)
    return parsed[1] if parsed else -1


def keyword_text(title: str, headings: Sequence[str], text: str) -> str:
    """What keyword search sees of a chunk: its words plus where it sits."""
    return "\n".join([title, *headings, text])


class Writer:
    """Changes to one knowledge base; each method is one atomic transaction."""

    def __init__(self, kb: KnowledgeBase, spec: EmbeddingSpec | None) -> None:
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
            now = _now()
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
                (doc.doc_id, seq, page.number, page.text, _layout_json(page.layout))
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
            now = _now()
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
                    Page(number, text, _page_layout(layout))
                    for number, text, layout in conn.execute(
                        "SELECT number, text, layout FROM pages WHERE doc_id = ? ORDER BY seq",
                        (doc_id,),
                    )
                )
                structure = structure_of(doc_type)
                doc = LoadedDoc(doc_id, title, source, doc_type, sha256, size, pages, structure)  # type: ignore[arg-type]
                out.append((doc, origin, ingested_at))
        yield from out


__all__ = [
    "IVF_THRESHOLD",
    "ChunkRecord",
    "DocumentRecord",
    "KnowledgeBase",
    "ModelMismatch",
    "PreparedChunk",
    "StoreError",
    "Writer",
    "delete_kb",
    "kb_path",
    "keyword_text",
    "list_kbs",
]
