"""Web pages and sites into a knowledge base: what `crawl` visits becomes documents whose origin
is their URL, through the same chunking, embedding and commit as files (`IngestRun`).

A page's content hash is the hash of its extracted title and text, not of its bytes: a page whose
only change is a date in its footer or a fresh session token is unchanged. A linked file's hash
is of its bytes, as for files on disk. Every URL decided about gets one outcome: ingested,
unchanged, or refused with its reason; the rest goes on.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ingest._embed import Embedder
from ingest._insert import Cancelled, FileOutcome, IngestReport, IngestRun, Progress, Status
from ingest._reasons import Rejection
from ingest.load import Loaded, LoadedDoc, Page, load_file
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from ingest.web.crawl import CrawlLimits, Known, Visit, crawl
from ingest.web.fetch import Fetcher, Validators

# refusals that are the crawl's own decisions rather than something wrong with the page
_SKIPS = frozenset({"robots", "endless_pattern", "page_limit", "offsite_redirect"})
_UNSAFE = re.compile(r"[^\w.\-]+")


@dataclass
class WebReport(IngestReport):
    """An ingestion's outcomes, and what the next sync of the same source needs: the URLs
    answered (with their validators and links) and those the server said are gone."""

    known: dict[str, Known] = field(default_factory=dict)
    gone: dict[str, int] = field(default_factory=dict)  # URL -> 404 or 410
    requests: int = 0


def url_doc_id(url: str) -> str:
    """Stable across changes of the page, so an update replaces the document it updates."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


def limits_of(settings: Settings, follow: bool, **overrides: int) -> CrawlLimits:
    limits = CrawlLimits(
        follow=follow,
        max_depth=settings.web_max_depth,
        max_pages=settings.web_max_pages,
        max_page_bytes=int(settings.web_max_page_mb * 2**20),
        max_file_bytes=int(settings.max_file_mb * 2**20),
    )
    return replace(limits, **{k: v for k, v in overrides.items() if v is not None})


def fetcher_of(settings: Settings, **overrides: float) -> Fetcher:
    delay = overrides.get("delay_s")
    return Fetcher(
        user_agent=settings.web_user_agent,
        timeout_s=settings.web_timeout_s,
        delay_s=settings.web_delay_s if delay is None else delay,
    )


def ingest_web(
    settings: Settings,
    starts: Sequence[str],
    kb_name: str | None = None,
    *,
    limits: CrawlLimits | None = None,
    fetcher: Fetcher | None = None,
    known: Mapping[str, Known] | None = None,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
    cancel: threading.Event | None = None,
) -> WebReport:
    """Ingest web pages (`limits.follow` false) or sites crawled from each start URL (a page
    or a sitemap). `known` is what a previous sync learnt (conditional requests); it is only
    used for URLs the knowledge base still holds. Raises StoreError as `ingest_paths` does."""
    started = time.perf_counter()
    progress = progress or Progress()
    limits = limits or limits_of(settings, follow=False)
    own_fetcher = fetcher is None
    fetcher = fetcher or fetcher_of(settings)
    kb = KnowledgeBase.open(settings, kb_name, create=True)
    run = IngestRun(settings, kb, embedder, progress, cancel=cancel)
    report = WebReport()
    run.report = report
    try:
        kb.ensure_model_name(settings.embedding_model)
        held = set(kb.origins())
        usable = {url: k for url, k in (known or {}).items() if url in held}
        decided: set[str] = set()
        with tempfile.TemporaryDirectory(prefix="zhiku-web-") as scratch:
            try:
                for start in starts:
                    for visit in crawl(start, fetcher, limits, usable, cancel):
                        _decide(run, visit, Path(scratch), decided)
                run.flush()
            except Cancelled:
                report.cancelled = True
            if cancel is not None and cancel.is_set():
                report.cancelled = True
        if kb.vectors_stale():
            with kb.writer(None):
                kb.save_vectors()
    finally:
        kb.close()
        report.requests = fetcher.requests
        if own_fetcher:
            fetcher.close()
    report.seconds = time.perf_counter() - started
    return report


def _record(run: IngestRun, url: str, status: Status, reason: Rejection | None) -> None:
    run.record(FileOutcome(url, status, reason=reason))


def _decide(run: IngestRun, visit: Visit, scratch: Path, decided: set[str]) -> None:
    report = run.report
    assert isinstance(report, WebReport)
    url = visit.final_url
    if url in decided:
        return
    decided.add(url)
    if visit.rejection is not None:
        code = visit.rejection.code
        if code == "http_gone":
            report.gone[visit.url] = int(visit.rejection.params["status"])
        _record(run, visit.url, "skipped" if code in _SKIPS else "failed", visit.rejection)
        return
    response = visit.response
    assert response is not None
    if response.not_modified:  # validators are only sent for pages the knowledge base has
        report.known[url] = _known(visit, visit.links)
        _record(run, url, "skipped", Rejection("not_modified"))
        return
    if visit.kind == "html":
        assert visit.page is not None
        text = visit.page.text
        title = visit.page.title or _name_of(url)
        sha256 = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
        doc = LoadedDoc(
            doc_id=url_doc_id(url),
            title=title,
            source=url,
            doc_type="html",
            sha256=sha256,
            size=len(response.body),
            pages=(Page(None, text),),
            structure="markdown",
        )
        report.known[url] = _known(visit, visit.links)
        if _unchanged(run, url, sha256):
            return
        run.plan_loaded(url, sha256, len(response.body), Loaded([doc]), None)
        return
    assert visit.kind is not None
    sha256 = hashlib.sha256(response.body).hexdigest()
    report.known[url] = _known(visit, ())
    if _unchanged(run, url, sha256):
        return
    local = scratch / f"{len(decided)}-{_name_of(url)}"
    suffix = "." + visit.kind if not local.suffix else ""
    local = local.with_name(local.name + suffix)
    local.write_bytes(response.body)
    try:
        loaded = load_file(local, run.max_bytes, run.settings.max_pdf_pages, ocr=run.settings.ocr)
    except Rejection as rejection:
        _record(run, url, "failed", rejection)
        return
    except Exception as exc:  # a loader bug must not stop the crawl
        _record(run, url, "failed", Rejection("internal", detail=repr(exc)[:200]))
        return
    docs = [
        replace(
            doc,
            doc_id=url_doc_id(url if len(loaded.docs) == 1 else f"{url}#{doc.doc_id}"),
            source=url,
        )
        for doc in loaded.docs
    ]
    run.plan_loaded(url, sha256, len(response.body), Loaded(docs, loaded.skipped), local)


def _unchanged(run: IngestRun, url: str, sha256: str) -> bool:
    if run.kb.source_sha256(url) == sha256 and not run.force:
        _record(run, url, "skipped", Rejection("unchanged"))
        return True
    return False


def _known(visit: Visit, links: tuple[str, ...]) -> Known:
    response = visit.response
    assert response is not None
    validators = response.validators
    if response.not_modified and visit.before is not None:
        # a 304 may omit the validators; the ones sent still hold
        validators = Validators(
            validators.etag or visit.before.validators.etag,
            validators.last_modified or visit.before.validators.last_modified,
        )
    return Known(validators, visit.kind, links)


def _name_of(url: str) -> str:
    """A file name for what `url` serves: its last path segment, made safe."""
    name = unquote(PurePosixPath(urlsplit(url).path).name) or urlsplit(url).hostname or "page"
    return _UNSAFE.sub("_", name)[:80] or "page"
