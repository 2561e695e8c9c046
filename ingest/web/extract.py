"""A fetched web page → its main text as Markdown (headings kept), its title and its links.

trafilatura finds the main content (navigation, footers and sidebars go) and returns it as HTML
with its headings and tables; the HTML loader's renderer turns that into the Markdown every
structured format becomes, so headings become section paths in the chunker as they do for files.
Links and login forms are read from the whole page with lxml (they are usually outside the main
content).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from urllib.parse import urljoin, urlsplit

import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import use_config

from ingest._reasons import Rejection
from ingest.load import SUPPORTED_SUFFIXES
from ingest.load.base import TITLE_MAX, normalize_text, one_line
from ingest.load.html import decode_html, render_html
from ingest.web.fetch import is_web_url, normalize_url

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
SITEMAP_TYPES = frozenset({"application/xml", "text/xml"})
# content types of files the loaders read, by the loader's document type
FILE_TYPES: dict[str, str] = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/markdown": "md",
}
# what a server says about bytes it does not know: the URL's suffix decides
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})
# file suffixes worth following from a page although they are outside the crawled path
LINKED_FILE_TYPES = frozenset({"pdf", "docx", "xlsx", "pptx", "csv"})


_PASSWORD_FORM = ".//form[.//input[translate(@type, 'PASSWORD', 'password')='password']]"


def _xml_parser() -> etree.XMLParser:
    # one per call: an lxml parser is not to be shared between threads
    return etree.XMLParser(resolve_entities=False, no_network=True)


@dataclass(frozen=True)
class ExtractedPage:
    title: str
    text: str  # the main content as normalised Markdown; "" when there is none
    links: tuple[str, ...]  # absolute, normalised http(s) URLs, in page order
    login_form: bool  # the page asks for a password


@cache
def _config():  # type: ignore[no-untyped-def]
    config = use_config()
    # trafilatura's 250-character floor suits English articles; a Chinese help page's section
    # says as much in 80 characters, and below the floor it falls back to the whole page's text
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "40")
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "10")
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")  # its timeout uses SIGALRM: main thread only
    return config


def suffix_type(url: str) -> str | None:
    """The loader's document type the URL's file suffix names, if any."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return SUPPORTED_SUFFIXES.get(suffix)


def kind_of(content_type: str, url: str) -> str | None:
    """ "html" for a page, a loader's document type for a file, None for anything else."""
    if content_type in HTML_TYPES:
        return "html"
    if content_type in FILE_TYPES:
        by_suffix = suffix_type(url)
        # servers send text/plain for Markdown and CSV; the suffix knows better
        if content_type == "text/plain" and by_suffix in ("md", "csv", "txt"):
            return by_suffix
        return FILE_TYPES[content_type]
    if content_type in _GENERIC_TYPES:
        by_suffix = suffix_type(url)
        return "html" if by_suffix == "html" else by_suffix
    return None


def extract_page(url: str, body: bytes, charset: str | None = None) -> ExtractedPage:
    """The main text, title, links and login form of an HTML page; raises Rejection when the
    bytes are not HTML at all."""
    markup = decode_html(body, charset)
    if not markup.strip():
        raise Rejection("empty")
    try:
        tree = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError) as exc:
        raise Rejection("unreadable", detail=str(exc)[:160]) from exc
    base = tree.find(".//base[@href]")
    base_url = urljoin(url, base.get("href", "")) if base is not None else url
    links: list[str] = []
    for anchor in tree.iterfind(".//a[@href]"):
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith(("#", "mailto:", "javascript:", "tel:")):
            continue
        absolute = urljoin(base_url, href)
        if is_web_url(absolute):
            links.append(normalize_url(absolute))
    login = bool(tree.xpath(_PASSWORD_FORM))
    main = trafilatura.extract(
        markup,
        url=url,
        output_format="html",
        include_tables=True,
        include_formatting=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        config=_config(),
    )
    page_title, text = render_html(main) if main else ("", "")
    title_tag = tree.find(".//title")
    title = one_line(title_tag.text_content()) if title_tag is not None else ""
    return ExtractedPage(
        title=(title or page_title)[:TITLE_MAX],
        text=normalize_text(text),
        links=tuple(dict.fromkeys(links)),
        login_form=login,
    )


def sitemap_urls(body: bytes) -> tuple[list[str], list[str]]:
    """The page URLs and the nested sitemap URLs of a sitemap (urlset or sitemapindex)."""
    try:
        root = etree.fromstring(body, parser=_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise Rejection("unreadable", detail=f"not a sitemap: {str(exc)[:120]}") from exc
    pages: list[str] = []
    nested: list[str] = []
    for loc in root.iter("{*}loc"):
        text = (loc.text or "").strip()
        if not is_web_url(text):
            continue
        parent = loc.getparent()
        name = etree.QName(parent).localname if parent is not None else ""
        (nested if name == "sitemap" else pages).append(normalize_url(text))
    return pages, nested
