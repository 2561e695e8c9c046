"""Web sources: pages/s for a 200-page local site, and the time a re-sync takes when nothing
changed (conditional requests), on a real HTTP server on 127.0.0.1.

The site is generated from the paragraphs of `knowledge/` (real Chinese text): a home page
linking 20 section pages, each linking 9 articles (201 pages, depth 2), served by Python's
`http.server` (Last-Modified and If-Modified-Since → 304, as a static web server does). The
politeness pause is 0 here (`WEB_DELAY_S`, 1 s by default, would make the crawl take 200 s and
measure nothing but the pause).

    .venv/bin/python bench/web_bench.py            # prints the figures (Markdown)
"""

from __future__ import annotations

import functools
import html
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import bench_settings, load_model, load_note, machine_info  # noqa: E402

SECTIONS = 20
ARTICLES = 9


def paragraphs() -> list[str]:
    out = []
    for path in sorted((REPO / "knowledge").glob("*")):
        if path.suffix in (".txt", ".md"):
            text = path.read_text(encoding="utf-8")
            out += [p.strip() for p in text.split("\n") if len(p.strip()) > 40]
    return out


def page(title: str, body: str, links: list[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{href}">{html.escape(t)}</a></li>' for href, t in links)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><nav><a href='/site/'>首页</a></nav><main><h1>{html.escape(title)}</h1>"
        f"{body}<ul>{items}</ul></main><footer>示例站点</footer></body></html>"
    )


def build_site(root: Path) -> int:
    texts = paragraphs()
    site = root / "site"
    site.mkdir(parents=True)
    count = 0
    sections = []
    for s in range(SECTIONS):
        folder = site / f"s{s:02d}"
        folder.mkdir()
        articles = []
        for a in range(ARTICLES):
            picked = [texts[((s * ARTICLES + a) * 3 + i) % len(texts)] for i in range(3)]
            body = "".join(
                f"<h2>第 {i + 1} 节</h2><p>{html.escape(p)}</p>" for i, p in enumerate(picked)
            )
            title = f"文章 {s:02d}-{a}"
            (folder / f"a{a}.html").write_text(page(title, body, []), encoding="utf-8")
            articles.append((f"a{a}.html", title))
            count += 1
        intro = f"<p>{html.escape(texts[s % len(texts)])}</p>"
        (folder / "index.html").write_text(page(f"栏目 {s:02d}", intro, articles), "utf-8")
        sections.append((f"s{s:02d}/", f"栏目 {s:02d}"))
        count += 1
    (site / "index.html").write_text(page("示例站点", "<p>首页。</p>", sections), "utf-8")
    return count + 1


def serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/site/"


def run(embedder: Any) -> dict[str, Any]:
    """The figures as numbers (bench/run.py keeps them in results.json)."""
    from app.sources import SourceStore, new_source, sync_source
    from ingest.store import KnowledgeBase
    from ingest.web import Fetcher, crawl, limits_of

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pages = build_site(root / "www")
        server, start = serve(root / "www")
        settings = bench_settings(root / "home", web_delay_s=0.0, web_max_pages=500)
        limits = limits_of(settings, True)

        def fetcher() -> Fetcher:
            return Fetcher(user_agent=settings.web_user_agent, delay_s=0.0)

        began = time.perf_counter()
        with fetcher() as f:
            visited = [v for v in crawl(start, f, limits) if v.rejection is None]
        crawl_s = time.perf_counter() - began
        store = SourceStore(settings)
        source = store.add(new_source("web", start, crawl=True))
        first = sync_source(settings, store, source, embedder=embedder, fetcher=fetcher())
        again = sync_source(
            settings, store, store.get(source.id), embedder=embedder, fetcher=fetcher()
        )
        with KnowledgeBase.open(settings, "web") as kb:
            chunks = kb.counts()["chunks"]
        server.shutdown()
    return {
        "pages": pages,
        "chunks": chunks,
        "crawl_pages": len(visited),
        "crawl_s": crawl_s,
        "first_added": first.added,
        "first_s": first.seconds,
        "resync_unchanged": again.skipped,
        "resync_reingested": again.added + again.updated,
        "resync_s": again.seconds,
        "load": load_note(),
    }


def render(r: dict[str, Any]) -> str:
    rows = [
        ("pages on the site (chunks stored)", f"{r['pages']} ({r['chunks']})"),
        (
            "fetch + extract only (crawl, no ingest)",
            f"{r['crawl_pages']} pages in {r['crawl_s']:.1f} s = "
            f"{r['crawl_pages'] / r['crawl_s']:.1f} pages/s",
        ),
        (
            "first sync (fetch, extract, chunk, embed, store)",
            f"{r['first_added']} pages in {r['first_s']:.1f} s = "
            f"{r['first_added'] / r['first_s']:.1f} pages/s "
            f"({r['chunks'] / r['first_s']:.1f} chunks/s)",
        ),
        (
            "re-sync, nothing changed (conditional requests: 304)",
            f"{r['resync_unchanged']} pages unchanged, {r['resync_reingested']} re-ingested, "
            f"{r['resync_s']:.2f} s",
        ),
    ]
    lines = [f"{r['load']}; WEB_DELAY_S=0", "", "| measure | result |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    print(f"## Web sources (bench/web_bench.py)\n\n{machine_info().get('cpu', '')}")
    print(render(run(load_model())))


if __name__ == "__main__":
    main()
