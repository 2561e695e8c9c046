"""Hybrid retrieval: dense (FAISS) and keyword (FTS5 BM25 over jieba tokens) candidates, both
scored on both sides and fused by a convex combination (it beat reciprocal rank fusion here, see
`fuse`), exposed as a LangChain `BaseRetriever`."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ingest import Embedder, keyword_query
from ingest.settings import Settings
from ingest.store import ChunkRecord, KnowledgeBase
from ingest.text import has_cjk, language


@dataclass
class Hit:
    chunk: ChunkRecord
    score: float  # fused score in [0, 1]: only comparable within one query
    dense: float  # cosine similarity to the query
    keyword: float  # BM25 (0 when no query word occurs in the chunk)
    dense_rank: int | None = None  # rank in the dense candidate list, if it was there
    keyword_rank: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_document(self) -> Document:
        c = self.chunk
        return Document(
            page_content=c.text,
            id=str(c.id),
            metadata={
                "chunk_id": c.id,
                "doc_id": c.doc_id,
                "title": c.title,
                "source": c.source,
                "doc_type": c.doc_type,
                "page": c.page,
                "page_seq": c.page_seq,
                "start": c.start,
                "end": c.end,
                "headings": list(c.headings),
                "kind": c.kind,
                "score": self.score,
                "dense_score": self.dense,
                "keyword_score": self.keyword,
                "dense_rank": self.dense_rank,
                "keyword_rank": self.keyword_rank,
            },
        )


def fuse(
    cosine: dict[int, float],
    bm25: dict[int, float],
    dense_weight: float,
    cross_lingual: frozenset[int] = frozenset(),
) -> list[tuple[int, float]]:
    """Convex combination of both scores over the union of candidates, best first.

    Every candidate carries both scores (its cosine from its stored vector, its BM25 from a
    targeted FTS5 lookup), so a passage that one side missed is not punished with a default.
    Cosines are min-max scaled within the candidates (e5's cosines crowd into a narrow band);
    BM25 is divided by the best BM25 (0 stays 0: no query word at all). Measured on cmrc2018
    and seed_dev, this beat reciprocal rank fusion at every weight between 0.3 and 0.6
    (`make eval`).
    """
    ids = list(cosine)
    if not ids:
        return []
    dense = np.array([cosine[i] for i in ids], dtype=np.float64)
    keyword = np.array([bm25.get(i, 0.0) for i in ids], dtype=np.float64)
    spread = dense.max() - dense.min()
    dense_scaled = (dense - dense.min()) / spread if spread > 0 else np.ones_like(dense)
    keyword_scaled = keyword / keyword.max() if keyword.max() > 0 else keyword
    fused = dense_weight * dense_scaled + (1 - dense_weight) * keyword_scaled
    # A passage in another language than the question shares no keywords with it, while a
    # passage in its language that shares one word outscores it: the dense side decides there.
    for j, i in enumerate(ids):
        if i in cross_lingual:
            fused[j] = dense_scaled[j]
    order = np.argsort(-fused, kind="stable")
    return [(ids[j], float(fused[j])) for j in order]


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _keyword_pool() -> ThreadPoolExecutor:
    """One small pool per process: a pool inherited through fork has no live threads and would
    never run the job."""
    with _pools_lock:
        pool = _pools.get(os.getpid())
        if pool is None:
            pool = _pools[os.getpid()] = ThreadPoolExecutor(2, thread_name_prefix="zhiku-keyword")
        return pool


def search(
    kb: KnowledgeBase,
    embedder: Embedder,
    query: str,
    settings: Settings,
    k: int | None = None,
) -> list[Hit]:
    """The top-k chunks for `query`, best first."""
    k = k or settings.top_k
    kb.ensure_compatible(embedder.spec)
    if settings.hybrid_fusion != "convex":
        return _store_fused(kb, embedder, query, settings, k)
    started = time.perf_counter()

    def keyword_side() -> tuple[str, list[tuple[int, float]], float]:
        began = time.perf_counter()
        expression = keyword_query(query)
        found = kb.keyword_search(expression, settings.keyword_candidates)
        return expression, found, time.perf_counter() - began

    # The keyword search needs no query vector, so it runs while the model embeds the query (the
    # largest single cost: ~23 ms through ONNX Runtime, ~65 ms through torch). With torch, p50
    # before/after (bench/results.md): 96 -> 73 ms at 10k chunks, 191 -> 113 ms at 100k.
    keyword_job = _keyword_pool().submit(keyword_side)
    vector = embedder.encode_queries([query])[0]
    embedded = time.perf_counter()
    dense = kb.dense_search(vector, settings.dense_candidates)
    dense_done = time.perf_counter()
    expression, keyword, keyword_s = keyword_job.result()
    keyword_done = time.perf_counter()
    excluded = kb.excluded_ids()  # chunks a user switched off in the inspector
    if excluded:
        dense = [(i, s) for i, s in dense if i not in excluded]
        keyword = [(i, s) for i, s in keyword if i not in excluded]

    candidates = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in keyword]))
    cosine = dict(dense)
    stored = kb.vectors_of([i for i in candidates if i not in cosine])
    cosine.update({i: float(np.dot(v, vector)) for i, v in stored.items()})
    bm25 = dict(keyword)
    bm25.update(kb.keyword_scores(expression, [i for i in cosine if i not in bm25]))
    records = kb.chunks(cosine)
    # a question with any Chinese in it is Chinese ("什么是 Scaling Laws?")
    asked = "zh" if has_cjk(query) else language(query)
    cross = frozenset(
        i for i, r in records.items() if asked and language(r.text) not in ("", asked)
    )
    # Cosines across languages run lower for the same relatedness (the two relevance floors
    # were calibrated to say by how much): lifted by that gap, they compare with the others.
    lift = settings.relevance_floor - settings.relevance_floor_cross_lingual
    calibrated = {i: c + lift if i in cross else c for i, c in cosine.items()}
    fused = fuse(calibrated, bm25, settings.dense_weight, cross)
    top = fused[: max(k, 1) * 2]  # spare candidates for chunks deleted since the index was read
    dense_ranks = {i: rank for rank, (i, _) in enumerate(dense, start=1)}
    keyword_ranks = {i: rank for rank, (i, _) in enumerate(keyword, start=1)}
    timings = {
        "embed_s": embedded - started,
        "dense_s": dense_done - embedded,
        "keyword_s": keyword_s,  # ran alongside embed_s; keyword_wait_s is what it added
        "keyword_wait_s": keyword_done - dense_done,
        "total_s": time.perf_counter() - started,
    }
    hits = [
        Hit(
            records[i],
            score,
            cosine[i],
            bm25.get(i, 0.0),
            dense_ranks.get(i),
            keyword_ranks.get(i),
            timings,
        )
        for i, score in top
        if i in records
    ]
    return hits[:k]


def _store_fused(
    kb: KnowledgeBase, embedder: Embedder, query: str, settings: Settings, k: int
) -> list[Hit]:
    """The store's own hybrid search (HYBRID_FUSION=rrf|weighted: Milvus's `hybrid_search`
    with RRFRanker, or a weighted sum; the same rankers over FAISS + SQLite), each hit with its
    cosine and BM25 looked up afterwards. Scores are the ranker's: RRF's are not in [0, 1]."""
    started = time.perf_counter()
    vector = embedder.encode_queries([query])[0]
    embedded = time.perf_counter()
    expression = keyword_query(query)
    fused = kb.hybrid_search(
        vector,
        expression,
        max(k, 1) * 2,
        "rrf" if settings.hybrid_fusion == "rrf" else "weighted",
        settings.dense_weight,
        max(settings.dense_candidates, settings.keyword_candidates),
    )
    excluded = kb.excluded_ids()  # chunks a user switched off in the inspector
    fused = [(i, score) for i, score in fused if i not in excluded]
    ids = [i for i, _ in fused]
    records = kb.chunks(ids)
    cosine = {i: float(np.dot(v, vector)) for i, v in kb.vectors_of(ids).items()}
    bm25 = kb.keyword_scores(expression, ids)
    timings = {"embed_s": embedded - started, "total_s": time.perf_counter() - started}
    hits = [
        Hit(records[i], score, cosine.get(i, 0.0), bm25.get(i, 0.0), timings=timings)
        for i, score in fused
        if i in records
    ]
    return hits[:k]


class HybridRetriever(BaseRetriever):
    """LangChain face of `search`: Documents with every chunk field and score in metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: KnowledgeBase
    embedder: Embedder
    settings: Settings
    k: int | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        """`k` passed to `invoke(query, k=1)` wins over the one the retriever was built with
        (LangChain hands `invoke`'s extra keywords only to a method that names them)."""
        wanted = k or self.k
        return [
            h.to_document() for h in search(self.kb, self.embedder, query, self.settings, wanted)
        ]
