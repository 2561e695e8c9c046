"""The service's methods that change a knowledge base from what the machine itself reaches:
files and folders (`zhiku ingest`, `zhiku watch`), web pages (`zhiku ingest URL`), documents
removed by id, path or name (`zhiku kb remove`), and the syncs of sources (the CLI, the API and
the scheduler). `Service` inherits them; kept here so that `app/service.py` stays about the
knowledge bases as the API and the web app see them.

Each checks `who` first (write on the knowledge base; create when it does not exist yet, which
is then created and audited as `create_kb` is) and writes one audit row: what was asked (the
paths, addresses or selectors), what changed (counts and the first changed files) and the
outcome (`failed` when a file failed or the run itself did). A sync is audited when it changed
something, with who started it: a person, the local user, or the scheduler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from app.access import Need, Principal
from app.sources.model import Source, SourceStore, SyncRecord
from app.sources.sync import sync_source
from ingest import Embedder, EmbeddingError, IngestReport, Progress, ingest_paths, remove_documents
from ingest.settings import Settings
from ingest.store import StoreError, repair_kb, validate_kb_name
from ingest.watch import watch
from ingest.web import CrawlLimits, Fetcher, WebReport, ingest_web

# The need of each method here, merged into `app.service.RULES`.
INGESTING: dict[str, Need] = {
    "ingest_local": "write",  # or "create" when the knowledge base is new
    "ingest_pages": "write",  # or "create"
    "watch_folders": "write",  # or "create"
    "remove_matching": "write",
    "repair_kb": "write",
    "sync_source": "write",
}
LISTED = 50  # changed files named in an audit row; the counts cover the rest

# The background scheduler acts for the data home itself: it syncs what someone with write on the
# knowledge base scheduled, and its audit rows say "scheduler".
SCHEDULER = Principal("scheduler", "admin", origin="schedule")


def changes(report: IngestReport) -> dict[str, object]:
    """An ingestion's counts and its first changed (or failed) files, for an audit row."""
    totals = report.totals()
    listed = [f"{o.status} {o.path}" for o in report.outcomes if o.status != "skipped"]
    counts = {k: totals[k] for k in ("added", "updated", "removed", "failed", "skipped")}
    return {**counts, "changed": listed[:LISTED], "cancelled": report.cancelled}


def outcome_of(report: IngestReport) -> str:
    return "failed" if any(o.status == "failed" for o in report.outcomes) else "ok"


def changed_anything(report: IngestReport) -> bool:
    return any(o.status in ("added", "updated", "removed") for o in report.outcomes)


class Ingesting:
    # provided by `app.service.Service`
    settings: Settings
    _embedder: Embedder | None
    require: Callable[..., None]
    audit: Callable[..., None]
    ensure_kb: Callable[[Principal, str], bool]
    _forget: Callable[[str], None]

    def _writable(self, who: Principal, kb_name: str | None) -> str:
        """The knowledge base's name once `who` may write it; one that does not exist yet is
        created (the right to create it is needed then) and audited (`ensure_kb`)."""
        name = validate_kb_name(kb_name or self.settings.default_kb)
        self.ensure_kb(who, name)
        return name

    def _ingested(
        self,
        who: Principal,
        action: str,
        kb_name: str,
        asked: dict[str, object],
        run: Callable[[], IngestReport],
    ) -> IngestReport:
        try:
            report = run()
        except (StoreError, EmbeddingError, OSError) as exc:
            self.audit(who, action, kb_name, outcome="failed", detail={**asked, "error": str(exc)})
            raise
        self.audit(
            who, action, kb_name, outcome=outcome_of(report), detail={**asked, **changes(report)}
        )
        return report

    def ingest_local(
        self,
        who: Principal,
        kb_name: str | None,
        paths: Sequence[Path],
        *,
        prune: bool = False,
        reindex: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> IngestReport:
        """`ingest.ingest_paths` for `who`: files and folders (unchanged files skipped),
        audited as `ingest`."""
        name = self._writable(who, kb_name)
        asked: dict[str, object] = {"paths": [str(p) for p in paths]}
        if prune or reindex:
            asked.update(prune=prune, reindex=reindex)
        return self._ingested(
            who,
            "ingest",
            name,
            asked,
            # the embedder the service holds, if any: a run that skips every file loads none
            lambda: ingest_paths(
                self.settings,
                paths,
                name,
                prune=prune,
                reindex=reindex,
                progress=progress,
                embedder=self._embedder,
                cancel=cancel,
            ),
        )

    def ingest_pages(
        self,
        who: Principal,
        kb_name: str | None,
        urls: Sequence[str],
        *,
        limits: CrawlLimits | None = None,
        fetcher: Fetcher | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> WebReport:
        """`ingest.web.ingest_web` for `who`: pages or sites, audited as `ingest`."""
        name = self._writable(who, kb_name)
        asked: dict[str, object] = {"urls": list(urls)}
        if limits is not None and limits.follow:
            asked["crawl"] = True
        report = self._ingested(
            who,
            "ingest",
            name,
            asked,
            lambda: ingest_web(
                self.settings,
                urls,
                name,
                limits=limits,
                fetcher=fetcher,
                progress=progress,
                embedder=self._embedder,
                cancel=cancel,
            ),
        )
        assert isinstance(report, WebReport)
        return report

    def watch_folders(
        self,
        who: Principal,
        kb_name: str | None,
        paths: Sequence[Path],
        *,
        quiet_s: float,
        on_report: Callable[[IngestReport], None],
        stop: threading.Event | None = None,
    ) -> None:
        """`ingest.watch.watch` for `who` until `stop`: every sync that changes something (or
        fails a file) is audited as `watch`, before `on_report` sees it."""
        name = self._writable(who, kb_name)
        folders = [str(p) for p in paths]

        def report(found: IngestReport) -> None:
            if changed_anything(found) or outcome_of(found) == "failed":
                detail = {"paths": folders, **changes(found)}
                self.audit(who, "watch", name, outcome=outcome_of(found), detail=detail)
            on_report(found)

        watch(
            self.settings, paths, name, quiet_s=quiet_s, on_report=report, stop=stop,
            embedder=self._embedder,
        )  # fmt: skip

    def remove_matching(
        self, who: Principal, kb_name: str | None, selectors: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        """Remove the documents chosen by doc id, path or file name (`ingest.remove_documents`);
        returns (removed ids, selectors that matched nothing). Audited as `remove_documents`."""
        name = validate_kb_name(kb_name or self.settings.default_kb)
        self.require(who, "write", name)
        removed, unmatched = remove_documents(self.settings, name, selectors)
        detail = {"selectors": list(selectors), "documents": removed, "unmatched": unmatched}
        self.audit(who, "remove_documents", name, detail=detail)
        return removed, unmatched

    def repair_kb(self, who: Principal, kb_name: str | None) -> list[str]:
        """`ingest.store.repair_kb` for `who` (`zhiku kb check --repair`): a damaged database
        salvaged, what is derived rebuilt; what was repaired. Audited as `repair_kb` when
        something was."""
        name = validate_kb_name(kb_name or self.settings.default_kb)
        self.require(who, "write", name)
        repaired = repair_kb(self.settings, name)
        self._forget(name)  # a salvaged one is another database: the shared instance reopens
        if repaired:
            self.audit(who, "repair_kb", name, detail={"repaired": repaired[:LISTED]})
        return repaired

    def sync_source(
        self,
        who: Principal,
        source: Source,
        *,
        trigger: str = "manual",
        embedder: Embedder | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        fetcher: Fetcher | None = None,
        only_if_due: bool = False,
    ) -> SyncRecord:
        """`app.sources.sync.sync_source` for `who` (write on the source's knowledge base); a
        sync that added, updated or removed something is audited as `sync`."""
        self.require(who, "write", source.kb)
        record = sync_source(
            self.settings, SourceStore(self.settings), source, trigger=trigger,
            embedder=embedder or self._embedder, progress=progress, cancel=cancel,
            fetcher=fetcher, only_if_due=only_if_due,
        )  # fmt: skip
        if record.added or record.updated or record.removed:
            detail = {
                "source": source.id,
                "trigger": trigger,
                "added": record.added,
                "updated": record.updated,
                "removed": record.removed,
                "failed": record.failed,
                "changed": [f"{i.status} {i.url}" for i in record.items][:LISTED],
            }
            outcome = "failed" if record.error_en or record.failed else "ok"
            self.audit(who, "sync", source.kb, source.location, outcome=outcome, detail=detail)
        return record


__all__ = ["INGESTING", "SCHEDULER", "Ingesting", "changed_anything", "changes", "outcome_of"]
