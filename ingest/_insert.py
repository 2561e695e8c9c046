"""Ingestion: files → loaders → chunks → embeddings → store, idempotent by content hash.

Embedding, the slow part, happens outside the write lock; the lock is held only to commit, and
every file is checked again under it, so two ingests of the same knowledge base can run at once
and each document still ends up stored exactly once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ingest._chunk import Chunk, chunk_document
from ingest._embed import Embedder, EmbeddingSpec, load_embedder
from ingest._originals import keep_original, release_originals
from ingest._reasons import Rejection
from ingest._upload import discard_upload
from ingest.load import SUPPORTED_SUFFIXES, Loaded, LoadedDoc, load_file
from ingest.settings import Settings
from ingest.store import KnowledgeBase, PreparedChunk, StoreError

Status = Literal["added", "updated", "skipped", "failed", "removed"]

# Files embedded together: large enough for efficient batches, small enough that a crash or a
# concurrent reader sees progress.
BATCH_CHUNKS = 256
# Chunks embedded per model call inside a batch: progress (chunks/s, ETA) moves and a cancel
# is noticed this often.
EMBED_STEP = 64


class Cancelled(Exception):
    """The user stopped the run (Ctrl+C, the app's cancel button): files committed so far stay,
    the rest is left for the next run."""


@dataclass
class FileOutcome:
    path: str
    status: Status
    documents: int = 0
    chunks: int = 0
    # why it failed, was skipped or removed; for an added file, the records skipped inside it
    reason: Rejection | None = None

    @property
    def reason_en(self) -> str:
        return self.reason.en if self.reason else ""

    @property
    def reason_zh(self) -> str:
        return self.reason.zh if self.reason else ""


@dataclass
class IngestReport:
    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    embedded_chunks: int = 0  # chunks whose vectors were computed in this run
    cancelled: bool = False  # stopped before the end; what is listed was committed

    def totals(self) -> dict[str, int]:
        counts = {s: 0 for s in ("added", "updated", "skipped", "failed", "removed")}
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        counts["chunks"] = sum(o.chunks for o in self.outcomes if o.status in ("added", "updated"))
        return counts

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return 130  # as a shell reports a command stopped by Ctrl+C
        return 2 if any(o.status == "failed" for o in self.outcomes) else 0


class Progress:
    """Hooks for a progress display; the CLI and the web app each implement them."""

    def start(self, files: int) -> None: ...

    def file_done(self, outcome: FileOutcome) -> None: ...

    def chunks_planned(self, chunks: int) -> None: ...

    def chunks_embedded(self, chunks: int) -> None: ...

    def message(self, text: str) -> None: ...

    def pages_done(self, path: str, done: int, total: int) -> None:
        """A page of a slow file (OCR) is finished."""


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[FileOutcome]]:
    """Files to ingest, recursively; hidden files and folders are skipped, missing paths fail."""
    found: list[Path] = []
    problems: list[FileOutcome] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            problems.append(
                FileOutcome(
                    str(path),
                    "failed",
                    reason=Rejection("unreadable", detail="no such file or folder"),
                )
            )
            continue
        if path.is_file():
            candidates = [path]
        else:
            candidates = []
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                candidates += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved in seen or not resolved.is_file():
                continue
            seen.add(resolved)
            found.append(resolved)
    return found, problems


def is_url(origin: str) -> bool:
    """Whether a stored origin is a web address rather than a file's path."""
    return origin.startswith(("http://", "https://"))


def embedding_text(title: str, headings: Sequence[str], text: str) -> str:
    """What the embedding model sees: the passage with where it sits, so a table row or a
    short paragraph still carries its document's and section's subject."""
    context = " > ".join(dict.fromkeys(h for h in (title, *headings) if h and h not in text[:80]))
    return f"{context}\n{text}" if context else text


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Pending:
    """One loaded file (or fetched web page) waiting for its vectors."""

    origin: str  # the file's path, or the page's URL
    original: Path | None  # the bytes to keep a copy of (KEEP_ORIGINALS), if any
    sha256: str
    size: int
    docs: list[tuple[LoadedDoc, list[Chunk], list[str]]]  # doc, chunks, embedding texts
    skipped_records: list[Rejection]
    drop_doc_ids: list[str]


def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def prepare_chunks(
    embedder: Callable[[], Embedder],
    kb: KnowledgeBase,
    items: Sequence[tuple[LoadedDoc, list[Chunk], list[str]]],
    progress: Progress,
    cancel: threading.Event | None = None,
) -> tuple[list[list[PreparedChunk]], int]:
    """Vectors for the chunks of several documents, reusing stored vectors of identical text.
    Returns the prepared chunks per document and how many had to be embedded. Raises
    Cancelled when `cancel` is set between two model calls."""
    texts = [t for _, _, doc_texts in items for t in doc_texts]
    hashes = [_hash_text(t) for t in texts]
    known = kb.vectors_by_embed_hash(hashes)
    todo = [i for i, h in enumerate(hashes) if h not in known]
    vectors: list[np.ndarray | None] = [known.get(h) for h in hashes]
    if len(texts) > len(todo):
        progress.chunks_embedded(len(texts) - len(todo))  # reused: done at once
    for lo in range(0, len(todo), EMBED_STEP):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        step = todo[lo : lo + EMBED_STEP]
        fresh = embedder().encode_passages([texts[i] for i in step])
        for row, i in enumerate(step):
            vectors[i] = fresh[row]
        progress.chunks_embedded(len(step))
    out: list[list[PreparedChunk]] = []
    position = 0
    for _, chunks, _ in items:
        prepared = []
        for chunk in chunks:
            vector = vectors[position]
            assert vector is not None
            prepared.append(PreparedChunk(chunk, hashes[position], vector))
            position += 1
        out.append(prepared)
    return out, len(todo)


class IngestRun:
    """One ingestion into an open knowledge base: `plan` (a file) or `plan_loaded` (anything
    loaded, e.g. a fetched page) queue documents, `flush` embeds and commits them; outcomes go
    to `report`."""

    def __init__(
        self,
        settings: Settings,
        kb: KnowledgeBase,
        embedder: Embedder | None,
        progress: Progress,
        force: bool = False,
        cancel: threading.Event | None = None,
    ) -> None:
        self.cancel = cancel
        self.settings = settings
        self.kb = kb
        self._embedder = embedder
        self._matched = False  # whether _embedder was made to follow the index's runtime
        self.progress = progress
        self.force = force  # re-process files even when their content is unchanged
        self.report = IngestReport()
        self.max_bytes = int(settings.max_file_mb * 1024 * 1024)
        self.pending: list[_Pending] = []
        self.pending_chunks = 0
        self.planned: dict[str, str] = {}  # sha256 -> source of documents planned in this run

    def embedder(self) -> Embedder:
        """Loaded on first need: an unchanged corpus is re-checked without loading the model."""
        if self._embedder is None or not self._matched:
            base = self._embedder or load_embedder(self.settings, self.progress.message)
            self._embedder = base.for_index(self.kb.embedding_spec())
            self._matched = True
            self.kb.ensure_compatible(self._embedder.spec)
        return self._embedder

    def spec(self) -> EmbeddingSpec | None:
        indexed = self.kb.embedding_spec()
        if self._embedder is not None and (self._matched or indexed is None):
            return self._embedder.spec
        return indexed

    def record(self, outcome: FileOutcome) -> None:
        self.report.outcomes.append(outcome)
        self.progress.file_done(outcome)

    def plan(self, path: Path) -> None:
        """Load and chunk one file, or record why it is skipped or failed."""
        origin = str(path)
        try:
            size = path.stat().st_size
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise Rejection(
                    "unsupported",
                    suffix=path.suffix or path.name,
                    supported=", ".join(sorted(SUPPORTED_SUFFIXES)),
                )
            if size > self.max_bytes:
                raise Rejection(
                    "too_large", size_mb=size / 2**20, limit_mb=self.settings.max_file_mb
                )
            sha256 = _sha256(path)
        except OSError as exc:
            self.record(
                FileOutcome(
                    origin,
                    "failed",
                    reason=Rejection("unreadable", detail=exc.strerror or str(exc)),
                )
            )
            return
        except Rejection as rejection:
            self.record(FileOutcome(origin, "failed", reason=rejection))
            return
        if self.kb.source_sha256(origin) == sha256 and not self.force:
            self.record(FileOutcome(origin, "skipped", reason=Rejection("unchanged")))
            return
        try:
            loaded = load_file(
                path,
                self.max_bytes,
                self.settings.max_pdf_pages,
                ocr=self.settings.ocr,
                on_page=lambda done, total: self.progress.pages_done(origin, done, total),
            )
        except Rejection as rejection:
            self.record(FileOutcome(origin, "failed", reason=rejection))
            return
        except Exception as exc:  # a loader bug must not stop the other files
            self.record(
                FileOutcome(origin, "failed", reason=Rejection("internal", detail=repr(exc)[:200]))
            )
            return
        self.plan_loaded(origin, sha256, size, loaded, path)

    def plan_loaded(
        self, origin: str, sha256: str, size: int, loaded: Loaded, original: Path | None
    ) -> None:
        """Chunk what was loaded from `origin` (a file, or a fetched page or file whose origin
        is its URL) and queue it for embedding, or record why nothing of it is stored."""
        docs: list[tuple[LoadedDoc, list[Chunk], list[str]]] = []
        new_ids = {doc.doc_id for doc in loaded.docs}
        # records that vanished from a changed JSONL file go with it
        drop = [d for d in self.kb.doc_ids_of_origin(origin) if d not in new_ids]
        skipped = list(loaded.skipped)
        for doc in loaded.docs:
            owner = self.kb.document(doc.doc_id)
            if owner is not None and owner.origin != origin:
                skipped.append(Rejection("duplicate_id", doc_id=doc.doc_id, other=owner.origin))
                continue
            if owner is not None and owner.sha256 == doc.sha256 and not self.force:
                continue  # an unchanged record of a changed JSONL file
            if doc.sha256 in self.planned:
                skipped.append(Rejection("duplicate_content", other=self.planned[doc.sha256]))
                continue
            twin = next(
                (d for d in self.kb.documents_with_sha256(doc.sha256) if d.doc_id != doc.doc_id),
                None,
            )
            if twin is not None:
                # a page's twin at another URL is still online as far as we know
                if is_url(twin.origin) or Path(twin.origin).exists():
                    skipped.append(Rejection("duplicate_content", other=twin.source))
                    continue
                drop.append(twin.doc_id)  # the same content moved here from a file now gone
            chunks = chunk_document(doc, self.settings.chunk_size, self.settings.chunk_overlap)
            if not chunks:
                skipped.append(Rejection("no_text"))
                continue
            texts = [embedding_text(doc.title, c.headings, c.text) for c in chunks]
            docs.append((doc, chunks, texts))
            self.planned[doc.sha256] = doc.source
        problems = [r for r in skipped if r.code != "duplicate_content"]
        if not docs and problems and not any(self.kb.document(d.doc_id) for d in loaded.docs):
            # nothing of this file is or will be in the knowledge base
            self.record(FileOutcome(origin, "failed", reason=problems[0]))
            return
        self.pending.append(_Pending(origin, original, sha256, size, docs, skipped, drop))
        n = sum(len(c) for _, c, _ in docs)
        self.pending_chunks += n
        self.progress.chunks_planned(n)
        if self.pending_chunks >= BATCH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending, self.pending_chunks = self.pending, [], 0
        items = [d for p in batch for d in p.docs]
        prepared_docs, fresh = prepare_chunks(
            self.embedder, self.kb, items, self.progress, self.cancel
        )
        self.report.embedded_chunks += fresh
        prepared = iter(prepared_docs)
        with self.kb.writer(self.spec() or self.embedder().spec, save_vectors=False) as writer:
            for pending in batch:
                docs = [(doc, next(prepared)) for doc, _, _ in pending.docs]
                origin = pending.origin
                # checked again under the lock: another process may have stored it meanwhile
                previous = self.kb.source_sha256(origin)
                if previous == pending.sha256 and not self.force:
                    self.record(FileOutcome(origin, "skipped", reason=Rejection("unchanged")))
                    continue
                if docs and pending.original is not None:
                    # what the viewer opens once the source folder has moved, kept before the
                    # document is committed: a reader (another server, too) that sees the
                    # document finds its original
                    keep_original(self.settings, self.kb.name, pending.original, pending.sha256)
                status = writer.put_file(
                    origin, pending.sha256, pending.size, docs, pending.drop_doc_ids
                )
                if previous is not None and previous != pending.sha256:
                    # the changed file's old bytes: their copy goes unless another file has them
                    release_originals(self.settings, self.kb, [(origin, previous)])
                note = _skip_note(pending.skipped_records)
                if not docs and not pending.drop_doc_ids:
                    self.record(
                        FileOutcome(origin, "skipped", reason=note or Rejection("unchanged"))
                    )
                    continue
                updated = "updated" in status.values() or bool(pending.drop_doc_ids)
                self.record(
                    FileOutcome(
                        origin,
                        "updated" if updated else "added",
                        len(docs),
                        sum(len(p) for _, p in docs),
                        reason=note,
                    )
                )


def _skip_note(skipped: Sequence[Rejection]) -> Rejection | None:
    """One reason for the records skipped inside a file: the reason itself when there is one."""
    if len(skipped) == 1:
        return skipped[0]
    if not skipped:
        return None
    return Rejection(
        "records_skipped", count=len(skipped), first=skipped[0].en, first_zh=skipped[0].zh
    )


def ingest_paths(
    settings: Settings,
    paths: Sequence[Path],
    kb_name: str | None = None,
    prune: bool = False,
    reindex: bool = False,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
    force: bool = False,
    cancel: threading.Event | None = None,
) -> IngestReport:
    """Ingest files and folders into a knowledge base. Raises StoreError on a fatal problem
    (the knowledge base cannot be opened or written, the embedding model does not match).
    `force` re-processes files whose content is unchanged (a per-document re-ingest).
    Setting `cancel` stops the run at the next file or model call: the files committed so far
    stay (the report lists them, `cancelled` set), the next run does the rest."""
    started = time.perf_counter()
    progress = progress or Progress()
    files, missing = discover(paths)
    kb = KnowledgeBase.open(settings, kb_name, create=True)
    try:
        run = IngestRun(settings, kb, embedder, progress, force=force, cancel=cancel)
        if reindex:
            reindex_kb(kb, run.embedder(), settings, progress)
        else:
            kb.ensure_model_name(settings.embedding_model)
        progress.start(len(files) + len(missing))
        for outcome in missing:
            run.record(outcome)
        try:
            for path in files:
                if cancel is not None and cancel.is_set():
                    raise Cancelled
                run.plan(path)
            run.flush()
        except Cancelled:
            run.report.cancelled = True
        if prune and not run.report.cancelled:
            gone = [
                (o, sha)
                for o, sha, _ in kb.source_records()
                if not is_url(o) and not Path(o).exists()  # pages go by their sources' sync
            ]
            if gone:
                with kb.writer(None, save_vectors=False) as writer:
                    writer.remove_origins([o for o, _ in gone])
                    release_originals(settings, kb, gone)
                for origin, _ in gone:
                    run.record(FileOutcome(origin, "removed", reason=Rejection("gone")))
        if kb.vectors_stale():
            with kb.writer(None):
                kb.save_vectors()
    finally:
        kb.close()
    run.report.seconds = time.perf_counter() - started
    return run.report


def reindex_kb(
    kb: KnowledgeBase, embedder: Embedder, settings: Settings, progress: Progress
) -> int:
    """Re-chunk every stored document with the current settings and re-embed it with the
    current model, in one transaction (a crash leaves the old index in place)."""
    with kb.writer(embedder.spec, save_vectors=True) as writer:
        stored = list(writer.stored_documents())
        items = []
        for doc, _origin, _ in stored:
            chunks = chunk_document(doc, settings.chunk_size, settings.chunk_overlap)
            items.append(
                (doc, chunks, [embedding_text(doc.title, c.headings, c.text) for c in chunks])
            )
        progress.chunks_planned(sum(len(c) for _, c, _ in items))
        texts = [t for _, _, ts in items for t in ts]
        vectors = embedder.encode_passages(texts)
        progress.chunks_embedded(len(texts))
        position = 0
        rows = []
        for (doc, chunks, _), (_, origin, ingested_at) in zip(items, stored, strict=True):
            prepared = []
            for chunk in chunks:
                prepared.append(
                    PreparedChunk(chunk, _hash_text(texts[position]), vectors[position])
                )
                position += 1
            if prepared:
                rows.append((doc, prepared, origin, ingested_at))
        return writer.replace_all(rows)


def remove_documents(
    settings: Settings, kb_name: str | None, selectors: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Remove documents chosen by doc id, path or file name, with what zhiku kept of their
    files: the kept copy (`KEEP_ORIGINALS`) and the stored upload, once no document of the
    knowledge base comes from that file (or, for the copy, from one with the same bytes).
    Returns (removed ids, unmatched)."""
    kb = KnowledgeBase.open(settings, kb_name)
    try:
        docs = kb.documents()
        chosen: list[str] = []
        unmatched: list[str] = []
        for selector in selectors:
            resolved = str(Path(selector).resolve()) if selector else ""
            matches = [
                d.doc_id
                for d in docs
                if selector in (d.doc_id, d.source, Path(d.source).name) or d.source == resolved
            ]
            if matches:
                chosen += matches
            else:
                unmatched.append(selector)
        chosen = list(dict.fromkeys(chosen))
        if chosen:
            spec = kb.embedding_spec()
            with kb.writer(spec) as writer:
                before = kb.source_records()
                writer.remove_documents(chosen)
                still = set(kb.origins())
                dropped = [(origin, sha) for origin, sha, _ in before if origin not in still]
                release_originals(settings, kb, dropped)
            for origin, _ in dropped:
                discard_upload(settings, kb.name, origin)
        return chosen, unmatched
    finally:
        kb.close()


__all__ = [
    "Cancelled",
    "FileOutcome",
    "IngestReport",
    "IngestRun",
    "Progress",
    "StoreError",
    "discover",
    "embedding_text",
    "ingest_paths",
    "is_url",
    "reindex_kb",
    "remove_documents",
]
