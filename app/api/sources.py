"""Web sources over HTTP: `/v1/knowledge_bases/{kb}/sources` — add a page or a site (with a
schedule), list them with their last sync, sync one now, read its history, remove it.

Only web addresses are accepted here: a folder source would let an API caller make the server
read any folder it can see; folders are bound where the machine's user is (the CLI, the app).
Syncs run in the background on the service's scheduler; the answer to an add or a sync is 202
with the source, and its history shows the sync once it is done.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from app.api.auth import Reader, Writer
from app.api.errors import ApiError
from app.sources import Schedule, Source, SourceError, SourceStore, SyncRecord, new_source
from app.sources.scheduler import Scheduler
from ingest.store import validate_kb_name
from ingest.web import is_web_url

router = APIRouter(prefix="/v1", tags=["sources"])


class SourceCreate(BaseModel):
    url: str = Field(description="an http(s) address: one page, or with crawl a site")
    crawl: bool = Field(False, description="follow links on the host under the URL's path")
    every: str | None = Field(None, description="sync every so often: 30m, 2h, 1d")
    at: str | None = Field(None, description="sync daily at this local time: 03:00")
    max_depth: int | None = Field(None, ge=0, le=50)
    max_pages: int | None = Field(None, ge=1, le=100_000)


class SyncOut(BaseModel):
    started_at: str
    seconds: float
    trigger: str
    added: int
    updated: int
    removed: int
    failed: int
    skipped: int
    error: str
    error_zh: str
    items: list[dict[str, str]]


class SourceOut(BaseModel):
    id: str
    kb: str
    kind: Literal["folder", "page", "site"]
    location: str
    schedule: str
    next_sync: str | None
    pages: int
    syncing: bool
    last_sync: SyncOut | None
    history: list[SyncOut] | None = None


def _sync_out(record: SyncRecord) -> SyncOut:
    return SyncOut(
        started_at=record.started_at,
        seconds=record.seconds,
        trigger=record.trigger,
        added=record.added,
        updated=record.updated,
        removed=record.removed,
        failed=record.failed,
        skipped=record.skipped,
        error=record.error_en,
        error_zh=record.error_zh,
        items=[
            {"url": i.url, "status": i.status, "reason": i.reason_en, "reason_zh": i.reason_zh}
            for i in record.items
        ],
    )


def _out(source: Source, scheduler: Scheduler, history: bool = False) -> SourceOut:
    when = source.next_run()
    return SourceOut(
        id=source.id,
        kb=source.kb,
        kind=source.kind,
        location=source.location,
        schedule=source.schedule.describe(),
        next_sync=when.isoformat(timespec="seconds") if when else None,
        pages=len(source.pages),
        syncing=source.id in scheduler.busy,
        last_sync=_sync_out(source.last_sync) if source.last_sync else None,
        history=[_sync_out(r) for r in source.history] if history else None,
    )


def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler


def _store(request: Request) -> SourceStore:
    return SourceStore(request.app.state.service.settings)


def _find(request: Request, kb: str, source_id: str) -> Source:
    try:
        source = _store(request).get(source_id, kb)
    except SourceError as exc:
        raise ApiError(404, "not_found", exc.en, exc.zh) from exc
    if source.id != source_id:
        raise ApiError(404, "not_found", f"no source {source_id!r}", f"没有找到来源 {source_id!r}")
    return source


@router.post(
    "/knowledge_bases/{kb}/sources", response_model=SourceOut, status_code=status.HTTP_202_ACCEPTED
)
def add_source(kb: str, body: SourceCreate, request: Request, caller: Writer) -> SourceOut:
    """Add a web page or site to a knowledge base (created when it does not exist), with an
    optional schedule; its first sync starts at once in the background."""
    name = validate_kb_name(kb)
    request.app.state.service.require(caller, "write", name)
    if not is_web_url(body.url):
        raise ApiError(
            400, "bad_url", f"not an http(s) address: {body.url[:200]}",
            f"不是 http(s) 网址:{body.url[:200]}",
        )  # fmt: skip
    try:
        schedule = Schedule.parse(body.every, body.at)
        source = _store(request).add(
            new_source(
                name, body.url, crawl=body.crawl, schedule=schedule, max_depth=body.max_depth,
                max_pages=body.max_pages,
            )
        )  # fmt: skip
    except SourceError as exc:
        raise ApiError(400, "bad_source", exc.en, exc.zh) from exc
    scheduler = _scheduler(request)
    scheduler.sync_now(source, trigger="api", who=caller)
    return _out(source, scheduler)


@router.get("/knowledge_bases/{kb}/sources", response_model=list[SourceOut])
def list_sources(kb: str, request: Request, caller: Reader) -> list[SourceOut]:
    name = validate_kb_name(kb)
    request.app.state.service.require(caller, "read", name)
    scheduler = _scheduler(request)
    return [_out(s, scheduler) for s in _store(request).list(name)]


@router.get("/knowledge_bases/{kb}/sources/{source_id}", response_model=SourceOut)
def get_source(kb: str, source_id: str, request: Request, caller: Reader) -> SourceOut:
    """A source with its whole sync history (the last 50 syncs)."""
    name = validate_kb_name(kb)
    request.app.state.service.require(caller, "read", name)
    return _out(_find(request, name, source_id), _scheduler(request), history=True)


@router.post(
    "/knowledge_bases/{kb}/sources/{source_id}/sync",
    response_model=SourceOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def sync_source_now(kb: str, source_id: str, request: Request, caller: Writer) -> SourceOut:
    name = validate_kb_name(kb)
    request.app.state.service.require(caller, "write", name)
    source = _find(request, name, source_id)
    scheduler = _scheduler(request)
    scheduler.sync_now(source, trigger="api", who=caller)
    return _out(source, scheduler)


@router.delete("/knowledge_bases/{kb}/sources/{source_id}", response_model=SourceOut)
def remove_source(kb: str, source_id: str, request: Request, caller: Writer) -> SourceOut:
    """Stop syncing a source; the documents it brought stay."""
    name = validate_kb_name(kb)
    request.app.state.service.require(caller, "write", name)
    source = _find(request, name, source_id)
    _store(request).remove(source)
    return _out(source, _scheduler(request))
