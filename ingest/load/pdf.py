"""PDF: the text layer page by page; pages without a usable one (scans, fonts without a
Unicode map) go to OCR when it is on, so a mixed PDF keeps its text pages as text."""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass

from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError

from ingest._reasons import Rejection
from ingest.load import ocr
from ingest.load.base import (
    TITLE_MAX,
    Loaded,
    LoadOptions,
    Page,
    SourceFile,
    first_line,
    normalize_text,
    one_line,
    short,
)
from ingest.load.quality import CID, GOOD_DOC, PDF_JUNK, Quality, text_quality


@dataclass(frozen=True)
class _LayerPage:
    """What the text layer of one page gave."""

    number: int
    text: str  # NFKC, not yet cleaned
    quality: Quality
    has_images: bool
    error: Exception | None = None


def load_pdf(file: SourceFile, options: LoadOptions) -> Loaded:
    reader = _open_pdf(file.data)
    try:
        count = len(reader.pages)
    except Exception as exc:
        raise Rejection("broken_pdf", detail=short(exc)) from exc
    if count > options.max_pdf_pages:
        raise Rejection("too_many_pages", pages=count, limit=options.max_pdf_pages)
    layer = [_layer_page(index + 1, page) for index, page in enumerate(reader.pages)]
    readable = _mostly_readable(layer)
    kept = {p.number: p for p in layer if p.quality.is_text()} if readable else {}
    # an unreadable document is read again whole: its "good" pages are junk that passed
    wanted = [
        p.number
        for p in layer
        if p.number not in kept and (p.quality.total > 0 or p.has_images or p.error)
    ]
    pages = {
        number: Page(number, clean)
        for number, p in kept.items()
        if (clean := normalize_text(PDF_JUNK.sub("", CID.sub("", p.text))))
    }
    ocr_noise: list[float] = []
    if wanted and options.ocr == "auto" and ocr.unavailable() is None:
        for done, (number, result) in enumerate(ocr.pdf_pages(file.data, wanted), start=1):
            options.page_done(done, len(wanted))
            if result is None:
                continue
            if result.usable():
                pages[number] = Page(number, result.text, result.layout)
            elif result.text:
                ocr_noise.append(result.mean_score)
        if not pages:
            if ocr_noise:
                raise Rejection("ocr_noise", pages=len(ocr_noise))
            raise Rejection("ocr_empty")
    elif not readable:
        raise ocr.no_text(options.ocr)
    if not pages:
        first_error = next((p.error for p in layer if p.error is not None), None)
        if first_error is not None:
            raise Rejection("broken_pdf", detail=short(first_error)) from first_error
        raise ocr.no_text(options.ocr)
    ordered = [pages[number] for number in sorted(pages)]
    title = _pdf_meta_title(reader) or first_line(ordered[0].text)
    return Loaded([file.doc(title, ordered, "plain")])


def _mostly_readable(layer: list[_LayerPage]) -> bool:
    """False when garbage pages outnumber good ones AND hold most of the characters: either
    measure alone is fooled by one huge junk table or by many small junk figure pages."""
    text_pages = [p for p in layer if p.quality.total > 0]
    good = [p for p in text_pages if p.quality.is_text()]
    if text_pages and not good:
        return False
    total_chars = sum(p.quality.total for p in text_pages)
    good_chars = sum(p.quality.total for p in good)
    return not (len(good) < GOOD_DOC * len(text_pages) and good_chars < GOOD_DOC * total_chars)


def _layer_page(number: int, page: PageObject) -> _LayerPage:
    has_images = _has_images(page)
    try:
        raw = page.extract_text() or ""
    except Exception as exc:  # one pathological page must not cost the whole document
        return _LayerPage(number, "", Quality(), has_images, exc)
    text = unicodedata.normalize("NFKC", raw)
    return _LayerPage(number, text, text_quality(text), has_images)


def _has_images(page: PageObject) -> bool:
    """Whether the page draws any XObject (a scan is one big image); a page with neither text
    nor images is blank and not worth rendering."""
    try:
        resources = page.get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources else None
        return bool(xobjects and len(xobjects.get_object()))
    except Exception:
        return True  # unsure: let OCR look


def _open_pdf(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:
        raise Rejection("broken_pdf", detail=short(exc)) from exc
    if not reader.is_encrypted:
        return reader
    try:
        opened = reader.decrypt("")
    except DependencyError as exc:
        # AES needs the `cryptography` package; without it we cannot even try the empty password
        raise Rejection("unreadable", detail=f"AES-encrypted PDF: {short(exc)}") from exc
    except Exception as exc:
        raise Rejection("broken_pdf", detail=f"cannot decrypt: {short(exc)}") from exc
    if not opened:
        raise Rejection("encrypted")
    return reader


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
    title = one_line(raw)
    if match := _WORD_EXPORT.match(title):
        title = match.group(1).strip()
    if title.lower() in _PLACEHOLDER_TITLES or _FILE_NAME.search(title):
        return ""
    # one character, or only digits and punctuation, says nothing about the document
    if sum(ch.isalpha() for ch in title) < 2:
        return ""
    return title[:TITLE_MAX]
