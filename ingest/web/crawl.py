"""Which URLs a crawl visits: from a start page (or a sitemap) breadth first, on the start's host
and under its path, to a depth and a page count, never into an endless calendar; each visit
fetched with `Fetcher` and, for a page, read with `extract_page`.

A calendar or a pager links every page to the next one of the same shape (`/cal/2024/05` →
`/cal/2024/06`, `?page=7` → `?page=8`) without end. Such URLs are recognised by their pattern
(digits replaced) being the pattern of the page that linked them: a run of `max_pattern_run`
pages in a row of one pattern is not followed further, while a list page linking to fifty
articles of one pattern is not a run (each article is one step from the list).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, urlencode, urlsplit

from ingest._reasons import Rejection
from ingest.web.extract import (
    LINKED_FILE_TYPES,
    SITEMAP_TYPES,
    ExtractedPage,
    extract_page,
    kind_of,
    sitemap_urls,
    suffix_type,
)
from ingest.web.fetch import Fetcher, Response, Validators, normalize_url

_DIGITS = re.compile(r"\d+")
# main text shorter than this on a page with a password form: a login page, not content (a
# forum's header login box sits on pages with real content)
LOGIN_PAGE_TEXT = 400
MAX_SITEMAPS = 50


@dataclass(frozen=True)
class CrawlLimits:
    follow: bool = False  # follow links (a site) or take the start page alone
    max_depth: int = 3
    max_pages: int = 200
    max_page_bytes: int = 5 * 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024
    max_pattern_run: int = 10


@dataclass(frozen=True)
class Known:
    """What the last visit learnt of a URL: sent back as a conditional request, and the links
    a page still has when the server answers "not modified"."""

    validators: Validators = field(default_factory=Validators)
    kind: str | None = None
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Visit:
    url: str  # as it was queued (normalised)
    depth: int
    response: Response | None = None  # 200, or 304 with `known` still true
    kind: str | None = None  # "html" or a loader's document type
    page: ExtractedPage | None = None  # for a fetched HTML page
    rejection: Rejection | None = None
    before: Known | None = None  # what was known of it, for a 304

    @property
    def links(self) -> tuple[str, ...]:
        if self.page is not None:
            return self.page.links
        return self.before.links if self.before is not None else ()

    @property
    def final_url(self) -> str:
        return self.response.url if self.response is not None else self.url


def url_pattern(url: str) -> str:
    """The URL with every run of digits replaced, query keys sorted: one value per calendar."""
    parts = urlsplit(url)
    query = sorted((k, _DIGITS.sub("9", v)) for k, v in parse_qsl(parts.query, True))
    return f"{parts.netloc}{_DIGITS.sub('9', parts.path)}?{urlencode(query)}"


def is_sitemap(url: str) -> bool:
    name = PurePosixPath(urlsplit(url).path).name.lower()
    return name.endswith(".xml") and "sitemap" in name


@dataclass(frozen=True)
class Scope:
    """The crawl stays on one scheme and host, pages under one path prefix; files linked from
    its pages may sit anywhere on the host (a docs page linking /files/manual.pdf)."""

    origin: str  # scheme://host[:port]
    prefix: str  # a path ending in "/"

    @classmethod
    def of(cls, start: str) -> Scope:
        parts = urlsplit(start)
        path = parts.path or "/"
        prefix = path if path.endswith("/") else path.rsplit("/", 1)[0] + "/"
        return cls(f"{parts.scheme}://{parts.netloc}", prefix)

    def same_host(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    def holds_page(self, url: str) -> bool:
        return self.same_host(url) and (urlsplit(url).path or "/").startswith(self.prefix)


def crawl(
    start: str,
    fetcher: Fetcher,
    limits: CrawlLimits,
    known: Mapping[str, Known] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[Visit]:
    """Every URL the crawl decided about, fetched or refused, in the order visited. Stops early
    (without a visit for the rest) when `cancel` is set."""
    known = known or {}
    start = normalize_url(start)
    scope = Scope.of(start)
    queue: deque[tuple[str, int, int]] = deque()  # url, depth, run of its pattern
    seen: set[str] = set()
    fetched = 0

    def enqueue(url: str, depth: int, run: int) -> None:
        if url not in seen:
            seen.add(url)
            queue.append((url, depth, run))

    if is_sitemap(start):
        seeds, refusals = _sitemap_seeds(start, fetcher, limits, scope)
        yield from refusals
        for url in seeds:
            enqueue(url, 0, 0)
    else:
        enqueue(start, 0, 0)

    while queue:
        if cancel is not None and cancel.is_set():
            return
        url, depth, run = queue.popleft()
        if fetched >= limits.max_pages:
            # one line for all that is left: a site of 10,000 links is not 10,000 rows
            left = Rejection("page_limit", limit=limits.max_pages, left=len(queue) + 1)
            yield Visit(url, depth, rejection=left)
            return
        if not fetcher.allowed(url):
            yield Visit(url, depth, rejection=Rejection("robots"))
            continue
        before = known.get(url)
        fetched += 1
        visit = _visit(url, depth, fetcher, limits, scope, before)
        if visit.response is not None and visit.final_url != url:
            if visit.final_url in seen:
                continue  # a redirect to a page this crawl already has
            seen.add(visit.final_url)
            if url == start and scope.same_host(visit.final_url):
                # `/docs` answered by `/docs/`: the crawl is of what the start redirects to
                scope = Scope.of(visit.final_url)
        yield visit
        if visit.kind != "html":
            continue
        links = visit.links
        pattern = url_pattern(visit.final_url)
        for link in links:
            if link in seen:
                continue
            if scope.same_host(link) and suffix_type(link) in LINKED_FILE_TYPES:
                enqueue(link, depth + 1, 0)  # a linked document: followed from any page
                continue
            if not limits.follow or depth >= limits.max_depth or not scope.holds_page(link):
                continue
            link_run = run + 1 if url_pattern(link) == pattern else 0
            if link_run >= limits.max_pattern_run:
                seen.add(link)
                yield Visit(
                    link,
                    depth + 1,
                    rejection=Rejection(
                        "endless_pattern", count=link_run + 1, pattern=_shown_pattern(link)
                    ),
                )
                continue
            enqueue(link, depth + 1, link_run)


def _shown_pattern(url: str) -> str:
    parts = urlsplit(url)
    shown = _DIGITS.sub("N", parts.path)
    return shown + ("?" + _DIGITS.sub("N", parts.query) if parts.query else "")


def _visit(
    url: str,
    depth: int,
    fetcher: Fetcher,
    limits: CrawlLimits,
    scope: Scope,
    before: Known | None,
) -> Visit:
    try:
        response = fetcher.get(
            url, limits.max_file_bytes, before.validators if before is not None else None
        )
    except Rejection as rejection:
        return Visit(url, depth, rejection=rejection)
    if not scope.same_host(response.url):
        return Visit(url, depth, rejection=Rejection("offsite_redirect", target=response.url))
    if response.not_modified:
        kind = before.kind if before is not None else None
        return Visit(url, depth, response, kind, before=before)
    kind = kind_of(response.content_type, response.url)
    if kind is None:
        rejection = Rejection("content_type", content_type=response.content_type or "unknown")
        return Visit(url, depth, response, rejection=rejection)
    if kind != "html":
        return Visit(url, depth, response, kind)
    if len(response.body) > limits.max_page_bytes:
        rejection = Rejection("page_too_large", limit_mb=limits.max_page_bytes / 2**20)
        return Visit(url, depth, response, kind, rejection=rejection)
    try:
        page = extract_page(response.url, response.body, response.charset)
    except Rejection as rejection:
        return Visit(url, depth, response, kind, rejection=rejection)
    if page.login_form and len(page.text) < LOGIN_PAGE_TEXT:
        return Visit(url, depth, response, kind, page, Rejection("login_page"))
    if not page.text:
        return Visit(url, depth, response, kind, page, Rejection("no_main_text"))
    return Visit(url, depth, response, kind, page)


def _sitemap_seeds(
    start: str, fetcher: Fetcher, limits: CrawlLimits, scope: Scope
) -> tuple[list[str], list[Visit]]:
    """The in-scope page URLs a sitemap (and the sitemaps it lists) names."""
    pages: list[str] = []
    refusals: list[Visit] = []
    todo, done = [start], set()
    while todo and len(done) < MAX_SITEMAPS:
        url = todo.pop(0)
        if url in done:
            continue
        done.add(url)
        try:
            response = fetcher.get(url, limits.max_page_bytes)
            if response.content_type not in SITEMAP_TYPES and not response.body.lstrip().startswith(
                b"<?xml"
            ):
                raise Rejection("content_type", content_type=response.content_type)
            found, nested = sitemap_urls(response.body)
        except Rejection as rejection:
            refusals.append(Visit(url, 0, rejection=rejection))
            continue
        pages += [u for u in found if scope.holds_page(u)]
        todo += [u for u in nested if scope.same_host(u)]
    return list(dict.fromkeys(pages)), refusals
