"""The one sync runner: a source (folder, page or site) brought in step with its knowledge base.

A web source's sync re-fetches with conditional requests (what the last sync learnt of each page),
re-ingests only what changed (content hash, as files are), and removes a page only after it has
answered 404 or 410 `SOURCE_REMOVE_AFTER` syncs in a row: a site that is down, slow or
misconfigured for a day does not empty the knowledge base. A page the crawl no longer reaches is
asked for directly, so a page dropped from the navigation but still served stays. When the start
page itself cannot be fetched (the site is down) the sync stops there and changes nothing.
A folder source is `ingest.watch.sync` (new and changed files ingested, deleted ones removed);
a folder that is not there (a drive unmounted) changes nothing either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from app.sources.model import (
    KEPT_ITEMS,
    PageState,
    Schedule,
    Source,
    SourceError,
    SourceKind,
    SourceStore,
    SyncItem,
    SyncRecord,
    now_iso,
    source_id,
)
from ingest import Embedder, FileOutcome, IngestReport, Progress, Rejection, release_originals
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from ingest.watch import sync as sync_folder
from ingest.web import Fetcher, WebReport, fetcher_of, ingest_web, is_web_url, limits_of
from ingest.web import normalize_url as normalize

_GONE_CODES = frozenset({"http_gone"})


def new_source(
    kb: str,
    location: str,
    *,
    crawl: bool = False,
    schedule: Schedule | None = None,
    max_depth: int | None = None,
    max_pages: int | None = None,
) -> Source:
    """A source for `location` (a URL, or a folder's path), checked; not stored yet."""
    kind: SourceKind
    if is_web_url(location):
        kind = "site" if crawl else "page"
        where = normalize(location)
    else:
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = path.resolve()
        if not path.is_dir():
            raise SourceError(
                f"not a web address (http/https) nor a folder: {location}",
                f"既不是网址(http/https)也不是文件夹:{location}",
            )
        kind, where = "folder", str(path.resolve())
    if schedule is not None and schedule.watch and kind != "folder":
        raise SourceError(
            f"only a folder can be watched for changes, not {location}",
            f"只有文件夹可以监视变化,网页请选择定时同步:{location}",
        )
    return Source(
        id=source_id(kb, where),
        kb=kb,
        kind=kind,
        location=where,
        schedule=schedule or Schedule(),
        created_at=now_iso(),
        max_depth=max_depth,
        max_pages=max_pages,
    )


def sync_source(
    settings: Settings,
    store: SourceStore,
    source: Source,
    *,
    trigger: str = "manual",
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    fetcher: Fetcher | None = None,
    only_if_due: bool = False,
) -> SyncRecord:
    """Sync one source now and record it in its history. Raises SourceError when a sync of it
    is already running (on this server or another over the same state database), when it was
    removed, or, `only_if_due`, when it is no longer due (another server synced it meanwhile);
    StoreError as ingestion does."""
    with store.syncing(source) as current:  # the source as the last sync left it
        if only_if_due and not current.due():
            raise SourceError(
                f"{source.location} is not due any more (synced meanwhile)",
                f"{source.location} 已经同步过,暂不需要同步",
            )
        started, clock = now_iso(), time.perf_counter()
        if current.kind == "folder":
            report, pages, error = _sync_folder(settings, current, embedder, progress, cancel)
        else:
            report, pages, error = _sync_web(settings, current, embedder, progress, cancel, fetcher)
        record = record_of(report, started, time.perf_counter() - clock, trigger, error)
        store.record(current, pages, record)
        return record


def due_sources(store: SourceStore, now: datetime | None = None) -> list[Source]:
    now = now or datetime.now(UTC)
    return [s for s in store.list() if s.due(now)]


def _sync_folder(
    settings: Settings,
    source: Source,
    embedder: Embedder | None,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> tuple[IngestReport, None, Rejection | None]:
    folder = Path(source.location)
    if not folder.is_dir():
        detail = "the folder is not there (moved, renamed or its drive not mounted)"
        return IngestReport(), None, Rejection("unreadable", detail=detail)
    report = sync_folder(settings, source.kb, [folder], [folder], embedder, progress, cancel)
    return report, None, None


def _sync_web(
    settings: Settings,
    source: Source,
    embedder: Embedder | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    fetcher: Fetcher | None,
) -> tuple[WebReport, dict[str, PageState], Rejection | None]:
    known = {url: state.known() for url, state in source.pages.items()}
    limits = limits_of(
        settings, source.kind == "site", max_depth=source.max_depth, max_pages=source.max_pages
    )
    own = fetcher is None
    fetcher = fetcher or fetcher_of(settings)
    try:
        report = ingest_web(
            settings, [source.location], source.kb, limits=limits, fetcher=fetcher,
            known=known, embedder=embedder, progress=progress, cancel=cancel,
        )  # fmt: skip
        start = next((o for o in report.outcomes if o.path == source.location), None)
        down = (
            start is not None
            and start.status == "failed"
            and start.reason is not None
            and start.reason.code not in _GONE_CODES
        )
        if down or report.cancelled:
            # the site cannot be read now: what it holds is left as it is
            assert start is not None or report.cancelled
            error = start.reason if down and start is not None else None
            return report, _carried(source, report, {}), error
        answered = set(report.known) | set(report.gone)
        missing = [u for u in source.pages if u not in answered]
        if missing:
            again = ingest_web(
                settings, missing, source.kb, limits=replace(limits, follow=False),
                fetcher=fetcher, known=known, embedder=embedder, progress=progress,
                cancel=cancel,
            )  # fmt: skip
            listed = {o.path for o in report.outcomes}
            report.outcomes += [o for o in again.outcomes if o.path not in listed]
            report.known.update(again.known)
            report.gone.update(again.gone)
            report.embedded_chunks += again.embedded_chunks
            report.cancelled = again.cancelled
    finally:
        if own:
            fetcher.close()
    removed = _confirm_gone(settings, source, report)
    return report, _carried(source, report, removed), None


def _confirm_gone(settings: Settings, source: Source, report: WebReport) -> dict[str, int]:
    """Pages the source holds that answered 404/410: removed once it is the threshold's time in
    a row, else counted (their outcome says how many more syncs). Returns those removed."""
    threshold = max(1, settings.source_remove_after)
    remove: dict[str, int] = {}
    notes: dict[str, FileOutcome] = {}
    for url, status in report.gone.items():
        state = source.pages.get(url)
        if state is None:
            continue  # a broken link to a page never held: its failure says so
        count = state.gone + 1
        if count >= threshold:
            remove[url] = count
            reason = Rejection("page_gone", status=status, count=count)
            notes[url] = FileOutcome(url, "removed", reason=reason)
        else:
            reason = Rejection("gone_pending", status=status, left=threshold - count)
            notes[url] = FileOutcome(url, "failed", reason=reason)
    if remove:
        kb = KnowledgeBase.open(settings, source.kb)
        try:
            before = {o: sha for o, sha, _ in kb.source_records()}
            with kb.writer(None) as writer:
                writer.remove_origins(list(remove))
                release_originals(settings, kb, [(u, before[u]) for u in remove if u in before])
        finally:
            kb.close()
    report.outcomes = [notes.pop(o.path, o) for o in report.outcomes]
    report.outcomes += list(notes.values())
    return remove


def _carried(source: Source, report: WebReport, removed: dict[str, int]) -> dict[str, PageState]:
    """The pages' state after a sync: fresh for those answered, a gone count for those gone,
    the old one for those that failed otherwise (an outage counts for nothing)."""
    pages: dict[str, PageState] = {}
    for url, state in source.pages.items():
        if url in removed:
            continue
        if url in report.gone:
            pages[url] = replace(state, gone=state.gone + 1, gone_status=report.gone[url])
        else:
            pages[url] = state
    for url, known in report.known.items():
        pages[url] = PageState.of(known)
    return pages


def record_of(
    report: IngestReport,
    started: str,
    seconds: float,
    trigger: str,
    error: Rejection | None,
) -> SyncRecord:
    """What a sync's report leaves in its source's history."""
    totals = report.totals()
    order = {"failed": 0, "removed": 1, "updated": 2, "added": 3}
    listed = sorted(
        (o for o in report.outcomes if o.status != "skipped"), key=lambda o: order[o.status]
    )
    items = tuple(SyncItem(o.path, o.status, o.reason_en, o.reason_zh) for o in listed)
    return SyncRecord(
        started_at=started,
        seconds=round(seconds, 3),
        trigger=trigger,
        added=totals["added"],
        updated=totals["updated"],
        removed=totals["removed"],
        failed=totals["failed"],
        skipped=totals["skipped"],
        items=items[:KEPT_ITEMS],
        error_en=error.en if error else ("stopped before the end" if report.cancelled else ""),
        error_zh=error.zh if error else ("同步被中止" if report.cancelled else ""),
    )


def sync_all(
    settings: Settings,
    store: SourceStore,
    sources: Sequence[Source],
    *,
    trigger: str = "manual",
    embedder: Embedder | None = None,
) -> list[tuple[Source, SyncRecord | SourceError]]:
    """Sync several sources one after the other; a source already syncing elsewhere is
    reported, not waited for."""
    out: list[tuple[Source, SyncRecord | SourceError]] = []
    for source in sources:
        try:
            out.append(
                (source, sync_source(settings, store, source, trigger=trigger, embedder=embedder))
            )
        except SourceError as exc:
            out.append((source, exc))
    return out
