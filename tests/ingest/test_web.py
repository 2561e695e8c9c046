"""Web pages and sites: a crawl of a real HTTP server on 127.0.0.1 (tests/web_site.py), no
internet. The right pages are ingested, every refusal has its reason, passages cite their URLs,
headings become section paths, a re-ingest of unchanged pages is a no-op."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import make_cjk_pdf, make_settings
from web_site import MANUAL_LINES, WebSite, build_help_site

from ingest._embed import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from ingest.web import Fetcher, WebReport, ingest_web, limits_of
from ingest.web.crawl import url_pattern
from ingest.web.extract import extract_page, kind_of
from ingest.web.fetch import normalize_url

KB = "web"


@dataclass
class Crawled:
    site: WebSite
    settings: Settings
    report: WebReport

    def outcome(self, path: str) -> tuple[str, str]:
        url = self.site.url(path)
        found = [o for o in self.report.outcomes if o.path == url]
        assert len(found) == 1, (path, [o.path for o in self.report.outcomes])
        return found[0].status, found[0].reason.code if found[0].reason else ""


def fetcher(timeout_s: float = 1.0) -> Fetcher:
    return Fetcher(user_agent="zhiku-test", timeout_s=timeout_s, delay_s=0.0)


def crawl_limits(settings: Settings, follow: bool = True):  # type: ignore[no-untyped-def]
    return limits_of(
        settings, follow, max_depth=12, max_pages=40, max_pattern_run=4, max_page_bytes=512 * 1024
    )


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Crawled]:
    tmp = tmp_path_factory.mktemp("web")
    pdf = make_cjk_pdf(tmp / "manual.pdf", [MANUAL_LINES]).read_bytes()
    settings = make_settings(tmp / "home")
    with WebSite() as site:
        build_help_site(site, pdf)
        report = ingest_web(
            settings,
            [site.url("/docs/")],
            KB,
            limits=crawl_limits(settings),
            fetcher=fetcher(),
            embedder=embedder,
        )
        yield Crawled(site, settings, report)


def test_the_sites_pages_and_linked_pdf_are_ingested_under_their_urls(crawled: Crawled) -> None:
    for path in (
        "/docs/",
        "/docs/guide/install.html",
        "/docs/guide/network/proxy.html",  # two levels down
        "/docs/faq.html",
        "/docs/gbk.html",
        "/docs/new-page.html",  # reached through a redirect from old-page.html
        "/files/manual.pdf",  # outside /docs/, linked from a page
    ):
        assert crawled.outcome(path) == ("added", ""), path
    with KnowledgeBase.open(crawled.settings, KB) as kb:
        sources = {d.source for d in kb.documents()}
        assert crawled.site.url("/docs/guide/install.html") in sources
        assert not any("old-page" in s or "/blog/" in s or "example.com" in s for s in sources)
        assert kb.check() == []
    # nothing outside the host and the path prefix was requested
    assert crawled.site.full["/blog/post.html"] == 0


def test_each_refusal_has_its_reason(crawled: Crawled) -> None:
    assert crawled.outcome("/docs/missing.html") == ("failed", "http_gone")
    assert crawled.outcome("/docs/internal/secret.html") == ("skipped", "robots")
    assert crawled.outcome("/docs/private/") == ("failed", "login_page")
    assert crawled.outcome("/docs/slow.html") == ("failed", "timeout")
    assert crawled.outcome("/docs/huge.html") == ("failed", "page_too_large")
    assert crawled.outcome("/docs/error.html") == ("failed", "http_status")
    assert crawled.outcome("/docs/logo.png") == ("failed", "content_type")
    # robots.txt obeyed: the excluded page was never requested
    assert crawled.site.full["/docs/internal/secret.html"] == 0
    for outcome in crawled.report.outcomes:
        if outcome.status == "failed":
            assert outcome.reason_en and outcome.reason_zh, outcome.path


def test_an_endless_calendar_is_cut_with_its_reason(crawled: Crawled) -> None:
    calendar = [o for o in crawled.report.outcomes if "/calendar/" in o.path]
    fetched = [p for p in crawled.site.full if p.startswith("/docs/calendar/")]
    # a run of 4 pages of one pattern per direction, then refused; never the 40-page limit
    assert 1 < len(fetched) <= 2 * 4
    refused = [o for o in calendar if o.reason and o.reason.code == "endless_pattern"]
    assert refused and all(o.status == "skipped" for o in refused)
    assert "/docs/calendar/N/N" in refused[0].reason_en
    assert not any(o.reason and o.reason.code == "page_limit" for o in crawled.report.outcomes)


def test_headings_become_section_paths_and_gbk_is_decoded(crawled: Crawled) -> None:
    with KnowledgeBase.open(crawled.settings, KB) as kb:
        docs = {d.source: d for d in kb.documents()}
        install = docs[crawled.site.url("/docs/guide/install.html")]
        assert install.title.startswith("安装指南")
        chunks = kb.document_chunks(install.doc_id)
        offline = next(c for c in chunks if "离线安装包" in c.text)
        assert offline.headings[0] == "安装指南"
        page = kb.page_text(install.doc_id, 0) or ""
        assert "# 安装指南" in page and "\n## 离线安装\n" in page
        # the navigation and footer are not part of the main text
        assert not any("京ICP备" in c.text for c in chunks)
        gbk = docs[crawled.site.url("/docs/gbk.html")]
        text = kb.page_text(gbk.doc_id, 0) or ""
        assert "两年免费保修" in text and gbk.title == "售后服务政策"
        pdf = docs[crawled.site.url("/files/manual.pdf")]
        assert pdf.doc_type == "pdf"
        assert any("五分钟" in c.text for c in kb.document_chunks(pdf.doc_id))


@pytest.mark.parametrize(
    ("question", "path"),
    [
        ("星河云盘客户端至少需要多少内存?", "/docs/guide/install.html"),
        ("代理服务器默认端口是多少", "/docs/guide/network/proxy.html"),
        ("硬件产品保修多久?", "/docs/gbk.html"),
        ("客户端多久与服务器同步一次?", "/files/manual.pdf"),
        ("How long does a sharing link last?", "/docs/faq.html"),
    ],
)
def test_retrieval_finds_the_page_that_answers(
    crawled: Crawled, embedder: Embedder, question: str, path: str
) -> None:
    with KnowledgeBase.open(crawled.settings, KB) as kb:
        vector = embedder.for_index(kb.embedding_spec()).encode_queries([question])[0]
        hits = kb.hybrid_search(vector, question, 3, "rrf", 0.5, 20)
        top = kb.chunks([hits[0][0]])[hits[0][0]]
    assert top.source == crawled.site.url(path)


def test_reingesting_an_unchanged_site_is_a_no_op(crawled: Crawled, embedder: Embedder) -> None:
    site, settings = crawled.site, crawled.settings
    with KnowledgeBase.open(settings, KB) as kb:
        before = {d.doc_id: d.updated_at for d in kb.documents()}
    again = ingest_web(
        settings,
        [site.url("/docs/")],
        KB,
        limits=crawl_limits(settings),
        fetcher=fetcher(),
        embedder=embedder,
        known=crawled.report.known,
    )
    assert again.totals()["added"] == again.totals()["updated"] == 0
    assert again.embedded_chunks == 0
    # conditional requests: the pages with validators were answered 304, not sent again
    for path in ("/docs/", "/docs/guide/install.html", "/docs/gbk.html", "/files/manual.pdf"):
        assert site.not_modified[path] == 1 and site.full[path] == 1, path
    with KnowledgeBase.open(settings, KB) as kb:
        assert {d.doc_id: d.updated_at for d in kb.documents()} == before
    # without validators (a plain `zhiku ingest URL` again): fetched, compared by content hash
    plain = ingest_web(
        settings,
        [site.url("/docs/faq.html")],
        KB,
        limits=crawl_limits(settings, follow=False),
        fetcher=fetcher(),
        embedder=embedder,
    )
    assert [(o.status, o.reason.code if o.reason else "") for o in plain.outcomes] == [
        ("skipped", "unchanged")
    ]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # one page alone (no --crawl) still brings the files it links to
        ("/docs/", ["/docs/", "/files/manual.pdf"]),
        # a sitemap's pages, those under its path only (/blog/post.html is listed too)
        ("/docs/sitemap.xml", ["/docs/faq.html", "/docs/guide/install.html"]),
    ],
)
def test_what_a_start_url_brings_without_following_links(
    tmp_path: Path, embedder: Embedder, crawled: Crawled, start: str, expected: list[str]
) -> None:
    settings = make_settings(tmp_path / "home")
    report = ingest_web(
        settings,
        [crawled.site.url(start)],
        KB,
        limits=crawl_limits(settings, follow=False),
        fetcher=fetcher(),
        embedder=embedder,
    )
    added = sorted(o.path for o in report.outcomes if o.status == "added")
    assert added == [crawled.site.url(path) for path in expected]


def test_an_unreachable_server_is_a_reason_not_a_crash(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path / "home")
    with WebSite() as site:
        url = site.url("/docs/")
    report = ingest_web(settings, [url], KB, fetcher=fetcher(), embedder=embedder)  # closed
    assert [(o.status, o.reason.code if o.reason else "") for o in report.outcomes] == [
        ("failed", "unreachable")
    ]


def test_urls_and_patterns() -> None:
    assert normalize_url("HTTP://Example.COM:80/a#x") == "http://example.com/a"
    assert normalize_url("https://example.com") == "https://example.com/"
    assert url_pattern("http://h/cal/2024/05?page=3") == url_pattern("http://h/cal/2031/12?page=40")
    assert url_pattern("http://h/cal/2024/05") != url_pattern("http://h/news/2024/05")
    assert kind_of("text/html", "http://h/x") == "html"
    assert kind_of("application/pdf", "http://h/download?id=3") == "pdf"
    assert kind_of("application/octet-stream", "http://h/a.docx") == "docx"
    assert kind_of("image/png", "http://h/a.png") is None


def test_a_meta_declared_gbk_page_is_decoded() -> None:
    body = (
        '<html><head><meta charset="gb2312"><title>通知</title></head><body><article>'
        "<h1>放假通知</h1><p>国庆节放假七天,十月八日正常上班。请各部门提前安排好值班人员。</p>"
        "</article></body></html>"
    ).encode("gbk")
    page = extract_page("http://h/n.html", body)
    assert page.title == "通知" and "十月八日正常上班" in page.text


def test_the_page_limit_is_one_line_for_all_that_is_left(
    tmp_path: Path, embedder: Embedder, crawled: Crawled
) -> None:
    settings = make_settings(tmp_path / "home")
    limits = limits_of(settings, True, max_pages=3, max_page_bytes=512 * 1024)
    report = ingest_web(
        settings, [crawled.site.url("/docs")], KB, limits=limits, fetcher=fetcher(),
        embedder=embedder,
    )  # fmt: skip
    # `/docs` is answered by a redirect to `/docs/`: the crawl is of /docs/, not the whole host
    assert crawled.site.url("/docs/") in [o.path for o in report.outcomes if o.status == "added"]
    limited = [o for o in report.outcomes if o.reason and o.reason.code == "page_limit"]
    assert len(limited) == 1 and "more URLs found" in limited[0].reason_en
    assert len([o for o in report.outcomes if o.status == "added"]) <= 3
