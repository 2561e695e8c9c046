"""The service's methods for what the knowledge-base page keeps beside a knowledge base: its
web sources and watched folders (listed, added, removed), its upload jobs (listed, closed), the
folder of its evaluation set, and whether the original files of its documents are still there.
`Service` inherits them; kept here so that `app/service.py` stays small.

Each checks `who` first: reading needs read on the knowledge base; adding a source or binding a
folder needs write (create when the knowledge base does not exist yet, which is then created
and audited as `create_kb`), removing one or closing a job needs write. Adding, binding,
removing and unbinding are audited (`add_source`, `bind_folder`, `remove_source`,
`unbind_folder`); closing a job's panel is not (it changes nothing but the panel).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app._evalset import evalset_dir
from app._service_error import ServiceError
from app._watched import BindingError, Watchers, bind_folder, unbind_folder
from app.access import Need, Principal
from app.sources.model import Schedule, Source, SourceError, SourceStore
from app.sources.sync import new_source
from app.state.jobs import JobRecord, fail_lost_jobs, get_job, heartbeat, list_jobs, save_job
from ingest.settings import Settings
from ingest.store import KnowledgeBase, kb_exists, validate_kb_name

# The need of each method here, merged into `app.service.RULES`.
KB_RECORDS: dict[str, Need] = {
    "sources": "read",
    "add_source": "write",  # or "create" when the knowledge base is new
    "remove_source": "write",
    "bind_folder": "write",  # or "create"
    "unbind_folder": "write",
    "upload_jobs": "read",
    "close_job": "write",
    "evalset_folder": "read",
    "missing_originals": "read",
}


def _invalid(exc: SourceError | BindingError) -> ServiceError:
    en = exc.en if isinstance(exc, SourceError) else f"the folder cannot be bound: {exc.zh}"
    return ServiceError("bad_request", en, exc.zh)


class KbRecords:
    # provided by `app.service.Service`
    settings: Settings
    watchers: Watchers | None
    require: Callable[..., None]
    audit: Callable[..., None]
    kb: Callable[..., KnowledgeBase]
    check_change: Callable[[Principal, str], bool]
    ensure_kb: Callable[[Principal, str], bool]
    finish_deletion: Callable[[str], bool]

    # ----- sources and watched folders ---------------------------------------------------------

    def sources(self, who: Principal, kb_name: str) -> list[Source]:
        """The knowledge base's sources, watched folders included."""
        self.require(who, "read", kb_name)
        return SourceStore(self.settings).list(kb_name)

    def add_source(
        self, who: Principal, kb_name: str, url: str, *, crawl: bool, schedule: Schedule
    ) -> Source:
        """A web page or site as a source of the knowledge base (created empty when new);
        its first sync is the caller's to start (`sync_source`). Audited as `add_source`."""
        self.check_change(who, kb_name)
        try:
            source = SourceStore(self.settings).add(
                new_source(kb_name, url, crawl=crawl, schedule=schedule)
            )
        except SourceError as exc:
            raise _invalid(exc) from exc
        # created here, not in the sync: the page must never open it half-made
        self.ensure_kb(who, kb_name)
        detail = {"source": source.id, "kind": source.kind, "schedule": source.schedule.describe()}
        self.audit(who, "add_source", kb_name, source.location, detail=detail)
        return source

    def remove_source(self, who: Principal, kb_name: str, source_id: str) -> Source:
        """Stop syncing a source; what it brought in stays. Audited as `remove_source`."""
        self.require(who, "write", kb_name)
        store = SourceStore(self.settings)
        try:
            source = store.get(source_id, kb_name)
        except SourceError as exc:
            raise ServiceError("not_found", exc.en, exc.zh) from exc
        if store.remove(source):
            detail = {"source": source.id}
            self.audit(who, "remove_source", kb_name, source.location, detail=detail)
        return source

    def bind_folder(self, who: Principal, kb_name: str, raw: str) -> Path:
        """Bind a folder of this machine (a watched folder source); the knowledge base is
        created empty when new. Audited as `bind_folder`; the watcher is the caller's to
        start."""
        self.check_change(who, kb_name)
        # a deletion of this name left unfinished goes first (its old bindings with it)
        self.finish_deletion(kb_name)
        try:
            folder = bind_folder(self.settings, kb_name, raw)
        except BindingError as exc:
            raise _invalid(exc) from exc
        self.ensure_kb(who, kb_name)
        self.audit(who, "bind_folder", kb_name, str(folder))
        return folder

    def unbind_folder(self, who: Principal, kb_name: str, folder: Path) -> bool:
        """Forget a binding and stop its watcher here (the documents stay); whether it was
        bound. Audited as `unbind_folder` when it was."""
        self.require(who, "write", kb_name)
        bound = unbind_folder(self.settings, kb_name, folder)
        if self.watchers is not None:
            self.watchers.stop(kb_name, folder)
        if bound:
            self.audit(who, "unbind_folder", kb_name, str(folder))
        return bound

    # ----- upload jobs -----------------------------------------------------------------------

    def upload_jobs(self, who: Principal, kb_name: str, limit: int = 20) -> list[JobRecord]:
        """The knowledge base's newest upload jobs (lost ones marked failed first)."""
        self.require(who, "read", kb_name)
        engine = heartbeat(self.settings).engine  # its sweep marks lost jobs failed
        fail_lost_jobs(engine, self.settings.job_stale_s)
        return [j for j in list_jobs(engine, kb_name, limit=limit) if j.kind == "upload"]

    def close_job(
        self, who: Principal, kb_name: str, job_id: str, mark: str, value: object = True
    ) -> JobRecord:
        """Keep on a job of the knowledge base that its panel is done with (closed, or
        resumed by another job)."""
        self.require(who, "write", kb_name)
        engine = heartbeat(self.settings).engine
        record = get_job(engine, job_id, self.settings.job_stale_s)
        if record is None or record.kb != kb_name:
            raise ServiceError("not_found", f"no job {job_id!r}", f"没有找到任务 {job_id}")
        record.extra = {**(record.extra or {}), mark: value}
        save_job(engine, record)
        return record

    # ----- files beside the knowledge base ---------------------------------------------------

    def evalset_folder(self, who: Principal, kb_name: str) -> Path:
        """Where the knowledge base's evaluation set is exported (`zhiku eval` reads it)."""
        self.require(who, "read", kb_name)
        return evalset_dir(self.settings, kb_name)

    def missing_originals(self, who: Principal, kb_name: str) -> set[str]:
        """The ids of the documents whose original file is gone from this machine (a web
        page's is never looked up here: its source's sync keeps it in step)."""
        self.require(who, "read", validate_kb_name(kb_name))
        if not kb_exists(self.settings, kb_name):
            return set()
        return {
            doc.doc_id
            for doc in self.kb(kb_name).documents()
            if not doc.origin.startswith(("http://", "https://"))
            and not Path(doc.origin.split("#", 1)[0]).exists()
        }


__all__ = ["KB_RECORDS", "KbRecords"]
