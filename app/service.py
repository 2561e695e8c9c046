"""The one service under the HTTP API, the MCP server and the CLI: knowledge bases, documents,
uploads, search and answers, each a method over shared, thread-safe resources.

Answering goes through `app.answer.answer()` and nothing else, so every face of zhiku gives the
same answer, citations and refusals. What the service adds is what a server needs and a single
user does not: one embedder and one `KnowledgeBase` instance per name shared by every request
(both are thread-safe), the LLM backend resolved once and re-checked every few minutes, and a
queue in front of the one LLM, so concurrent questions wait their turn with a position instead
of overloading it; past `LLM_QUEUE_MAX` waiting questions, a new one is turned away (`Busy`).

Rights are checked here and nowhere else: every method that reads or writes a knowledge base, or
administers people, takes the `Principal` acting (`who`) first and checks it (`app.access`)
before it touches anything; a refusal is `Forbidden`. Writes, administrative acts and refused
writes go to the audit log (`app.state.audit`). `RULES` names the need of every such method.
Conversations, feedback and evaluation cases are also their author's: those methods are in
`app/_authored.py` (`OWNERSHIP` names their rule), inherited here; what the web app's pages do
besides is in `app/_service_library.py` (`LIBRARY_RULES`); ingesting files, web pages and
sources, watching folders and removing documents by selector in `app/_ingesting.py`
(`INGESTING`); the audit log paged, filtered and exported, and the rule that keeps an enabled
admin, in `app/_administering.py` (`ADMINISTERING`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from app._administering import ADMINISTERING, Administering
from app._authored import OWNERSHIP, AuthoredRecords, ConversationNotFound, OpenedConversation
from app._ingesting import INGESTING, Ingesting
from app._kb_records import KB_RECORDS, KbRecords
from app._llm import BackendInfo, LlmError, ResolvedBackend, resolve_backend
from app._owned import Owned, deletion_mark, owned
from app._service_error import ServiceError
from app._service_library import LIBRARY_RULES, LibraryMethods, OpenKbs
from app._warmup import WARMUP_QUERY, Skipped, Warmup, warmup_steps
from app._watched import Watchers
from app.access import Need, Principal
from app.answer import AnswerResult, Event, Final, Hit, answer, search
from app.state.accounts import AccountError, Accounts, Person
from app.state.audit import AuditEntry, AuditLog
from app.state.keys import ApiKey, KeyStore
from ingest import (
    Embedder,
    FileOutcome,
    Progress,
    SavedUpload,
    ingest_paths,
    load_embedder,
    remove_documents,
    save_uploads,
)
from ingest.settings import Settings
from ingest.store import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeBase,
    StoreError,
    delete_kb,
    kb_exists,
    list_kbs,
    validate_kb_name,
)

_BACKEND_TTL_S = 300.0  # "auto" notices an Ollama started (or stopped) within minutes


class Forbidden(ServiceError):
    """The principal may not do this (403 in the API)."""

    def __init__(self, who: Principal, need: Need, kb: str | None) -> None:
        what_en = {
            "read": "read",
            "write": "change",
            "create": "create",
            "admin": "administer",
        }[need]
        what_zh = {"read": "读取", "write": "修改", "create": "创建", "admin": "管理"}[need]
        if kb is None:
            en = f"{who.label} is not allowed to {what_en} people, grants, keys or the audit log"
            zh = f"{who.label} 无权{what_zh}用户、授权、密钥或审计日志"
        else:
            en = f"{who.label} is not allowed to {what_en} knowledge base {kb!r}"
            zh = f"{who.label} 无权{what_zh}知识库 {kb!r}"
        if need in ("write", "create") and who.key_read_only:
            en += " (the API key is read-only)"
            zh += "（该 API 密钥为只读）"
        if who.key_read_only and need in ("write", "create"):
            kind = "read_only_key"
        elif kb is not None and who.key_kbs is not None and kb not in who.key_kbs:
            kind = "kb_not_allowed"  # the codes API clients knew before accounts existed
        else:
            kind = "forbidden"
        super().__init__(kind, en, zh)
        self.need = need
        self.kb = kb


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


class Service(AuthoredRecords, LibraryMethods, Ingesting, KbRecords, Administering):
    """Everything the API, MCP, CLI and web app do, over one set of shared resources."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        backend: ResolvedBackend | None = None,
        watchers: Watchers | None = None,
        kbs: OpenKbs | None = None,
    ) -> None:
        self.settings = settings
        self.watchers = watchers  # the web app's folder watchers, stopped before a deletion
        self._embedder = embedder
        self._backend = backend
        self._backend_fixed = backend is not None
        self._backend_at = 0.0
        self._kbs = kbs if kbs is not None else OpenKbs()  # the web app's pages share theirs
        self._lock = threading.RLock()
        # Loading the embedder or starting the LLM takes seconds: each has its own lock, so
        # that neither holds up the other (the warm-up loads both at once) nor `kb()`.
        self._embedder_lock = threading.Lock()
        self._backend_lock = threading.Lock()
        self._warmup: Warmup | None = None
        self.llm_queue = LlmQueue(settings.llm_queue_max, settings.llm_queue_timeout_s)

    # ----- rights ------------------------------------------------------------------------

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.settings)

    @property
    def audit_log(self) -> AuditLog:
        return AuditLog(self.settings)

    def audit(
        self,
        who: Principal | str,
        action: str,
        kb: str | None = None,
        target: str | None = None,
        outcome: str = "ok",
        detail: object = None,
        origin: str | None = None,
    ) -> None:
        """One row of the audit log (a failure to write it is logged, not raised: the act is
        done by then)."""
        try:
            self.audit_log.record(who, action, kb, target, outcome, origin, detail)
        except Exception:  # the act itself is done: a lost row must not look like a failed act
            logging.getLogger("zhiku.audit").exception("could not write the audit log")

    def require(self, who: Principal, need: Need, kb: str | None = None) -> None:
        """Raise Forbidden unless `who` may `need` (on `kb`); a refused write or admin act is
        logged."""
        if who.may(need, kb):
            return
        if need != "read":
            self.audit(who, f"refused:{need}", kb, outcome="refused")
        raise Forbidden(who, need, kb)

    def readable(self, who: Principal, names: Sequence[str]) -> list[str]:
        return [name for name in names if who.can_read(name)]

    # ----- shared resources --------------------------------------------------------------

    def embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = load_embedder(self.settings)
            return self._embedder

    def backend(self) -> ResolvedBackend:
        """The configured LLM backend; one that cannot work means retrieval only, with why."""
        with self._backend_lock:
            stale = time.monotonic() - self._backend_at > _BACKEND_TTL_S
            if self._backend is None or (stale and not self._backend_fixed):
                try:
                    self._backend = resolve_backend(self.settings)
                except LlmError as exc:
                    self._backend = ResolvedBackend(None, BackendInfo("none", ""), exc)
                self._backend_at = time.monotonic()
            return self._backend

    def use_backend(self, backend: ResolvedBackend) -> None:
        """Answer with `backend` from now on, never re-resolved: the CLI resolves its own (a
        `--backend` choice, with progress shown) once it knows the knowledge base is there."""
        with self._backend_lock:
            self._backend, self._backend_fixed = backend, True

    def warm_up(self) -> Warmup:
        """Start (once) loading what the first question needs, in background threads: the
        embedder, the LLM (worker, self-check, prefix cache) and a first retrieval in the
        default knowledge base. Its progress is in `status()["warmup"]`."""
        with self._lock:
            if self._warmup is None:
                self._warmup = Warmup(
                    warmup_steps(self.embedder, self.backend, self._first_retrieval)
                ).start()
            return self._warmup

    def _first_retrieval(self) -> None:
        name = self.settings.default_kb
        if not kb_exists(self.settings, name):
            raise Skipped(f"knowledge base {name!r} does not exist yet")
        search(self.kb(name), self.embedder(), WARMUP_QUERY, self.settings)

    def kb(self, name: str | None = None) -> KnowledgeBase:
        # Unchecked: for the service's own methods and a caller that already checked `who`.
        """The shared instance of a knowledge base (StoreError when it does not exist). One
        deleted and created again (say by the CLI) has another identity: the instance follows
        it, in either store."""
        return self._kbs.get(self.settings, validate_kb_name(name or self.settings.default_kb))

    def _forget(self, name: str) -> None:
        self._kbs.forget(name)  # not closed: a request may still be reading it

    def close(self) -> None:
        self._kbs.close()

    # ----- knowledge bases and documents -------------------------------------------------

    def kb_names(self, who: Principal) -> list[str]:
        """The knowledge bases `who` may read."""
        return self.readable(who, list_kbs(self.settings))

    def kb_info(self, who: Principal, name: str) -> KbInfo:
        self.require(who, "read", name)
        return self._kb_info(name)

    def _kb_info(self, name: str) -> KbInfo:
        kb = self.kb(name)
        counts = kb.counts()
        spec = kb.embedding_spec()
        return KbInfo(
            kb.name,
            counts.get("documents", 0),
            counts.get("chunks", 0),
            spec.name if spec else "",
        )

    def knowledge_bases(self, who: Principal) -> list[KbInfo]:
        infos = []
        for name in self.kb_names(who):
            try:
                infos.append(self._kb_info(name))
            except StoreError:
                continue  # deleted meanwhile, or damaged: `zhiku kb check` says which
        return infos

    def create_kb(self, who: Principal, name: str) -> KbInfo:
        name = validate_kb_name(name)
        self.require(who, "create", name)
        if kb_exists(self.settings, name):
            raise ServiceError(
                "conflict", f"knowledge base {name!r} already exists", f"知识库 {name!r} 已存在"
            )
        self.finish_deletion(name)
        KnowledgeBase.open(self.settings, name, create=True).close()
        self._created(who, name)
        return self._kb_info(name)

    def _created(self, who: Principal, name: str) -> None:
        """An editor who creates a knowledge base may write it."""
        self.audit(who, "create_kb", name)
        if who.person_id is not None and not who.can_write(name):
            person = self.accounts.by_id(who.person_id)
            if person is not None:
                self.accounts.grant(person.name, name, "write")
                self.audit(who, "grant", name, person.name, detail={"access": "write"})

    def owned(self, who: Principal, name: str) -> list[Owned]:
        self.require(who, "write", validate_kb_name(name))
        return self._owned(name)

    def _owned(self, name: str) -> list[Owned]:
        """Everything knowledge base `name` owns, in the order a deletion removes it."""
        return owned(self.settings, name, self.watchers, lambda: self._forget(name))

    def delete_kb(self, who: Principal, name: str, store_only: bool = False) -> None:
        """Delete a knowledge base and everything it owns (`owned`), in that order. A step
        that fails stops the deletion with DeletionIncomplete, saying what is gone and what is
        left; the same call again finishes it (every step skips what is already gone). A mark
        under the data home records the unfinished deletion, so that a knowledge base created
        again under the name first loses the rest (`finish_deletion`) and starts empty.
        `store_only` deletes only the configured store's copy: after a migration the other
        store's copy of the name still uses the uploads, copies and conversations."""
        name = validate_kb_name(name)
        self.require(who, "write", name)
        if store_only:
            self._forget(name)
            delete_kb(self.settings, name)  # StoreError when it is not there
            self.audit(who, "delete_kb", name, detail={"store_only": True})
            return
        self._delete_kb(name)
        self.audit(who, "delete_kb", name)

    def _delete_kb(self, name: str) -> None:
        parts = self._owned(name)
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
        self.accounts.forget_kb(name)  # a knowledge base created again under the name starts bare

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
        self._delete_kb(name)
        return True

    def documents(self, who: Principal, kb_name: str) -> list[DocumentRecord]:
        self.require(who, "read", kb_name)
        return self.kb(kb_name).documents()

    def document(self, who: Principal, kb_name: str, doc_id: str) -> DocumentRecord:
        self.require(who, "read", kb_name)
        return self._document(kb_name, doc_id)

    def _document(self, kb_name: str, doc_id: str) -> DocumentRecord:
        doc = self.kb(kb_name).document(doc_id)
        if doc is None:
            raise ServiceError(
                "not_found",
                f"no document {doc_id!r} in knowledge base {kb_name!r}",
                f"知识库 {kb_name!r} 中没有文档 {doc_id!r}",
            )
        return doc

    def document_text(self, who: Principal, kb_name: str, doc_id: str) -> str:
        """The document's text as stored, chunk by chunk without the overlaps repeated."""
        self.document(who, kb_name, doc_id)
        kb = self.kb(kb_name)
        pages: list[str] = []
        seen: set[int] = set()
        for chunk in kb.document_chunks(doc_id):
            if chunk.page_seq in seen:
                continue
            seen.add(chunk.page_seq)
            pages.append(kb.page_text(doc_id, chunk.page_seq) or "")
        return "\n\n".join(pages)

    def remove_document(self, who: Principal, kb_name: str, doc_id: str) -> None:
        """Remove a document with its stored upload and kept copy, once no other document of
        the knowledge base comes from that file (`ingest._insert.remove_documents`)."""
        self.require(who, "write", kb_name)
        doc = self._document(kb_name, doc_id)
        remove_documents(self.settings, kb_name, [doc.doc_id])
        self.audit(who, "remove_document", kb_name, doc.doc_id, detail={"title": doc.title})

    def remove_origins(self, who: Principal, kb_name: str, origins: Sequence[str]) -> list[str]:
        """Remove every document that came from `origins` (files or web pages: a source's
        purge) at once, with the kept copies and stored uploads nothing else uses; returns the
        ids removed."""
        self.require(who, "write", kb_name)
        wanted = set(origins)
        doc_ids = [d.doc_id for d in self.kb(kb_name).documents() if d.origin in wanted]
        if not doc_ids:
            return []
        removed, _ = remove_documents(self.settings, kb_name, doc_ids)
        self.audit(who, "remove_documents", kb_name, detail={"documents": removed})
        return removed

    def passage(self, who: Principal, kb_name: str, chunk_id: int) -> ChunkRecord:
        self.require(who, "read", kb_name)
        record = self.kb(kb_name).chunks([chunk_id]).get(chunk_id)
        if record is None:
            raise ServiceError(
                "not_found",
                f"no passage {chunk_id} in knowledge base {kb_name!r}",
                f"知识库 {kb_name!r} 中没有段落 {chunk_id}",
            )
        return record

    # ----- ingestion ---------------------------------------------------------------------

    def save_files(
        self, who: Principal, kb_name: str, files: Sequence[tuple[str, bytes]]
    ) -> list[SavedUpload]:
        """Save uploaded files under the data home (names sanitised, limits applied): the
        bytes are safe on disk before any slow ingestion starts. Uploading to a knowledge base
        that does not exist creates it (the right to create it is needed then)."""
        kb_name = validate_kb_name(kb_name)
        new = not kb_exists(self.settings, kb_name)
        self.require(who, "create" if new else "write", kb_name)
        self.finish_deletion(kb_name)  # a new knowledge base under a deleted one's name
        saved = save_uploads(self.settings, kb_name, files)
        if new:
            self._created(who, kb_name)
        self.audit(
            who,
            "upload",
            kb_name,
            detail={"files": [u.stored_name or u.name for u in saved if u.path is not None]},
        )
        return saved

    def ingest_saved(
        self,
        who: Principal,
        kb_name: str,
        saved: Sequence[SavedUpload],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[ImportedFile]:
        """Ingest the saved uploads; one result per upload, in order, rejected ones included.
        When `cancel` is set the files committed so far stay, the rest are reported not
        processed. Raises StoreError when the knowledge base itself cannot be written."""
        report = self.ingest_files(who, kb_name, saved, progress, cancel)  # checks write
        outcomes = {o.path: o for o in report.outcomes} if report is not None else {}
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
        self, who: Principal, kb_name: str, doc_id: str, progress: Progress | None = None
    ) -> FileOutcome:
        self.require(who, "write", kb_name)
        doc = self._document(kb_name, doc_id)
        origin = Path(doc.origin)
        if not origin.is_file():
            raise ServiceError(
                "conflict",
                f"the original file is gone ({doc.origin}); delete the document and upload it "
                "again",
                f"原文件已不存在（{doc.origin}）；请删除这篇文档后重新上传",
            )
        self.audit(who, "reingest", kb_name, doc.doc_id, detail={"title": doc.title})
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

    def search(self, who: Principal, kb_name: str, query: str, k: int | None = None) -> list[Hit]:
        self.require(who, "read", kb_name)
        return search(self.kb(kb_name), self.embedder(), query, self.settings, k=k)

    def answer(
        self,
        who: Principal,
        kb_name: str,
        question: str,
        history: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Event | Queued]:
        """`app.answer.answer()`'s events for `question`. With an LLM, the question first takes
        its place in the queue: Busy is raised at once when the queue is full (before the
        first event), and a `Queued` event comes first when it has to wait."""
        self.require(who, "read", kb_name or self.settings.default_kb)
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
        self,
        who: Principal,
        kb_name: str,
        question: str,
        history: Sequence[tuple[str, str]] = (),
    ) -> AnswerResult:
        result = None
        for event in self.answer(who, kb_name, question, history):
            if isinstance(event, Final):
                result = event.result
        assert result is not None  # answer() always ends with Final
        return result

    def status(self, who: Principal) -> dict[str, object]:
        warming = self._warmup is not None and not self._warmup.done
        if warming and self._backend is None:
            # the warm-up is starting the LLM: say so rather than wait for it
            info = BackendInfo("none", "")
            kind, label = "starting", "starting (warm-up in progress)"
        else:
            info = self.backend().info
            kind, label = info.kind, info.label_en
        embedder = self._embedder
        return {
            "backend": kind,
            "model": info.model,
            "backend_label": label,
            "embedding_model": self.settings.embedding_model,
            "query_runtime": embedder.query_runtime if embedder else "not loaded",
            "knowledge_bases": [
                {"name": k.name, "documents": k.documents, "chunks": k.chunks}
                for k in self.knowledge_bases(who)
            ],
            "llm_queue": {
                "active": self.llm_queue.active,
                "waiting": self.llm_queue.waiting,
                "max_waiting": self.llm_queue.max_waiting,
            },
            "warmup": self._warmup.snapshot() if self._warmup else {"state": "not started"},
        }

    # ----- people, grants, keys, the audit log (admins) ----------------------------------

    def people(self, who: Principal) -> list[Person]:
        self.require(who, "admin")
        return self.accounts.list()

    def _admin_act(
        self, who: Principal, action: str, target: str, kb: str | None = None, detail: object = None
    ) -> None:
        self.audit(who, action, kb, target, detail=detail)

    def create_person(self, who: Principal, name: str, password: str, role: str) -> Person:
        self.require(who, "admin")
        person = _account(lambda: self.accounts.create(name, password, role))
        self._admin_act(who, "create_person", person.name, detail={"role": person.role})
        return person

    def set_password(self, who: Principal, name: str, password: str) -> Person:
        if who.person_id is None or who.name != name:  # anybody may change their own
            self.require(who, "admin")
        person = _account(lambda: self.accounts.set_password(name, password))
        self._admin_act(who, "set_password", person.name)
        return person

    def set_role(self, who: Principal, name: str, role: str) -> Person:
        self.require(who, "admin")
        self._keeps_an_admin(name, role=role)
        person = _account(lambda: self.accounts.set_role(name, role))
        self._admin_act(who, "set_role", person.name, detail={"role": person.role})
        return person

    def set_disabled(self, who: Principal, name: str, disabled: bool = True) -> Person:
        self.require(who, "admin")
        self._keeps_an_admin(name, disabled=disabled)
        person = _account(lambda: self.accounts.set_disabled(name, disabled))
        self._admin_act(who, "disable" if disabled else "enable", person.name)
        return person

    def delete_person(self, who: Principal, name: str) -> Person:
        self.require(who, "admin")
        self._keeps_an_admin(name, deleted=True)
        person = _account(lambda: self.accounts.delete(name))
        self._admin_act(who, "delete_person", person.name)
        return person

    def grant(self, who: Principal, name: str, kb: str, access: str) -> Person:
        self.require(who, "admin")
        person = _account(lambda: self.accounts.grant(name, kb, access))
        self._admin_act(who, "grant", person.name, kb, {"access": access})
        return person

    def revoke(self, who: Principal, name: str, kb: str) -> Person:
        self.require(who, "admin")
        person = _account(lambda: self.accounts.revoke(name, kb))
        self._admin_act(who, "revoke", person.name, kb)
        return person

    def api_keys(self, who: Principal) -> list[ApiKey]:
        self.require(who, "admin")
        return KeyStore(self.settings).keys()

    def create_key(
        self,
        who: Principal,
        name: str,
        kbs: list[str] | None = None,
        read_only: bool = False,
        owner: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A key for `owner` (a person's name; None: a key without owner, as before accounts
        existed). Once accounts exist every new key needs an owner: an ownerless key would
        bypass every grant."""
        self.require(who, "admin")
        owner_id = None
        if owner is not None:
            owner_id = _account(lambda: self.accounts.require(owner)).id
        elif self.accounts.exist():
            raise ServiceError(
                "bad_request",
                "accounts exist: a key needs an owner (--owner NAME); it can only narrow that "
                "person's rights",
                "已有用户账号：密钥需要指定所有者（--owner 用户名），密钥只能收窄其权限",
            )
        key, token = KeyStore(self.settings).create(name, kbs, read_only, owner_id)
        self._admin_act(
            who, "create_key", key.name, detail={"owner": owner, "scope": key.scope, "id": key.id}
        )
        return key, token

    def revoke_key(self, who: Principal, selector: str) -> list[ApiKey]:
        self.require(who, "admin")
        revoked = KeyStore(self.settings).revoke(selector)
        for key in revoked:
            self._admin_act(who, "revoke_key", key.name, detail={"id": key.id})
        return revoked

    def audit_entries(
        self,
        who: Principal,
        limit: int | None = None,
        actor: str | None = None,
        kb: str | None = None,
    ) -> list[AuditEntry]:
        self.require(who, "admin")
        return self.audit_log.entries(limit, actor, kb)


# Methods that take a principal to record or check it, not to act for it.
UNCHECKED = frozenset({"require", "readable", "audit"})
# The need of every public method that takes a principal; tests/app/test_access.py fails when a
# method is added without one here.
RULES: dict[str, Need | None] = {
    # None: the method filters what it returns to what `who` may read
    "kb_names": None,
    "knowledge_bases": None,
    "status": None,
    "kb_info": "read",
    "documents": "read",
    "document": "read",
    "document_text": "read",
    "passage": "read",
    "search": "read",
    "answer": "read",
    "ask": "read",
    "create_kb": "create",
    "save_files": "write",  # or "create" when the knowledge base is new
    "ingest_saved": "write",
    "reingest_document": "write",
    "remove_document": "write",
    "remove_origins": "write",
    "delete_kb": "write",
    "owned": "write",
    "people": "admin",
    "create_person": "admin",
    "set_password": "admin",  # or the person themselves
    "set_role": "admin",
    "set_disabled": "admin",
    "delete_person": "admin",
    "grant": "admin",
    "revoke": "admin",
    "api_keys": "admin",
    "create_key": "admin",
    "revoke_key": "admin",
    "audit_entries": "admin",
    # conversations, feedback and evaluation cases (app/_authored.py): read on the knowledge
    # base, and the author's own (OWNERSHIP)
    **dict.fromkeys(OWNERSHIP, "read"),
    # what the web app's pages do besides (app/_service_library.py)
    **LIBRARY_RULES,
    # files, web pages, watched folders, sources (app/_ingesting.py)
    **INGESTING,
    # the knowledge-base page's sources, folders, upload jobs and files (app/_kb_records.py)
    **KB_RECORDS,
    # the audit log paged, filtered and exported (app/_administering.py)
    **ADMINISTERING,
}


_T = TypeVar("_T")


def _account(act: Callable[[], _T]) -> _T:
    try:
        return act()
    except AccountError as exc:
        raise ServiceError(exc.kind, exc.en, exc.zh) from exc


def _present(part: Owned) -> bool:
    try:
        return part.present()
    except (StoreError, OSError):
        return True  # cannot tell: say it may be left


__all__ = [
    "OWNERSHIP",
    "RULES",
    "UNCHECKED",
    "Busy",
    "ConversationNotFound",
    "DeletionIncomplete",
    "Forbidden",
    "ImportedFile",
    "KbInfo",
    "LlmQueue",
    "OpenedConversation",
    "Owned",
    "Queued",
    "Service",
    "ServiceError",
]
