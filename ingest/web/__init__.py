"""Web pages and sites as sources: `fetch` (HTTP, robots.txt, politeness), `extract` (main
text, links), `crawl` (which URLs), `insert` (into a knowledge base)."""

from ingest.web.crawl import CrawlLimits, Known, Visit, crawl
from ingest.web.fetch import Fetcher, Validators, is_web_url, normalize_url
from ingest.web.insert import WebReport, fetcher_of, ingest_web, limits_of, url_doc_id

__all__ = [
    "CrawlLimits",
    "Fetcher",
    "Known",
    "Validators",
    "Visit",
    "WebReport",
    "crawl",
    "fetcher_of",
    "ingest_web",
    "is_web_url",
    "limits_of",
    "normalize_url",
    "url_doc_id",
]
