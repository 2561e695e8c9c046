"""A cited span in its original: the PDF page as an image with the span's character boxes
marked, or the stored page text of any other format with the span cut out for highlighting.

The stored page text of a PDF comes from pypdf; the page image and its character boxes come from
PDFium (pypdfium2), whose text differs in spacing and line breaks. The span is therefore found
again in PDFium's characters by its text (NFKC, whitespace removed), never by offset; a quote
PDFium does not give back whole is found piece by piece, so a stray ligature or hyphen costs a
few characters of highlight, not the page.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ingest import original_file
from ingest.settings import Settings
from ingest.store import DocumentRecord, KnowledgeBase

Box = tuple[float, float, float, float]  # left, top, right, bottom in image pixels

PIECE = 8  # characters of a quote looked for on their own when the whole quote is not found


@dataclass(frozen=True)
class PageImage:
    number: int  # 1-based page number
    pages: int  # in the file
    png: bytes  # the page with the span's boxes drawn
    width: int
    height: int
    boxes: list[Box]  # one per line of the highlighted span
    found: str  # the text of the characters that were highlighted
    complete: bool  # every character of the quote was found on the page
    zoom_png: bytes = b""  # the highlighted lines with some context, across the text's width


@dataclass(frozen=True)
class PageText:
    text: str
    span: tuple[int, int]  # offsets of the span in `text`; (0, 0) when it is not on the page


def source_file(settings: Settings, kb: KnowledgeBase, doc: DocumentRecord) -> Path | None:
    """The document's original: the copy kept under the data home, else the file it came from
    when that is still there and unchanged."""
    sha256 = kb.source_sha256(doc.origin)
    return original_file(settings, kb.name, doc.origin, sha256)


def page_text(kb: KnowledgeBase, doc_id: str, page_seq: int, start: int, end: int) -> PageText:
    """The stored page text with the span's offsets (page offsets, as citations carry them)."""
    text = kb.page_text(doc_id, page_seq) or ""
    lo, hi = max(0, min(start, len(text))), max(0, min(end, len(text)))
    return PageText(text, (lo, hi) if hi > lo else (0, 0))


def _squashed(chars: list[str]) -> tuple[str, list[int]]:
    """The characters NFKC-normalised without whitespace, and where each came from."""
    out: list[str] = []
    where: list[int] = []
    for index, char in enumerate(chars):
        for piece in unicodedata.normalize("NFKC", char):
            if not piece.isspace():
                out.append(piece.lower())
                where.append(index)
    return "".join(out), where


def find_span(chars: list[str], quote: str) -> tuple[list[int], bool]:
    """Indices into `chars` of the quote's characters, and whether the quote was found whole."""
    page, where = _squashed(chars)
    wanted, _ = _squashed(list(quote))
    if not wanted:
        return [], False
    at = page.find(wanted)
    if at >= 0:
        return sorted({where[i] for i in range(at, at + len(wanted))}), True
    found: set[int] = set()
    position = 0
    for lo in range(0, len(wanted), PIECE):
        piece = wanted[lo : lo + PIECE]
        if len(piece) < 3:
            break
        at = page.find(piece, position)
        if at < 0:
            continue
        found.update(where[i] for i in range(at, at + len(piece)))
        position = at + len(piece)
    return sorted(found), False


def _line_boxes(boxes: list[Box]) -> list[Box]:
    """Character boxes merged into one box per run of characters on a line."""
    merged: list[list[float]] = []
    for left, top, right, bottom in boxes:
        if merged:
            last = merged[-1]
            height = max(last[3] - last[1], bottom - top, 1.0)
            # overlapping vertically: a comma sits low on its line, still on it
            same_line = top < last[3] and bottom > last[1] and left >= last[0] - height
            if same_line and left - last[2] < 3 * height:
                last[0], last[1] = min(last[0], left), min(last[1], top)
                last[2], last[3] = max(last[2], right), max(last[3], bottom)
                continue
        merged.append([left, top, right, bottom])
    return [(a, b, c, d) for a, b, c, d in merged]


def render_pdf_page(
    path: Path,
    number: int,
    quote: str,
    width_px: int = 900,
    ocr_boxes: tuple[tuple[int, int, int, int], ...] = (),
    ocr_size: tuple[int, int] = (0, 0),
) -> PageImage:
    """Page `number` (1-based) of the PDF at `path`, `width_px` wide, with the boxes of
    `quote`'s characters drawn on it. A page read by OCR has no characters to find: its cited
    lines come as `ocr_boxes`, in the pixels of the `ocr_size` image OCR read, and are drawn
    instead. Raises ValueError for a page the file does not have."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    pdf = pdfium.PdfDocument(str(path))
    try:
        if not 1 <= number <= len(pdf):
            raise ValueError(f"{path.name} has {len(pdf)} pages, not page {number}")
        page = pdf[number - 1]
        width_pt, height_pt = page.get_size()
        scale = width_px / width_pt if width_pt else 1.0
        textpage = page.get_textpage()
        chars = [textpage.get_text_range(i, 1) for i in range(textpage.count_chars())]
        indices, complete = find_span(chars, quote)
        raw_boxes: list[Box] = []
        for i in indices:
            left, bottom, right, top = textpage.get_charbox(i)
            if right <= left or top <= bottom:
                continue  # generated characters (spaces, line breaks) have no box
            raw_boxes.append(
                (
                    left * scale,
                    (height_pt - top) * scale,
                    right * scale,
                    (height_pt - bottom) * scale,
                )
            )
        boxes = _line_boxes(raw_boxes)
        image = page.render(scale=scale).to_pil().convert("RGBA")
        if not boxes and ocr_boxes and ocr_size[0] and ocr_size[1]:
            sx, sy = image.width / ocr_size[0], image.height / ocr_size[1]
            boxes = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in ocr_boxes]
            indices, complete = [], True
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for left, top, right, bottom in boxes:
            pad = 2
            draw.rectangle(
                (left - pad, top - pad, right + pad, bottom + pad),
                fill=(253, 224, 71, 110),
                outline=(234, 88, 12, 230),
                width=2,
            )
        marked = Image.alpha_composite(image, overlay).convert("RGB")
        buffer = io.BytesIO()
        marked.save(buffer, format="PNG", optimize=True)
        zoom = b""
        if boxes:
            text_boxes = [textpage.get_charbox(i) for i in range(len(chars))]
            lefts = [b[0] * scale for b in text_boxes if b[2] > b[0]] or [b[0] for b in boxes]
            rights = [b[2] * scale for b in text_boxes if b[2] > b[0]] or [b[2] for b in boxes]
            x0 = max(0, min(lefts) - 24)
            x1 = min(marked.width, max(rights) + 24)
            top = min(b[1] for b in boxes)
            bottom = max(b[3] for b in boxes)
            room = max(0.0, 0.55 * (x1 - x0) - (bottom - top)) / 2
            y0, y1 = max(0, top - room), min(marked.height, bottom + room)
            crop = marked.crop((int(x0), int(y0), int(x1), int(y1)))
            zoomed = io.BytesIO()
            crop.save(zoomed, format="PNG", optimize=True)
            zoom = zoomed.getvalue()
        found = "".join(chars[i] for i in indices) or (quote if ocr_boxes and boxes else "")
        pages = len(pdf)
        textpage.close()
        page.close()
    finally:
        pdf.close()
    return PageImage(number, pages, buffer.getvalue(), *marked.size, boxes, found, complete, zoom)
