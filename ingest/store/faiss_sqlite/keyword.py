"""Keyword search over the FTS5 index (BM25 over jieba tokens), with a row budget that keeps
everyday words from visiting the whole collection."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence

from ingest._tokenize import fts_tokens, keyword_expression, keyword_items

log = logging.getLogger(__name__)


class KeywordIndex:
    """Keyword search of `FaissSqliteKB` (a mixin: it uses its connection and lock)."""

    conn: sqlite3.Connection
    _lock: threading.RLock

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
