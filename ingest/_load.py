"""Loaders: a file on disk becomes one or more `LoadedDoc`s, or a `Rejection` with its reason.

Every format is reduced to NFKC-normalised text per page. Formats with real structure (Markdown,
DOCX, HTML) are rendered as Markdown (`#` headings, `|` table rows) so one chunker handles them
all; plain text and PDF keep their lines as they are.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import docx
from bs4 import BeautifulSoup
from bs4.dammit import EncodingDetector
from bs4.element import NavigableString, PreformattedString, Tag
from charset_normalizer import from_bytes
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PdfReader
from pypdf.errors import DependencyError

from ingest._reasons import Rejection

Structure = Literal["markdown", "plain"]

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".jsonl": "jsonl",
}


@dataclass(frozen=True)
class Page:
    number: int | None  # 1-based page of a PDF; None for formats without pages
    text: str  # NFKC-normalised


@dataclass(frozen=True)
class LoadedDoc:
    doc_id: str  # the record id for JSONL, else derived from the resolved path
    title: str
    source: str  # resolved path; for a JSONL record "path#id"
    doc_type: str  # a value of SUPPORTED_SUFFIXES
    sha256: str  # of the file bytes; for a JSONL record, of the record
    size: int  # bytes of the file or record
    pages: tuple[Page, ...]
    structure: Structure


@dataclass(frozen=True)
class Loaded:
    docs: list[LoadedDoc]
    # records skipped inside an otherwise usable file (a bad JSONL line), each with its reason
    skipped: list[Rejection] = field(default_factory=list)


def path_doc_id(path: Path) -> str:
    """Stable across edits of the file, so an update replaces the document it updates."""
    return hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:16]


def load_file(path: Path, max_bytes: int, max_pdf_pages: int = 3000) -> Loaded:
    """Load one file; raise `Rejection` when nothing of it can be ingested. Never reads more
    than `max_bytes` into memory (the size is checked before opening)."""
    doc_type = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if doc_type is None:
        raise Rejection(
            "unsupported", suffix=path.suffix, supported=", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    data = _read_bounded(path, max_bytes)
    file = _File(path=path, resolved=str(path.resolve()), data=data, doc_type=doc_type)
    try:
        if doc_type == "pdf":
            return Loaded([_load_pdf(file, max_pdf_pages)])
        if doc_type == "jsonl":
            return _load_jsonl(file)
        return Loaded([_TEXT_LOADERS[doc_type](file)])
    except Rejection:
        raise
    except Exception as exc:  # a library crash on a hostile file must not stop a whole batch
        code = {"pdf": "broken_pdf", "docx": "bad_docx"}.get(doc_type, "unreadable")
        raise Rejection(code, detail=_short(exc)) from exc


# --- reading and common text handling -----------------------------------------------------------

_MIB = 1024 * 1024
_TITLE_MAX = 80


@dataclass(frozen=True)
class _File:
    path: Path
    resolved: str
    data: bytes
    doc_type: str

    def doc(self, title: str, pages: list[Page], structure: Structure) -> LoadedDoc:
        return LoadedDoc(
            doc_id=path_doc_id(self.path),
            title=title or self.path.stem,
            source=self.resolved,
            doc_type=self.doc_type,
            sha256=hashlib.sha256(self.data).hexdigest(),
            size=len(self.data),
            pages=tuple(pages),
            structure=structure,
        )


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            # opening a FIFO or device would block or never end
            raise Rejection("unreadable", detail="not a regular file")
        if st.st_size == 0:
            raise Rejection("empty")
        if st.st_size > max_bytes:
            raise Rejection("too_large", size_mb=st.st_size / _MIB, limit_mb=max_bytes / _MIB)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise Rejection("unreadable", detail=exc.strerror or _short(exc)) from exc
    if len(data) > max_bytes:
        raise Rejection("too_large", size_mb=len(data) / _MIB, limit_mb=max_bytes / _MIB)
    if not data:
        raise Rejection("empty")
    return data


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# C0 and C1 controls except \t and \n; \r is turned into \n before this runs
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def _normalize_text(text: str) -> str:
    """NFKC (PDF fonts map 大 to the Kangxi radical ⼤), one newline convention, no controls,
    no trailing spaces, at most one blank line in a row, no blank lines around."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n")


def _one_line(text: str) -> str:
    return " ".join(_normalize_text(text).split())


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        line = " ".join(line.split())
        if any(ch.isalpha() for ch in line):  # not a lone page number
            return line[:_TITLE_MAX].rstrip()
    return ""


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def _first_heading(markdown: str) -> str:
    match = _MD_HEADING.search(markdown)
    return _one_line(match.group(1))[:_TITLE_MAX] if match else ""


# --- text decoding ------------------------------------------------------------------------------

# UTF-32 first: its little-endian BOM starts with the UTF-16 one
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# control codes that do not occur in text files (tab, newlines, form feed and ESC do)
_BINARY_CONTROLS = bytes(b for b in range(0x20) if b not in b"\t\n\r\f\v\x1b")
_BINARY_CONTROL_CHARS = dict.fromkeys(_BINARY_CONTROLS)
_BINARY_CONTROL_SHARE = 0.05
_GB_SAMPLE = 65536  # characters enough to judge an encoding; keeps 100 MB files fast
_UTF16_MIN_NULS = 0.05  # share of ASCII (spaces, newlines, digits) even Chinese text has
_PLAUSIBLE_SHARE = 0.95
_TEXT_BLOCKS = (
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin-1 and Latin Extended
    (0x370, 0x4FF),  # Greek, Cyrillic
    (0x2000, 0x206F),  # general punctuation
    (0x3000, 0x30FF),  # CJK punctuation, kana
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xFF00, 0xFFEF),  # full-width forms
)
# Share of the non-ASCII characters of a GB18030 decode that must be GB2312 hanzi or CJK
# punctuation. Real GBK text scores > 0.9; Big5 or Latin-1 bytes read as GBK land in the GBK
# extension rows, the kana rows or fail, and score far lower.
_GB_COMMON_SHARE = 0.8


def _decode_text(data: bytes) -> str:
    """Decode the bytes of a text file whatever its encoding; `binary` / `encoding` if not."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise Rejection("encoding") from exc
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return utf16
    if _looks_binary(data):
        raise Rejection("binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    gb = _gb18030_strict(data)
    if gb is not None and _looks_like_gb_chinese(gb):
        # charset-normalizer misreads short Chinese texts; a clean GB decode of common hanzi is
        # much stronger evidence than its statistics
        return gb
    guessed = _charset_normalizer_guess(data)
    if guessed is not None:
        return guessed
    if gb is not None:
        return gb
    raise Rejection("encoding")


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 written without a BOM (old Windows tools) has NULs as the high byte of every
    ASCII character; such a file is text, not binary."""
    if len(data) < 4 or len(data) % 2:
        return None
    even_nuls, odd_nuls = data[0::2].count(0), data[1::2].count(0)
    if max(even_nuls, odd_nuls) < _UTF16_MIN_NULS * (len(data) // 2):
        return None
    encoding = "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return text if _plausible_text(text) else None


def _plausible_text(text: str) -> bool:
    """Binary read as UTF-16 spreads over the whole BMP; text stays in a few blocks."""
    sample = text[:_GB_SAMPLE]
    plausible = sum(1 for ch in sample if _plausible_char(ch))
    return plausible >= _PLAUSIBLE_SHARE * len(sample)


def _plausible_char(ch: str) -> bool:
    code = ord(ch)
    return ch in "\t\n\r\f" or any(low <= code <= high for low, high in _TEXT_BLOCKS)


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    controls = len(data) - len(data.translate(None, _BINARY_CONTROLS))
    return controls > _BINARY_CONTROL_SHARE * len(data)


def _control_share(text: str) -> float:
    controls = len(text) - len(text.translate(_BINARY_CONTROL_CHARS))
    return controls / max(1, len(text))


def _gb18030_strict(data: bytes) -> str | None:
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        return None


def _looks_like_gb_chinese(text: str) -> bool:
    non_ascii = [ch for ch in text[:_GB_SAMPLE] if ord(ch) > 0x7F and not ch.isspace()]
    if not non_ascii:
        return False
    common = sum(1 for ch in non_ascii if _is_gb2312_common(ch))
    return common >= _GB_COMMON_SHARE * len(non_ascii)


@lru_cache(maxsize=8192)
def _is_gb2312_common(ch: str) -> bool:
    try:
        lead = ch.encode("gb2312")[0]
    except UnicodeEncodeError:
        return False
    # rows 0xA1-0xA3 are punctuation and full-width forms, 0xB0-0xF7 the two levels of hanzi
    return 0xA1 <= lead <= 0xA3 or 0xB0 <= lead <= 0xF7


# UTF-16/32 without a BOM is handled above; charset-normalizer picks them for short Latin-1 bytes
_NO_BOM_GUESSES = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


def _charset_normalizer_guess(data: bytes) -> str | None:
    best = from_bytes(data, cp_exclusion=_NO_BOM_GUESSES).best()
    if best is None:
        return None
    text = str(best)
    return None if _control_share(text) > _BINARY_CONTROL_SHARE else text


# --- plain text and Markdown --------------------------------------------------------------------


def _require_text(text: str) -> str:
    if not text.strip():
        raise Rejection("blank")
    return text


def _load_txt(file: _File) -> LoadedDoc:
    text = _require_text(_normalize_text(_decode_text(file.data)))
    return file.doc(_first_line(text), [Page(None, text)], "plain")


def _load_markdown(file: _File) -> LoadedDoc:
    text = _require_text(_normalize_text(_decode_text(file.data)))
    title = _first_heading(text) or _first_line(text)
    return file.doc(title, [Page(None, text)], "markdown")


# --- DOCX ---------------------------------------------------------------------------------------

_DOCX_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_DOCX_TITLE_STYLES = frozenset({"title", "标题"})


def _load_docx(file: _File) -> LoadedDoc:
    try:
        document = docx.Document(io.BytesIO(file.data))
    except Exception as exc:  # BadZipFile, KeyError (missing part), ValueError (not Word)
        raise Rejection("bad_docx", detail=_short(exc)) from exc
    blocks: list[str] = []
    first_heading = ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            block = _markdown_table([[cell.text for cell in row.cells] for row in item.rows])
        else:
            text = _one_line(item.text)
            level = _docx_heading_level(item)
            if level and text and not first_heading:
                first_heading = text
            block = f"{'#' * level} {text}" if level and text else _normalize_text(item.text)
        if block.strip():
            blocks.append(block)
    text = _require_text(_normalize_text("\n\n".join(blocks)))
    title = _one_line(document.core_properties.title or "") or first_heading or _first_line(text)
    return file.doc(title[:_TITLE_MAX], [Page(None, text)], "markdown")


def _docx_heading_level(paragraph: Paragraph) -> int:
    try:
        name = (paragraph.style.name or "").strip() if paragraph.style else ""
    except Exception:  # a paragraph pointing at a missing style is just a paragraph
        return 0
    if name.lower() in _DOCX_TITLE_STYLES:
        return 1
    match = _DOCX_HEADING_STYLE.match(name)
    return int(match.group(1)) if match else 0


def _markdown_table(rows: list[list[str]]) -> str:
    cells = [[_table_cell(text) for text in row] for row in rows if row]
    if not cells:
        return ""
    width = max(len(row) for row in cells)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * width)
    return "\n".join(lines)


def _table_cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


# --- HTML ---------------------------------------------------------------------------------------

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


def _load_html(file: _File) -> LoadedDoc:
    soup = BeautifulSoup(_decode_html(file.data), "lxml")
    title_tag = soup.find("title")
    html_title = _one_line(title_tag.get_text()) if title_tag else ""
    renderer = _HtmlRenderer()
    renderer.walk(soup)
    text = _require_text(_normalize_text("\n\n".join(renderer.finish())))
    title = html_title or renderer.first_h1 or _first_line(text)
    return file.doc(title[:_TITLE_MAX], [Page(None, text)], "markdown")


def _decode_html(data: bytes) -> str:
    if not data.startswith(tuple(bom for bom, _ in _BOMS)):
        declared = EncodingDetector.find_declared_encoding(data, is_html=True)
        encoding = _html_codec(declared) if declared else None
        if encoding:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                pass  # the declaration lies; trust the bytes instead
    return _decode_text(data)


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
    return _markdown_table(rows)


# --- PDF ----------------------------------------------------------------------------------------

_CID = re.compile(r"\(cid:\d+\)")
# characters that carry no text: replacement char, private use (BMP and planes 15/16)
_PDF_JUNK = re.compile(r"[\ufffd\ue000-\uf8ff\U000f0000-\U0010ffff]")
_GOOD_PAGE = 0.8  # share of good characters a page needs to be kept
# A document is rejected when garbage pages outnumber good ones AND hold most of its characters:
# either measure alone is fooled by one huge junk table or by many small junk figure pages.
_GOOD_DOC = 0.5
_MIN_WORDLIKE = 0.3  # letters and digits among the non-space characters of a page
_HAN = "HAN"
_LATIN = "LATIN"
_RARE_HAN = "RARE_HAN"


@dataclass
class _Quality:
    """Counts of a page's characters: readable text versus extraction garbage."""

    good: int = 0
    bad: int = 0
    wordlike: int = 0

    @property
    def total(self) -> int:
        return self.good + self.bad

    @property
    def score(self) -> float:
        return self.good / self.total if self.total else 0.0

    def is_text(self) -> bool:
        return (
            self.wordlike > 0
            and self.score >= _GOOD_PAGE
            and self.wordlike >= _MIN_WORDLIKE * self.total
        )


def _text_quality(text: str) -> _Quality:
    """Score NFKC text extracted from a PDF page.

    Fonts without a usable ToUnicode map come out as `(cid:N)`, U+FFFD, private-use or control
    characters, or as letters of random scripts (Cyrillic, Arabic, Syriac, NKo ... in one word).
    Garbage: those characters, CJK extension characters (almost never in real text but frequent
    in such junk) and every character of a word mixing three scripts or two non-Latin, non-Han
    scripts. Good: everything else except spaces. Runs of one repeated punctuation mark (dot
    leaders) count once so a table of contents is not mistaken for junk.
    """
    quality = _Quality(bad=len(_CID.findall(text)))
    for word in _CID.sub(" ", text).split():
        word = _squeeze_punctuation(word)
        junk = _mixes_scripts(word)
        for ch in word:
            category = unicodedata.category(ch)
            if junk or category in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
                quality.bad += 1
            elif category == "Cf":
                continue  # soft hyphens, zero-width joiners: harmless
            elif category[0] == "L" and _script(ch) == _RARE_HAN:
                quality.bad += 1
            else:
                quality.good += 1
                quality.wordlike += category[0] in "LN"
    return quality


_PUNCT_RUN = re.compile(r"([^\w\s])\1+")


def _squeeze_punctuation(word: str) -> str:
    return _PUNCT_RUN.sub(r"\1", word)


def _mixes_scripts(word: str) -> bool:
    scripts = {_script(ch) for ch in word if ch.isalpha()}
    return len(scripts) >= 3 or len(scripts - {_LATIN, _HAN}) >= 2


@lru_cache(maxsize=65536)
def _script(ch: str) -> str:
    code = ord(ch)
    if 0x4E00 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x3005 <= code <= 0x3007:
        return _HAN
    if 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x3FFFF:
        return _RARE_HAN
    name = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
    # Chinese, Japanese and Korean mix these inside one word
    return _HAN if name in {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"} else name


def _load_pdf(file: _File, max_pages: int) -> LoadedDoc:
    reader = _open_pdf(file.data)
    try:
        count = len(reader.pages)
    except Exception as exc:
        raise Rejection("broken_pdf", detail=_short(exc)) from exc
    if count > max_pages:
        raise Rejection("too_many_pages", pages=count, limit=max_pages)
    pages, first_error = _pdf_pages(reader)
    if not pages:
        if first_error is not None:
            raise Rejection("broken_pdf", detail=_short(first_error)) from first_error
        raise Rejection("no_text")
    title = _pdf_meta_title(reader) or _first_line(pages[0].text)
    return file.doc(title, pages, "plain")


def _open_pdf(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:
        raise Rejection("broken_pdf", detail=_short(exc)) from exc
    if not reader.is_encrypted:
        return reader
    try:
        opened = reader.decrypt("")
    except DependencyError as exc:
        # AES needs the `cryptography` package; without it we cannot even try the empty password
        raise Rejection("unreadable", detail=f"AES-encrypted PDF: {_short(exc)}") from exc
    except Exception as exc:
        raise Rejection("broken_pdf", detail=f"cannot decrypt: {_short(exc)}") from exc
    if not opened:
        raise Rejection("encrypted")
    return reader


def _pdf_pages(reader: PdfReader) -> tuple[list[Page], Exception | None]:
    """Good pages with their true numbers; garbage pages are dropped, a mostly garbage
    document is rejected as `no_text`."""
    kept: list[tuple[int, str, _Quality]] = []
    total_chars = text_pages = 0
    first_error: Exception | None = None
    for number, raw in _pdf_page_texts(reader):
        if isinstance(raw, Exception):
            first_error = first_error or raw
            continue
        text = unicodedata.normalize("NFKC", raw)
        quality = _text_quality(text)
        total_chars += quality.total
        text_pages += quality.total > 0
        if quality.is_text():
            kept.append((number, text, quality))
    kept_chars = sum(quality.total for _, _, quality in kept)
    if text_pages and not kept:
        raise Rejection("no_text")
    if len(kept) < _GOOD_DOC * text_pages and kept_chars < _GOOD_DOC * total_chars:
        raise Rejection("no_text")
    pages = [
        Page(number, clean)
        for number, text, _ in kept
        if (clean := _normalize_text(_PDF_JUNK.sub("", _CID.sub("", text))))
    ]
    return pages, first_error


def _pdf_page_texts(reader: PdfReader) -> Iterator[tuple[int, str | Exception]]:
    for index, page in enumerate(reader.pages):
        try:
            yield index + 1, page.extract_text() or ""
        except Exception as exc:  # one pathological page must not cost the whole document
            yield index + 1, exc


_WORD_EXPORT = re.compile(r"^Microsoft (?:Word|PowerPoint|Excel) - (.+?)(?:\.\w{1,5})?$", re.I)
_FILE_NAME = re.compile(
    r"(?:^|[\\/])[^\\/]*\.(?:pdf|docx?|dvi|tex|txt|ps|eps|exe|rtf|odt|pptx?|xlsx?|html?|indd|wps|"
    r"qxd|cdr|ai|jpe?g|png|tiff?)$",
    re.I,
)
_PLACEHOLDER_TITLES = frozenset(
    {"untitled", "untitled document", "title", "document", "unknown", "none", "null", "no title",
     "powerpoint presentation", "slide 1", "无标题", "标题", "文档", "新建文档"}
)  # fmt: skip


def _pdf_meta_title(reader: PdfReader) -> str:
    try:
        raw = reader.metadata.title if reader.metadata else None
    except Exception:  # a broken /Info dictionary only costs the title
        return ""
    return _meaningful_title(raw) if isinstance(raw, str) else ""


def _meaningful_title(raw: str) -> str:
    """A metadata title worth showing, or "" for the placeholders tools write there."""
    title = _one_line(raw)
    if match := _WORD_EXPORT.match(title):
        title = match.group(1).strip()
    if title.lower() in _PLACEHOLDER_TITLES or _FILE_NAME.search(title):
        return ""
    # one character, or only digits and punctuation, says nothing about the document
    if sum(ch.isalpha() for ch in title) < 2:
        return ""
    return title[:_TITLE_MAX]


# --- JSONL --------------------------------------------------------------------------------------


def _load_jsonl(file: _File) -> Loaded:
    text = _decode_jsonl(file.data)
    docs: list[LoadedDoc] = []
    skipped: list[Rejection] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            doc = _jsonl_record(file, line)
            if doc.doc_id in first_line_of:
                raise ValueError(
                    f"duplicate id {doc.doc_id!r} (first on line {first_line_of[doc.doc_id]})"
                )
        except ValueError as exc:
            skipped.append(Rejection("bad_jsonl", line=number, detail=str(exc)))
            continue
        first_line_of[doc.doc_id] = number
        docs.append(doc)
    if not docs:
        if skipped:
            raise skipped[0]
        raise Rejection("blank")
    return Loaded(docs, skipped)


def _decode_jsonl(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # JSON Lines is UTF-8 by definition
    except UnicodeDecodeError:
        return _decode_text(data)  # exported by a tool that did not know that


def _jsonl_record(file: _File, line: str) -> LoadedDoc:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg}, column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    doc_id = _jsonl_id(record.get("id"))
    raw_text = record.get("text")
    if not isinstance(raw_text, str):
        raise ValueError("missing or non-string 'text'")
    text = _normalize_text(raw_text)
    if not text.strip():
        raise ValueError("empty 'text'")
    raw_title = record.get("title")
    if raw_title is not None and not isinstance(raw_title, str):
        raise ValueError("'title' must be a string")
    title = _one_line(raw_title or "")[:_TITLE_MAX] or _first_line(text) or doc_id
    return LoadedDoc(
        doc_id=doc_id,
        title=title,
        source=f"{file.resolved}#{doc_id}",
        doc_type="jsonl",
        sha256=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
        size=len(line.rstrip("\r").encode("utf-8")),
        pages=(Page(None, text),),
        structure="plain",
    )


def _jsonl_id(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError("missing 'id' (a string or an integer)")
    doc_id = str(raw)
    if not doc_id.strip():
        raise ValueError("empty 'id'")
    return doc_id


_TEXT_LOADERS: dict[str, Callable[[_File], LoadedDoc]] = {
    "txt": _load_txt,
    "md": _load_markdown,
    "docx": _load_docx,
    "html": _load_html,
}
