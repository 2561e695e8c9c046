"""Searches of a Milvus knowledge base: dense, BM25 and Milvus's own hybrid search, each
keeping only chunks of committed document versions (see `kb.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ingest._tokenize import fts_tokens, keyword_items
from ingest.settings import Settings
from ingest.store.milvus.schema import in_list, search_params, slices

MAX_TOPK = 16_384  # Milvus's limit on a search's k


SEARCH_RETRIES = 8  # a document rewritten again and again is searched again as often


class MilvusSearch:
    """The search half of `MilvusKB` (a mixin: it uses its client, active collection and
    visibility check)."""

    settings: Settings
    client: Any

    def _search_visible(self, run: Any, k: int) -> list[tuple[int, float]]:
        """Run a search for k + a margin and keep visible hits; left-overs of an interrupted
        write are rare, so a second, larger search is rarer still."""
        limit = min(k + 16, MAX_TOPK)
        retries = SEARCH_RETRIES
        while True:
            hits = run(limit)
            visible, changed = self._visible_or_changed(
                [{"id": h["id"], "distance": h["distance"], **h["entity"]} for h in hits]
            )
            if changed and retries:
                # a document was committed anew between the search and the version check:
                # its new chunks were not yet there to be found, its old ones are no longer
                # visible; the same search again sees the new ones (unless it is rewritten
                # again meanwhile: up to SEARCH_RETRIES times, then what is visible)
                retries -= 1
                continue
            if len(visible) >= k or len(hits) < limit or limit >= MAX_TOPK:
                return [(int(h["id"]), float(h["distance"])) for h in visible[:k]]
            limit = min(limit * 4, MAX_TOPK)

    def _search(self, data: list[Any], field: str, params: dict, filter: str = "") -> Any:
        def one(collection: str | None, limit: int) -> list[dict[str, Any]]:
            if collection is None:
                return []
            return self.client.search(
                collection,
                data=data,
                anns_field=field,
                limit=limit,
                filter=filter,
                search_params=params,
                output_fields=["doc_id", "version"],
                consistency_level=self.settings.milvus_consistency,
            )[0]

        return lambda limit: self._on_chunks(lambda collection: one(collection, limit))

    def dense_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        params = search_params(self.settings.milvus_index_type, k)
        vector = np.asarray(query, dtype=np.float32).tolist()
        return self._search_visible(self._search([vector], "dense", params), k)

    def keyword_tokens(self) -> str:
        """Who segmented the active collection's keyword text: "zhiku" or "milvus"."""
        return self.active().get("keyword_tokens", "milvus")

    def keyword_text(self, query: str) -> str:
        """A `keyword_query` expression as BM25 query text: its words, as the collection's
        keyword text was segmented. (FTS5's phrases have no counterpart in a BM25 sparse
        vector: their words count singly.)"""
        items = keyword_items(query)
        if items is None:
            items = [query]
        if self.keyword_tokens() == "zhiku":
            return " ".join(dict.fromkeys(t for item in items for t in fts_tokens(item)))
        return " ".join(items)

    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        text = self.keyword_text(query)
        if not text.strip():
            return []
        run = self._search([text], "sparse", {"metric_type": "BM25"})
        return self._search_visible(run, k)

    def keyword_scores(self, query: str, ids: Sequence[int]) -> dict[int, float]:
        text = self.keyword_text(query)
        if not text.strip() or not ids:
            return {}
        out: dict[int, float] = {}
        for part in slices(list(ids)):
            run = self._search(
                [text], "sparse", {"metric_type": "BM25"}, filter=in_list("id", part)
            )
            out.update((int(h["id"]), float(h["distance"])) for h in run(len(part)))
        return out

    def hybrid_search(
        self,
        vector: np.ndarray,
        query: str,
        k: int,
        ranker: Literal["rrf", "weighted"],
        dense_weight: float,
        candidates: int,
    ) -> list[tuple[int, float]]:
        """Milvus's own hybrid search: a dense and a BM25 request fused on the server by
        RRFRanker. The weighted sum is computed here, over the same two searches: the Milvus
        2.5.1 core's WeightedRanker normalises BM25 as if it were a distance (the best match
        gets the lowest score), which sank recall@1 on cmrc2018_trial to 0.09."""
        if ranker == "weighted":
            return super().hybrid_search(vector, query, k, ranker, dense_weight, candidates)
        from pymilvus import AnnSearchRequest, RRFRanker

        collection = self._chunks()
        text = self.keyword_text(query)
        if collection is None:
            return []
        if not text.strip():
            return self.dense_search(vector, k)
        dense = np.asarray(vector, dtype=np.float32).tolist()
        params = search_params(self.settings.milvus_index_type, candidates)
        fuse = RRFRanker(60)

        def run(limit: int) -> list[dict[str, Any]]:
            requests = [
                AnnSearchRequest(data=[dense], anns_field="dense", param=params, limit=candidates),
                AnnSearchRequest(
                    data=[text],
                    anns_field="sparse",
                    param={"metric_type": "BM25"},
                    limit=candidates,
                ),
            ]
            return self.client.hybrid_search(
                collection,
                reqs=requests,
                ranker=fuse,
                limit=limit,
                output_fields=["doc_id", "version"],
                consistency_level=self.settings.milvus_consistency,
            )[0]

        return self._search_visible(run, k)
