"""Moving a knowledge base between stores (FAISS + SQLite ⇄ Milvus) without re-embedding: the
vectors are stored, so documents, pages (with their OCR line boxes), chunks, vectors and the
chunks left out of retrieval are copied as they are, then the copy is checked: the same counts,
and a sample of searches finding the same passages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ingest._tokenize import keyword_query
from ingest.load import LoadedDoc
from ingest.settings import Settings
from ingest.store import StoreError, StoreKind, kb_exists, open_kb
from ingest.store.base import KnowledgeBase, PreparedChunk

SAMPLE = 20  # chunks searched in both stores after the copy


@dataclass
class Migration:
    name: str
    source: str
    target: str
    documents: int = 0
    chunks: int = 0
    counts_match: bool = False
    dense_agree: int = 0  # sampled chunks whose best dense hit is the same passage in both
    keyword_found: int = 0  # sampled chunks the target's keyword search finds in its top 10
    sampled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.counts_match and not self.problems and self.dense_agree == self.sampled


def migrate_kb(
    settings: Settings, name: str, to: StoreKind, say: Callable[[str], None] = lambda _: None
) -> Migration:
    """Copy knowledge base `name` into the store `to` (it must not hold that name with
    documents already); the source is kept, untouched."""
    origin_kind: StoreKind = "faiss" if to == "milvus" else "milvus"
    with open_kb(settings, name, kind=origin_kind) as source:
        if kb_exists(settings, name, kind=to):
            with open_kb(settings, name, kind=to) as existing:
                if existing.counts()["documents"]:
                    raise StoreError(
                        f"knowledge base {name!r} already has documents in the {to} store: "
                        "delete it there first "
                        f"(VECTOR_STORE={to} zhiku kb delete {name} --store-only)",
                        f"知识库 {name!r} 在 {to} 存储中已有文档：请先在那里删除它",
                    )
        with open_kb(settings, name, create=True, kind=to) as target:
            report = Migration(name, source.describe(), target.describe())
            _copy(source, target, say)
            _verify(source, target, report)
    return report


def _copy(source: KnowledgeBase, target: KnowledgeBase, say: Callable[[str], None]) -> None:
    spec = source.embedding_spec()
    if spec is None:
        return  # nothing was ever ingested
    # the source's writer lock: nobody changes it while it is copied
    with source.writer(None, save_vectors=False) as reading:
        stored = list(reading.stored_documents())
        files = {origin: (sha256, size) for origin, sha256, size in source.source_records()}
        by_origin: dict[str, list[LoadedDoc]] = {origin: [] for origin in files}
        for doc, origin, _ in stored:
            by_origin.setdefault(origin, []).append(doc)
        say(f"copying {len(stored)} documents from {len(by_origin)} files")
        with target.writer(spec) as writer:
            for n, (origin, docs) in enumerate(sorted(by_origin.items()), start=1):
                sha256, size = files.get(origin, ("", 0))
                items: list[tuple[LoadedDoc, list[PreparedChunk]]] = [
                    (doc, source.prepared_chunks(doc.doc_id)) for doc in docs
                ]
                writer.put_file(origin, sha256, size, [(d, p) for d, p in items if p])
                if n % 100 == 0:
                    say(f"{n} of {len(by_origin)} files")
        # chunks left out of retrieval stay out: their keys are the same in the copy
        for key in sorted(source.excluded_keys()):
            target.set_excluded(key, True)


def _verify(source: KnowledgeBase, target: KnowledgeBase, report: Migration) -> None:
    before, after = source.counts(), target.counts()
    report.documents, report.chunks = after["documents"], after["chunks"]
    report.counts_match = before == after
    if not report.counts_match:
        report.problems.append(f"counts differ: {before} in the source, {after} in the copy")
    report.problems += target.check()
    docs = source.documents()
    if not docs:
        return
    picks = np.linspace(0, len(docs) - 1, num=min(SAMPLE, len(docs))).round().astype(int)
    for index in dict.fromkeys(picks.tolist()):
        chunks = source.prepared_chunks(docs[index].doc_id)
        if not chunks:
            continue
        probe = chunks[len(chunks) // 2]
        report.sampled += 1
        mine = source.dense_search(probe.vector, 1)
        theirs = target.dense_search(probe.vector, 1)
        if mine and theirs:
            a = source.chunks([mine[0][0]])[mine[0][0]]
            b = target.chunks([theirs[0][0]])[theirs[0][0]]
            if a.text == b.text and abs(mine[0][1] - theirs[0][1]) < 1e-4:
                report.dense_agree += 1
        found = target.keyword_search(keyword_query(probe.chunk.text[:60]), 10)
        texts = {c.text for c in target.chunks(i for i, _ in found).values()}
        report.keyword_found += probe.chunk.text in texts
