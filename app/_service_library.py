"""The service's methods for what the web app's pages do besides what the API does: answering
with the page's own model choice, the retrieval inspector, evaluation runs, the source viewer,
uploads in a background job and the knowledge-base page's bookkeeping (`Service` inherits them;
kept here so that `app/service.py` stays the API's). Like every service method, each takes the
person acting (`who`) first and checks their right (`LIBRARY_RULES`) before it reads or writes;
writes go to the audit log.

`OpenKbs` is the one instance per knowledge base that the pages of a web-app process share (with
its warm-up, `app._background`): loading an index takes seconds, and a page run makes a service
of its own settings every time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app._evalset import EvalRun, run_cases
from app._inspect import Inspection, inspect
from app._llm import ResolvedBackend
from app._source import PageText, page_text, source_file
from app.access import Need, Principal
from app.answer import Event, answer
from ingest import (
    Embedder,
    IngestReport,
    Progress,
    SavedUpload,
    ingest_paths,
    originals_dir,
    originals_in_database,
    sha256_file,
    uploads_dir,
)
from ingest.load.base import PageLayout
from ingest.settings import Settings
from ingest.store import ChunkRecord, KnowledgeBase, StoreError, kb_exists

# The need of each method here (merged into `app.service.RULES`); "write" for `check_change`
# and `ensure_kb` is "create" when the knowledge base does not exist yet.
LIBRARY_RULES: dict[str, Need] = {
    "answer_with": "read",
    "inspect_retrieval": "read",
    "run_evaluation": "read",
    "document_chunks": "read",
    "excluded_chunks": "read",
    "exclude_chunk": "write",
    "page_layout": "read",
    "page_text": "read",
    "source_file": "read",
    "storage": "read",
    "upload_states": "read",
    "ingest_files": "write",
    "check_change": "write",
    "ensure_kb": "write",
}

UploadState = Literal["committed", "saved", "gone"]


@dataclass(frozen=True)
class KbStorage:
    """Where a knowledge base's files are kept, for the page to say so."""

    uploads: Path
    originals: Path
    originals_in_database: bool
    keep_originals: bool


class OpenKbs:
    """One shared `KnowledgeBase` instance per name (thread-safe: it re-reads its database on
    every call). One deleted and created again (say by the CLI) has another identity: the
    instance follows it, in either store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kbs: dict[str, tuple[KnowledgeBase, str]] = {}

    def get(self, settings: Settings, name: str) -> KnowledgeBase:
        """StoreError when it does not exist."""
        with self._lock:
            held = self._kbs.get(name)
            if held is not None:
                try:
                    if held[0].identity() == held[1]:
                        return held[0]
                except (OSError, StoreError):
                    pass  # deleted meanwhile
                # not closed here: a request may still be reading it (its connection closes
                # when the last reference goes)
                self._kbs.pop(name)
            kb = KnowledgeBase.open(settings, name)
            self._kbs[name] = (kb, kb.identity())
            return kb

    def forget(self, name: str) -> None:
        with self._lock:
            self._kbs.pop(name, None)

    def close(self) -> None:
        with self._lock:
            for kb, _ in self._kbs.values():
                kb.close()
            self._kbs.clear()


class LibraryMethods:
    # provided by `app.service.Service`
    settings: Settings
    require: Callable[..., None]
    audit: Callable[..., None]
    kb: Callable[..., KnowledgeBase]
    embedder: Callable[[], Embedder]
    finish_deletion: Callable[[str], bool]
    _created: Callable[[Principal, str], None]

    # ----- answering, inspecting, evaluating (read) ---------------------------------------

    def answer_with(
        self,
        who: Principal,
        kb_name: str,
        question: str,
        history: Sequence[tuple[str, str]],
        backend: ResolvedBackend,
    ) -> Iterator[Event]:
        """`app.answer.answer()`'s events with the caller's backend (the web app's choice in
        its sidebar) and this service's settings; the web app orders its questions itself."""
        self.require(who, "read", kb_name)
        kb, embedder = self.kb(kb_name), self.embedder()
        return answer(question, history, kb, self.settings, embedder, backend)

    def inspect_retrieval(self, who: Principal, kb_name: str, question: str) -> Inspection:
        self.require(who, "read", kb_name)
        return inspect(question, self.kb(kb_name), self.embedder(), self.settings)

    def run_evaluation(
        self,
        who: Principal,
        kb_name: str,
        backend: ResolvedBackend,
        on_step: Callable[[int, int, str], None] = lambda done, total, question: None,
        qids: Collection[str] | None = None,
    ) -> EvalRun:
        """Run the evaluation cases `qids` (the caller lists their own: `evaluation_cases`)."""
        self.require(who, "read", kb_name)
        return run_cases(self.settings, self.kb(kb_name), self.embedder(), backend, on_step, qids)

    # ----- passages and originals (read) ----------------------------------------------------

    def document_chunks(self, who: Principal, kb_name: str, doc_id: str) -> list[ChunkRecord]:
        self.require(who, "read", kb_name)
        return self.kb(kb_name).document_chunks(doc_id)

    def excluded_chunks(self, who: Principal, kb_name: str) -> set[str]:
        self.require(who, "read", kb_name)
        return self.kb(kb_name).excluded_keys()

    def exclude_chunk(self, who: Principal, kb_name: str, chunk_key: str, excluded: bool) -> None:
        """Keep a passage out of retrieval (or let it back in)."""
        self.require(who, "write", kb_name)
        self.kb(kb_name).set_excluded(chunk_key, excluded)
        self.audit(who, "exclude_chunk" if excluded else "include_chunk", kb_name, chunk_key)

    def page_layout(
        self, who: Principal, kb_name: str, doc_id: str, page_seq: int
    ) -> PageLayout | None:
        self.require(who, "read", kb_name)
        return self.kb(kb_name).page_layout(doc_id, page_seq)

    def page_text(
        self, who: Principal, kb_name: str, doc_id: str, page_seq: int, start: int, end: int
    ) -> PageText:
        self.require(who, "read", kb_name)
        return page_text(self.kb(kb_name), doc_id, page_seq, start, end)

    def source_file(self, who: Principal, kb_name: str, doc_id: str) -> Path | None:
        """The document's original file (`app._source.source_file`), None when it is gone or
        the document is."""
        self.require(who, "read", kb_name)
        kb = self.kb(kb_name)
        doc = kb.document(doc_id)
        return source_file(self.settings, kb, doc) if doc is not None else None

    def storage(self, who: Principal, kb_name: str) -> KbStorage:
        self.require(who, "read", kb_name)
        return KbStorage(
            uploads_dir(self.settings, kb_name).resolve(),
            originals_dir(self.settings, kb_name).resolve(),
            originals_in_database(self.settings),
            self.settings.keep_originals,
        )

    # ----- uploads and creating ---------------------------------------------------------------

    def upload_states(
        self, who: Principal, kb_name: str, stored_names: Sequence[str]
    ) -> list[tuple[UploadState, Path]]:
        """What became of the files an upload saved (by the names they were stored as):
        committed to the knowledge base, saved and not committed, or gone."""
        self.require(who, "read", kb_name)
        folder = uploads_dir(self.settings, kb_name).resolve()
        kb = self.kb(kb_name) if kb_exists(self.settings, kb_name) else None
        states: list[tuple[UploadState, Path]] = []
        for stored in stored_names:
            path = folder / stored
            held = kb.source_sha256(str(path)) if kb is not None else None
            if path.is_file():
                same = held is not None and held == sha256_file(path)
                states.append(("committed" if same else "saved", path))
            else:
                states.append(("committed" if held is not None else "gone", path))
        return states

    def ingest_files(
        self,
        who: Principal,
        kb_name: str,
        saved: Sequence[SavedUpload],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> IngestReport | None:
        """Ingest saved uploads (`save_files`) and return the run's report (None when none
        was saved); `ingest_saved` is the same as one result per upload."""
        self.require(who, "write", kb_name)
        paths = list(dict.fromkeys(s.path for s in saved if s.path is not None))
        if not paths:
            return None
        return ingest_paths(
            self.settings,
            paths,
            kb_name,
            progress=progress,
            embedder=self.embedder(),
            cancel=cancel,
        )

    def check_change(self, who: Principal, kb_name: str) -> bool:
        """Raise Forbidden unless `who` may write `kb_name`, or create it when it does not
        exist; whether it exists."""
        exists = kb_exists(self.settings, kb_name)
        self.require(who, "write" if exists else "create", kb_name)
        return exists

    def ensure_kb(self, who: Principal, kb_name: str) -> bool:
        """The knowledge base, created (empty) when it does not exist yet, so that a page or
        a watcher never opens it half-made; whether it was created."""
        if self.check_change(who, kb_name):
            return False
        self.finish_deletion(kb_name)  # what a deletion of the name left goes first
        KnowledgeBase.open(self.settings, kb_name, create=True).close()
        self._created(who, kb_name)
        return True


__all__ = ["LIBRARY_RULES", "KbStorage", "LibraryMethods", "OpenKbs", "UploadState"]
