"""HTML: the visible text as Markdown blocks (headings, paragraphs, tables, pre)."""

from __future__ import annotations

import codecs
import re

from bs4 import BeautifulSoup
from bs4.dammit import EncodingDetector
from bs4.element import NavigableString, PreformattedString, Tag

from ingest.load.base import (
    TITLE_MAX,
    Loaded,
    LoadOptions,
    Page,
    SourceFile,
    first_line,
    markdown_table,
    normalize_text,
    one_line,
    require_text,
)
from ingest.load.decode import BOMS, decode_text

_HTML_DROP = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "canvas"}
)
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr",
        "li", "main", "nav", "ol", "p", "section", "summary", "ul",
    }
)  # fmt: skip
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def load_html(file: SourceFile, options: LoadOptions) -> Loaded:
    title, text = render_html(decode_html(file.data))
    return Loaded([file.doc(title, [Page(None, require_text(text))], "markdown")])


def render_html(markup: str) -> tuple[str, str]:
    """The title and the visible text as Markdown (normalised) of an HTML document; the title
    is the <title>, else the first h1, else the first line of text."""
    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    html_title = one_line(title_tag.get_text()) if title_tag else ""
    renderer = _HtmlRenderer()
    renderer.walk(soup)
    text = normalize_text("\n\n".join(renderer.finish()))
    title = html_title or renderer.first_h1 or first_line(text)
    return title[:TITLE_MAX], text


def decode_html(data: bytes, charset: str | None = None) -> str:
    """The page's text: a BOM first, then the charset the server sent (`charset`) or the page
    declares, then the bytes themselves (a declaration that does not decode is a lie)."""
    if not data.startswith(tuple(bom for bom, _ in BOMS)):
        declared = charset or EncodingDetector.find_declared_encoding(data, is_html=True)
        encoding = _html_codec(declared) if declared else None
        if encoding:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                pass  # the declaration lies; trust the bytes instead
    return decode_text(data)


def _html_codec(declared: str) -> str | None:
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        return None
    # pages labelled gb2312/gbk routinely contain GBK-only characters; GB18030 is the superset
    return "gb18030" if name in {"gb2312", "gbk"} else name


class _HtmlRenderer:
    """Visible text of an HTML tree as Markdown blocks: headings, paragraphs, tables, pre."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.inline: list[str] = []
        self.first_h1 = ""

    def finish(self) -> list[str]:
        self._flush()
        return self.blocks

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                    self.inline.append(str(child))
            elif isinstance(child, Tag) and not _html_hidden(child):
                self._tag(child)

    def _tag(self, tag: Tag) -> None:
        name = tag.name
        if name == "br":
            self.inline.append("\n")
        elif name in _HTML_HEADINGS:
            self._heading(tag, _HTML_HEADINGS[name])
        elif name == "table":
            self._flush()
            caption = tag.find("caption")
            if caption is not None and caption.find_parent("table") is tag:
                self.blocks.append(_html_inline_text(caption))
            self.blocks.append(_html_table(tag))
        elif name == "pre":
            self._flush()
            self.blocks.append(tag.get_text())
        elif name in _HTML_BLOCKS:
            self._flush()
            self.walk(tag)
            self._flush()
        else:
            self.walk(tag)

    def _heading(self, tag: Tag, level: int) -> None:
        self._flush()
        text = _html_inline_text(tag)
        if text:
            self.blocks.append(f"{'#' * level} {text}")
            if level == 1 and not self.first_h1:
                self.first_h1 = text

    def _flush(self) -> None:
        lines = (" ".join(line.split()) for line in "".join(self.inline).split("\n"))
        block = "\n".join(line for line in lines if line)
        if block:
            self.blocks.append(block)
        self.inline = []


def _html_hidden(tag: Tag) -> bool:
    if tag.name in _HTML_DROP or tag.has_attr("hidden"):
        return True
    if str(tag.get("aria-hidden", "")).strip().lower() == "true":
        return True
    return bool(_HIDDEN_STYLE.search(str(tag.get("style", ""))))


def _html_inline_text(tag: Tag) -> str:
    renderer = _HtmlRenderer()
    renderer.walk(tag)
    return " ".join(" ".join(renderer.finish()).split())


def _html_table(table: Tag) -> str:
    rows: list[list[str]] = []
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is not table or _html_hidden(tr):
            continue  # rows of a nested table belong to their own cell
        cells = tr.find_all(["td", "th"], recursive=False)
        rows.append([_html_inline_text(cell) for cell in cells if not _html_hidden(cell)])
    return markdown_table(rows)
