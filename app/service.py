"""The one service under the HTTP API, the MCP server and the CLI: knowledge bases, documents,
uploads, search and answers, each a method over shared, thread-safe resources.

Answering goes through `app._rag.answer()` and nothing else, so every face of zhiku gives the
same answer, citations and refusals. What the service adds is what a server needs and a single
user does not: one embedder and one `KnowledgeBase` instance per name shared by every request
(both are thread-safe), the LLM backend resolved once and re-checked every few minutes, and a
queue in front of the one LLM, so concurrent questions wait their turn with a position instead
of overloading it; past `LLM_QUEUE_MAX` waiting questions, a new one is turned away (`Busy`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app._llm import BackendInfo, LlmError, ResolvedBackend, resolve_backend
from app._owned import Owned, deletion_mark, owned
from app._rag import AnswerResult, Event, Final, answer
from app._search import Hit, search
from app._watched import Watchers
from ingest._embed import Embedder, load_embedder
from ingest._insert import FileOutcome, Progress, ingest_paths, remove_documents
from ingest._store import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeBase,
    StoreError,
    delete_kb,
    kb_exists,
    list_kbs,
    validate_kb_name,
)
from ingest._upload import SavedUpload, save_uploads
from ingest.settings import Settings

_BACKEND_TTL_S = 300.0  # "auto" notices an Ollama started (or stopped) within minutes


class ServiceError(RuntimeError):
    """A request the service cannot do, with the reason in English and Chinese; `kind` says
    which: not_found, conflict, busy, bad_request."""

    def __init__(self, kind: str, en: str, zh: str) -> None:
        super().__init__(en)
        self.kind = kind
        self.en = en
        self.zh = zh


class Busy(ServiceError):
    def __init__(self, waiting: int, limit: int) -> None:
        super().__init__(
            "busy",
            f"the LLM is busy: {waiting} questions are waiting (limit {limit}); retry shortly",
            f"大模型正忙：已有 {waiting} 个问题在排队（上限 {limit}），请稍后重试",
        )


@dataclass(frozen=True)
class Queued:
    """The question waits for the LLM: `position` questions are ahead of it or being answered."""

    position: int


class LlmQueue:
    """One question at a time for the LLM, the others waiting their turn."""

    def __init__(self, max_waiting: int, timeout_s: float) -> None:
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self._slot = threading.Lock()  # a Lock, not an RLock: a stream may end on another thread
        self._count = threading.Lock()
        self.waiting = 0
        self.active = 0

    def enter(self) -> _Ticket:
        """Take a place in the queue. Raises Busy when `max_waiting` questions already wait."""
        with self._count:
            ahead = self.waiting + self.active
            if ahead and self.waiting >= self.max_waiting:
                raise Busy(self.waiting, self.max_waiting)
            self.waiting += 1
            return _Ticket(self, ahead)

    def _left(self, started: bool) -> None:
        with self._count:
            self.waiting -= 1
            self.active += started

    def _done(self) -> None:
        with self._count:
            self.active -= 1
        self._slot.release()


class _Ticket:
    def __init__(self, queue: LlmQueue, ahead: int) -> None:
        self.queue = queue
        self.ahead = ahead  # questions waiting or being answered when this one came
        self._state = "waiting"

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for the LLM, hold it for the block, give it back."""
        queue = self.queue
        got = queue._slot.acquire(timeout=queue.timeout_s)
        self._state = "started" if got else "left"
        queue._left(got)
        if not got:
            raise ServiceError(
                "busy",
                f"waited {queue.timeout_s:.0f} s for the LLM without getting a turn",
                f"等待大模型 {queue.timeout_s:.0f} 秒仍未轮到，请稍后重试",
            )
        try:
            yield
        finally:
            self._state = "done"
            queue._done()

    def cancel(self) -> None:
        """Leave the queue when the turn never began (the caller went away first)."""
        if self._state == "waiting":
            self._state = "left"
            self.queue._left(False)


class DeletionIncomplete(ServiceError):
    """A deletion stopped at one step: what is gone, what is left, and that running the same
    deletion again finishes it."""

    def __init__(self, name: str, done: list[Owned], left: list[Owned], cause: Exception) -> None:
        detail_zh = cause.zh if isinstance(cause, StoreError) and cause.zh else str(cause)
        gone_en = ", ".join(p.en for p in done) or "nothing"
        gone_zh = "、".join(p.zh for p in done) or "无"
        super().__init__(
            "conflict",
            f"knowledge base {name!r} is only partly deleted ({cause}). Deleted: {gone_en}; "
            f"left: {', '.join(p.en for p in left)}. Delete it again to finish.",
            f"知识库「{name}」只删除了一部分（{detail_zh}）。已删除：{gone_zh}；"
            f"尚未删除：{'、'.join(p.zh for p in left)}。请再次删除以完成。",
        )
        self.done = done
        self.left = left


@dataclass(frozen=True)
class KbInfo:
    name: str
    documents: int
    chunks: int
    embedding_model: str


@dataclass(frozen=True)
class ImportedFile:
    """One uploaded file: as sent, as stored, and what ingesting it did (or why not)."""

    name: str
    stored_name: str
    status: str  # added / updated / skipped / failed
    documents: int
    chunks: int
    reason_en: str
    reason_zh: str


class Service:
    """Everything the API, MCP and CLI do, over one set of shared resources."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        backend: ResolvedBackend | None = None,
        watchers: Watchers | None = None,
    ) -> None:
        self.settings = settings
        self.watchers = watchers  # the web app's folder watchers, stopped before a deletion
        self._embedder = embedder
        self._backend = backend
        self._backend_fixed = backend is not None
        self._backend_at = 0.0
        self._kbs: dict[str, tuple[KnowledgeBase, str]] = {}
        self._lock = threading.RLock()
        self.llm_queue = LlmQueue(settings.llm_queue_max, settings.llm_queue_timeout_s)

    # ----- shared resources --------------------------------------------------------------

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = load_embedder(self.settings)
            return self._embedder

    def backend(self) -> ResolvedBackend:
        """The configured LLM backend; one that cannot work means retrieval only, with why."""
        with self._lock:
            stale = time.monotonic() - self._backend_at > _BACKEND_TTL_S
            if self._backend is None or (stale and not self._backend_fixed):
                try:
                    self._backend = resolve_backend(self.settings)
                except LlmError as exc:
                    self._backend = ResolvedBackend(None, BackendInfo("none", ""), exc)
                self._backend_at = time.monotonic()
            return self._backend

    def kb(self, name: str | None = None) -> KnowledgeBase:
        """The shared instance of a knowledge base (StoreError when it does not exist). One
        deleted and created again (say by the CLI) has another identity: the instance follows
        it, in either store."""
        name = validate_kb_name(name or self.settings.default_kb)
        with self._lock:
            cached = self._kbs.get(name)
            if cached is not None:
                try:
                    if cached[0].identity() == cached[1]:
                        return cached[0]
                except (OSError, StoreError):
                    pass  # deleted meanwhile
                # not closed here: a request may still be reading it (its connection closes
                # when the last reference goes)
                self._kbs.pop(name)
            kb = KnowledgeBase.open(self.settings, name)
            self._kbs[name] = (kb, kb.identity())
            return kb

    def _forget(self, name: str) -> None:
        with self._lock:
            self._kbs.pop(name, None)  # not closed: see kb()

    def close(self) -> None:
        with self._lock:
            for kb, _ in self._kbs.values():
                kb.close()
            self._kbs.clear()

    # ----- knowledge bases and documents -------------------------------------------------

    def kb_names(self) -> list[str]:
        return list_kbs(self.settings)

    def kb_info(self, name: str) -> KbInfo:
        kb = self.kb(name)
        counts = kb.counts()
        spec = kb.embedding_spec()
        return KbInfo(
            kb.name,
            counts.get("documents", 0),
            counts.get("chunks", 0),
            spec.name if spec else "",
        )

    def knowledge_bases(self) -> list[KbInfo]:
        infos = []
        for name in self.kb_names():
            try:
                infos.append(self.kb_info(name))
            except StoreError:
                continue  # deleted meanwhile, or damaged: `zhiku kb check` says which
        return infos

    def create_kb(self, name: str) -> KbInfo:
        name = validate_kb_name(name)
        if kb_exists(self.settings, name):
            raise ServiceError(
                "conflict", f"knowledge base {name!r} already exists", f"知识库 {name!r} 已存在"
            )
        self.finish_deletion(name)
        KnowledgeBase.open(self.settings, name, create=True).close()
        return self.kb_info(name)

    def owned(self, name: str) -> list[Owned]:
        """Everything knowledge base `name` owns, in the order a deletion removes it."""
        return owned(self.settings, name, self.watchers, lambda: self._forget(name))

    def delete_kb(self, name: str, store_only: bool = False) -> None:
        """Delete a knowledge base and everything it owns (`owned`), in that order. A step
        that fails stops the deletion with DeletionIncomplete, saying what is gone and what is
        left; the same call again finishes it (every step skips what is already gone). A mark
        under the data home records the unfinished deletion, so that a knowledge base created
        again under the name first loses the rest (`finish_deletion`) and starts empty.
        `store_only` deletes only the configured store's copy: after a migration the other
        store's copy of the name still uses the uploads, copies and conversations."""
        name = validate_kb_name(name)
        if store_only:
            self._forget(name)
            delete_kb(self.settings, name)  # StoreError when it is not there
            return
        parts = self.owned(name)
        mark = deletion_mark(self.settings, name)
        had = [part for part in parts if _present(part)]
        if not mark.exists() and not had:
            raise StoreError(f"knowledge base {name!r} does not exist", f"知识库 {name!r} 不存在")
        try:  # the intent first: a deletion that stops is known to be unfinished
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.write_text(datetime.now(UTC).isoformat(timespec="seconds"), encoding="utf-8")
        except OSError as exc:
            raise DeletionIncomplete(name, [], had, exc) from exc
        done: list[Owned] = []
        for part in parts:
            try:
                part.delete()
            except (StoreError, OSError) as exc:
                left = [p for p in parts if p not in done and _present(p)]
                raise DeletionIncomplete(name, done, left or [part], exc) from exc
            if part in had:  # what was there and is gone now, for the message
                done.append(part)
        mark.unlink(missing_ok=True)

    def deletion_unfinished(self, name: str) -> bool:
        """Whether a deletion of `name` stopped before it was done (deleting again finishes)."""
        return deletion_mark(self.settings, validate_kb_name(name)).exists()

    def finish_deletion(self, name: str) -> bool:
        """Finish a deletion of `name` that stopped after its store was emptied (what is left
        is the deleted knowledge base's, not a new one's); whether there was one. One that
        stopped before leaves the knowledge base as it is: only deleting it again removes it."""
        name = validate_kb_name(name)
        if not deletion_mark(self.settings, name).exists() or kb_exists(self.settings, name):
            return False
        self.delete_kb(name)
        return True

    def documents(self, kb_name: str) -> list[DocumentRecord]:
        return self.kb(kb_name).documents()

    def document(self, kb_name: str, doc_id: str) -> DocumentRecord:
        doc = self.kb(kb_name).document(doc_id)
        if doc is None:
            raise ServiceError(
                "not_found",
                f"no document {doc_id!r} in knowledge base {kb_name!r}",
                f"知识库 {kb_name!r} 中没有文档 {doc_id!r}",
            )
        return doc

    def document_text(self, kb_name: str, doc_id: str) -> str:
        """The document's text as stored, chunk by chunk without the overlaps repeated."""
        self.document(kb_name, doc_id)
        kb = self.kb(kb_name)
        pages: list[str] = []
        seen: set[int] = set()
        for chunk in kb.document_chunks(doc_id):
            if chunk.page_seq in seen:
                continue
            seen.add(chunk.page_seq)
            pages.append(kb.page_text(doc_id, chunk.page_seq) or "")
        return "\n\n".join(pages)

    def remove_document(self, kb_name: str, doc_id: str) -> None:
        """Remove a document with its stored upload and kept copy, once no other document of
        the knowledge base comes from that file (`ingest._insert.remove_documents`)."""
        doc = self.document(kb_name, doc_id)
        remove_documents(self.settings, kb_name, [doc.doc_id])

    def passage(self, kb_name: str, chunk_id: int) -> ChunkRecord:
        record = self.kb(kb_name).chunks([chunk_id]).get(chunk_id)
        if record is None:
            raise ServiceError(
                "not_found",
                f"no passage {chunk_id} in knowledge base {kb_name!r}",
                f"知识库 {kb_name!r} 中没有段落 {chunk_id}",
            )
        return record

    # ----- ingestion ---------------------------------------------------------------------

    def save_files(self, kb_name: str, files: Sequence[tuple[str, bytes]]) -> list[SavedUpload]:
        """Save uploaded files under the data home (names sanitised, limits applied): the
        bytes are safe on disk before any slow ingestion starts."""
        kb_name = validate_kb_name(kb_name)
        self.finish_deletion(kb_name)  # a new knowledge base under a deleted one's name
        return save_uploads(self.settings, kb_name, files)

    def ingest_saved(
        self,
        kb_name: str,
        saved: Sequence[SavedUpload],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[ImportedFile]:
        """Ingest the saved uploads; one result per upload, in order, rejected ones included.
        When `cancel` is set the files committed so far stay, the rest are reported not
        processed. Raises StoreError when the knowledge base itself cannot be written."""
        paths = list(dict.fromkeys(s.path for s in saved if s.path is not None))
        outcomes: dict[str, FileOutcome] = {}
        if paths:
            report = ingest_paths(
                self.settings,
                paths,
                kb_name,
                progress=progress,
                embedder=self.embedder(),
                cancel=cancel,
            )
            outcomes = {o.path: o for o in report.outcomes}
        results = []
        for upload in saved:
            if upload.path is None:
                rejection = upload.rejection
                en = rejection.en if rejection else "not saved"
                zh = rejection.zh if rejection else "未保存"
                results.append(ImportedFile(upload.name, "", "failed", 0, 0, en, zh))
                continue
            outcome = outcomes.get(str(upload.path))
            if outcome is None:  # every saved path is reported; be explicit if not
                results.append(
                    ImportedFile(
                        upload.name, upload.stored_name, "failed", 0, 0, "not processed", "未处理"
                    )
                )
                continue
            en, zh = outcome.reason_en, outcome.reason_zh
            if upload.renamed:
                en = "; ".join(filter(None, [f"stored as {upload.stored_name!r}", en]))
                zh = "；".join(
                    filter(None, [f"已有同名的不同文件，另存为「{upload.stored_name}」", zh])
                )
            results.append(
                ImportedFile(
                    upload.name,
                    upload.stored_name,
                    outcome.status,
                    outcome.documents,
                    outcome.chunks,
                    en,
                    zh,
                )
            )
        return results

    def reingest_document(
        self, kb_name: str, doc_id: str, progress: Progress | None = None
    ) -> FileOutcome:
        doc = self.document(kb_name, doc_id)
        origin = Path(doc.origin)
        if not origin.is_file():
            raise ServiceError(
                "conflict",
                f"the original file is gone ({doc.origin}); delete the document and upload it "
                "again",
                f"原文件已不存在（{doc.origin}）；请删除这篇文档后重新上传",
            )
        report = ingest_paths(
            self.settings,
            [origin],
            kb_name,
            force=True,
            progress=progress,
            embedder=self.embedder(),
        )
        if not report.outcomes:
            return FileOutcome(str(origin), "failed")
        return report.outcomes[0]

    # ----- search and answers ------------------------------------------------------------

    def search(self, kb_name: str, query: str, k: int | None = None) -> list[Hit]:
        return search(self.kb(kb_name), self.embedder(), query, self.settings, k=k)

    def answer(
        self, kb_name: str, question: str, history: Sequence[tuple[str, str]] = ()
    ) -> Iterator[Event | Queued]:
        """`app._rag.answer()`'s events for `question`. With an LLM, the question first takes
        its place in the queue: Busy is raised at once when the queue is full (before the
        first event), and a `Queued` event comes first when it has to wait."""
        kb = self.kb(kb_name)
        backend = self.backend()
        embedder = self.embedder()
        if backend.chat is None:
            return answer(question, history, kb, self.settings, embedder, backend)
        ticket = self.llm_queue.enter()
        events = answer(question, history, kb, self.settings, embedder, backend)
        return self._after_turn(ticket, events)

    @staticmethod
    def _after_turn(ticket: _Ticket, events: Iterator[Event]) -> Iterator[Event | Queued]:
        try:
            if ticket.ahead:
                yield Queued(ticket.ahead)
            with ticket.turn():
                yield from events
        finally:
            ticket.cancel()
            events.close()  # stops the generation when the caller went away

    def ask(
        self, kb_name: str, question: str, history: Sequence[tuple[str, str]] = ()
    ) -> AnswerResult:
        result = None
        for event in self.answer(kb_name, question, history):
            if isinstance(event, Final):
                result = event.result
        assert result is not None  # answer() always ends with Final
        return result

    def status(self) -> dict[str, object]:
        info = self.backend().info
        embedder = self._embedder
        return {
            "backend": info.kind,
            "model": info.model,
            "backend_label": info.label_en,
            "embedding_model": self.settings.embedding_model,
            "query_runtime": embedder.query_runtime if embedder else "not loaded",
            "knowledge_bases": [
                {"name": k.name, "documents": k.documents, "chunks": k.chunks}
                for k in self.knowledge_bases()
            ],
            "llm_queue": {
                "active": self.llm_queue.active,
                "waiting": self.llm_queue.waiting,
                "max_waiting": self.llm_queue.max_waiting,
            },
        }


def _present(part: Owned) -> bool:
    try:
        return part.present()
    except (StoreError, OSError):
        return True  # cannot tell: say it may be left


__all__ = [
    "Busy",
    "DeletionIncomplete",
    "ImportedFile",
    "KbInfo",
    "LlmQueue",
    "Owned",
    "Queued",
    "Service",
    "ServiceError",
]
