"""The store's interface: what ingestion and retrieval need from a knowledge base, whatever
engine holds it (`faiss_sqlite`: embedded, one machine; `milvus`: a shared vector engine).

Records, errors and the two abstract classes live here; a backend subclasses `KnowledgeBase` and
`Writer`. Chunk ids are integers, unique within one knowledge base; a search returns
(chunk id, score) pairs, higher is better, and `chunks()` turns ids into citable records.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np

from ingest._chunk import Chunk
from ingest._embed import EmbeddingSpec
from ingest._reasons import Rejection

if TYPE_CHECKING:
    from ingest.load import LoadedDoc, PageLayout
    from ingest.settings import Settings

StoreKind = Literal["faiss", "milvus"]


class StoreError(RuntimeError):
    """A knowledge-base problem a user must act on; the message says what to do, in English
    (CLI) and Chinese (web app)."""

    def __init__(self, en: str, zh: str | None = None) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh or en


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


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def keyword_text(title: str, headings: Sequence[str], text: str) -> str:
    """What keyword search sees of a chunk: its words plus where it sits."""
    return "\n".join([title, *headings, text])


def layout_json(layout: PageLayout | None) -> str | None:
    """A page's OCR line boxes as stored (None: the page had a text layer)."""
    if layout is None:
        return None
    return json.dumps(layout.to_json(), separators=(",", ":"))


def parse_layout(raw: str | None) -> PageLayout | None:
    if not raw:
        return None
    from ingest.load import PageLayout

    try:
        return PageLayout.from_json(json.loads(raw))
    except (ValueError, TypeError, KeyError):  # a damaged layout costs only the boxes
        return None


def ensure_compatible_spec(kb: str, indexed: EmbeddingSpec | None, spec: EmbeddingSpec) -> None:
    """Refuse queries and additions from a model other than the one the index holds."""
    if indexed is not None and indexed != spec:
        raise ModelMismatch(kb, indexed, spec)


class KnowledgeBase(ABC):
    """One named knowledge base. Thread-safe; share one instance per process.

    `KnowledgeBase.open(settings, name)` opens it in the store `settings.vector_store` names;
    the rest of zhiku only ever calls the methods below."""

    settings: Settings
    name: str
    read_only: bool = False
    store: StoreKind

    @classmethod
    def open(
        cls, settings: Settings, name: str | None = None, create: bool = False
    ) -> KnowledgeBase:
        if cls is KnowledgeBase:
            from ingest.store import backend_class

            return backend_class(settings).open(settings, name, create)
        raise NotImplementedError  # every backend defines its own

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def identity(self) -> str:
        """Changes when the knowledge base is deleted and created again under the same name,
        so a cached instance can tell it is stale."""

    # ----- the embedding model -------------------------------------------------------------

    @abstractmethod
    def embedding_spec(self) -> EmbeddingSpec | None: ...

    def ensure_model_name(self, name: str) -> None:
        """The cheap check, before loading any model: the recorded model must have this name."""
        indexed = self.embedding_spec()
        if indexed is not None and indexed.name != name:
            raise ModelMismatch(self.name, indexed, EmbeddingSpec(name, 0, "?", "?"))

    def ensure_compatible(self, spec: EmbeddingSpec) -> None:
        ensure_compatible_spec(self.name, self.embedding_spec(), spec)

    # ----- documents -----------------------------------------------------------------------

    @abstractmethod
    def documents(self) -> list[DocumentRecord]: ...

    @abstractmethod
    def document(self, doc_id: str) -> DocumentRecord | None: ...

    @abstractmethod
    def documents_with_sha256(self, sha256: str) -> list[DocumentRecord]: ...

    @abstractmethod
    def source_sha256(self, origin: str) -> str | None:
        """The content hash a file had when it was last stored (idempotent re-ingest)."""

    @abstractmethod
    def origins(self) -> list[str]: ...

    @abstractmethod
    def source_records(self) -> list[tuple[str, str, int]]:
        """Every stored file as (origin, sha256, size)."""

    @abstractmethod
    def doc_ids_of_origin(self, origin: str) -> list[str]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]: ...

    # ----- chunks --------------------------------------------------------------------------

    @abstractmethod
    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        """Chunk records by id; ids that no longer exist are simply absent."""

    @abstractmethod
    def document_chunks(self, doc_id: str) -> list[ChunkRecord]: ...

    @abstractmethod
    def page_text(self, doc_id: str, page_seq: int) -> str | None: ...

    def page_layout(self, doc_id: str, page_seq: int) -> PageLayout | None:
        """Where the lines of an OCR page sit on its image; None for a page with a text layer,
        or a knowledge base stored before OCR kept them."""
        return None

    # ----- chunks left out of retrieval (the inspector's switch) ----------------------------
    # Keyed by chunk_key (a hash of document, page, offset and text), so a chunk stays left out
    # when its unchanged file is ingested again. The list lives in the store itself, so every
    # process and server using the knowledge base sees it. A store that cannot keep it says so.

    def excluded_keys(self) -> set[str]:
        return set()

    def excluded_ids(self) -> set[int]:
        """Ids of the chunks retrieval must skip."""
        return set()

    def set_excluded(self, chunk_key: str, excluded: bool) -> None:
        """Leave chunk `chunk_key` out of retrieval (or let it back in)."""
        raise StoreError(
            f"the {self.store} store cannot leave single chunks out of retrieval",
            f"{self.store} 存储不支持把单个分块排除在检索之外",
        )

    @abstractmethod
    def prepared_chunks(self, doc_id: str) -> list[PreparedChunk]:
        """A document's chunks as stored, with their vectors (a migration copies these)."""

    @abstractmethod
    def vectors_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors of identical embedded texts, so unchanged chunks are not re-embedded."""

    @abstractmethod
    def vectors_of(self, ids: Iterable[int]) -> dict[int, np.ndarray]: ...

    # ----- search --------------------------------------------------------------------------

    @abstractmethod
    def dense_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine), best first."""

    @abstractmethod
    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        """BM25 for a `keyword_query` expression: (chunk id, score), best first."""

    @abstractmethod
    def keyword_scores(self, query: str, ids: Sequence[int]) -> dict[int, float]:
        """BM25 of the given chunks for `query`; chunks without any query term are absent."""

    def hybrid_search(
        self,
        vector: np.ndarray,
        query: str,
        k: int,
        ranker: Literal["rrf", "weighted"],
        dense_weight: float,
        candidates: int,
    ) -> list[tuple[int, float]]:
        """Dense and keyword candidates fused by a rank-based ranker (RRF, k=60) or a weighted
        sum of the two normalised scores, best first. A backend with its own hybrid search
        (Milvus) overrides this; here it is done over `dense_search` and `keyword_search`."""
        dense = self.dense_search(vector, candidates)
        keyword = self.keyword_search(query, candidates)
        scores: dict[int, float] = {}
        if ranker == "rrf":
            for hits in (dense, keyword):
                for rank, (i, _) in enumerate(hits, start=1):
                    scores[i] = scores.get(i, 0.0) + 1.0 / (60 + rank)
        else:
            # Milvus's WeightedRanker: cosine mapped to [0, 1] and BM25 through arctan
            for i, cosine in dense:
                scores[i] = scores.get(i, 0.0) + dense_weight * (1 + cosine) / 2
            for i, bm25 in keyword:
                scores[i] = scores.get(i, 0.0) + (1 - dense_weight) * 2 / np.pi * np.arctan(bm25)
        return sorted(scores.items(), key=lambda item: -item[1])[:k]

    # ----- writing and upkeep --------------------------------------------------------------

    @abstractmethod
    def writer(
        self, spec: EmbeddingSpec | None, save_vectors: bool = True
    ) -> AbstractContextManager[Writer]:
        """Exclusive write access across processes (and machines, for a shared store). Hold it
        briefly: for commits, not while embedding."""

    def vectors_stale(self) -> bool:
        """Whether a derived index lags behind the stored chunks (then `save_vectors`)."""
        return False

    def save_vectors(self) -> None:
        """Bring derived indexes up to date; a store that has none does nothing."""
        return None

    @abstractmethod
    def check(self) -> list[str]:
        """Every problem found; empty when the store is consistent."""

    @abstractmethod
    def repair(self) -> list[str]:
        """Rebuild what is derived; returns what was done."""

    def describe(self) -> str:
        """Where it lives, for `kb list` and `eval --json`."""
        return self.store


class Writer(ABC):
    """Changes to one knowledge base. For every document, a reader sees the old version or the
    new one, never both or a part."""

    changed: bool = False

    @abstractmethod
    def put_file(
        self,
        origin: str,
        sha256: str,
        size: int,
        documents: Sequence[tuple[LoadedDoc, Sequence[PreparedChunk]]],
        drop_doc_ids: Sequence[str] = (),
    ) -> dict[str, str]:
        """Store what one file holds: its documents added or replaced, `drop_doc_ids` removed.
        Returns "added" or "updated" per doc id."""

    @abstractmethod
    def remove_documents(self, doc_ids: Sequence[str]) -> int: ...

    @abstractmethod
    def remove_origins(self, origins: Sequence[str]) -> int:
        """Forget files entirely (pruning): their documents and their source records."""

    @abstractmethod
    def replace_all(
        self, documents: Iterable[tuple[LoadedDoc, Sequence[PreparedChunk], str, str]]
    ) -> int:
        """Rebuild every chunk (a reindex); a crash keeps the old index. Each item is
        (doc, chunks, origin, ingested_at)."""

    @abstractmethod
    def stored_documents(self) -> Iterator[tuple[LoadedDoc, str, str]]:
        """Every document as loaded (from its stored pages), with its origin and when it was
        first ingested."""
