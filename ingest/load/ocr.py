"""Offline OCR, Chinese first: RapidOCR (PP-OCRv4 detection and recognition, the models inside
its wheel) on ONNX Runtime; PDF pages are rendered with pypdfium2.

The engine loads once per process (about a second). Lines come back with their boxes; a page's
text is its lines in reading order, and each line's offsets into that text are kept with its
box, so a citation of an OCR passage can point at the region of the page it came from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ingest._reasons import Rejection
from ingest.load.base import OcrLine, OcrMode, PageLayout, normalize_text
from ingest.load.quality import text_quality

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

# The recogniser reads lines scaled to 48 px high; a page rendered with its long side at the
# engine's own limit (2000 px, ~170 dpi for A4) keeps body text at 20+ px per character.
RENDER_LONG_SIDE = 2000
# A page's OCR is noise when its lines' mean confidence is below this, or when its text fails
# the same readability test a text layer must pass.
MIN_MEAN_SCORE = 0.75
_lock = threading.Lock()  # one recognition at a time: ONNX Runtime already uses every core


@dataclass(frozen=True)
class OcrResult:
    text: str
    layout: PageLayout
    mean_score: float

    def sideways(self) -> bool:
        """Most lines are standing boxes: the image lies on its side (the recogniser still
        reads such crops, but their order comes out column by column)."""
        lines = [ln for ln in self.layout.lines if ln.end - ln.start >= 2]
        standing = sum((ln.box[3] - ln.box[1]) > 1.5 * (ln.box[2] - ln.box[0]) for ln in lines)
        return bool(lines) and standing * 2 > len(lines)

    def strength(self) -> float:
        """Confidently read characters, in lines lying as text lies."""
        return 0.0 if self.sideways() else self.mean_score * len(self.text)

    def usable(self) -> bool:
        return (
            bool(self.text)
            and self.mean_score >= MIN_MEAN_SCORE
            and (text_quality(self.text).is_text())
        )


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why OCR cannot run here (None when it can): rapidocr-onnxruntime needs Python < 3.13."""
    try:
        import pypdfium2  # noqa: F401
        import rapidocr_onnxruntime  # noqa: F401
    except Exception as exc:  # ImportError, or cv2 failing to load a system library
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def no_text(mode: OcrMode) -> Rejection:
    """The rejection for a document with no text layer, saying what OCR could have done."""
    if mode == "off":
        return Rejection("ocr_off")
    reason = unavailable()
    if reason is not None:
        return Rejection("ocr_unavailable", detail=reason)
    return Rejection("no_text")


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return RapidOCR()


def recognize(image: Image, turn_lines: bool = True) -> OcrResult:
    """OCR one image (a PIL image in any mode). `turn_lines`: let the angle classifier turn
    single upside-down lines (off when whole-image orientations are being compared, where an
    upside-down reading must score low)."""
    rgb = image.convert("RGB")
    with _lock:
        result, _ = _engine()(rgb, use_cls=turn_lines)
    return _assemble(result or [], rgb.width, rgb.height)


def _assemble(raw: Sequence[Sequence[Any]], width: int, height: int) -> OcrResult:
    items = []
    for points, text, score in raw:
        line = normalize_text(str(text)).replace("\n", " ").strip()
        if not line:
            continue
        xs = [round(float(p[0])) for p in points]
        ys = [round(float(p[1])) for p in points]
        items.append(((min(xs), min(ys), max(xs), max(ys)), line, float(score)))
    parts: list[str] = []
    lines: list[OcrLine] = []
    offset = 0
    for box, line, score in _reading_order(items):
        if parts:
            offset += 1  # the newline before this line
        lines.append(OcrLine(offset, offset + len(line), box, score))
        parts.append(line)
        offset += len(line)
    text = "\n".join(parts)
    total = sum(len(ln) for ln in parts)
    mean = sum(ln.score * (ln.end - ln.start) for ln in lines) / total if total else 0.0
    return OcrResult(text, PageLayout("ocr", width, height, tuple(lines)), mean)


def _reading_order(
    items: list[tuple[tuple[int, int, int, int], str, float]],
) -> list[tuple[tuple[int, int, int, int], str, float]]:
    """Top to bottom; boxes whose vertical centres are within half a line of each other form
    one row, read left to right (two columns of a table, a label and its value)."""
    items = sorted(items, key=lambda it: ((it[0][1] + it[0][3]) / 2, it[0][0]))
    rows: list[list[tuple[tuple[int, int, int, int], str, float]]] = []
    for item in items:
        centre = (item[0][1] + item[0][3]) / 2
        if rows:
            last = rows[-1][0][0]
            if abs(centre - (last[1] + last[3]) / 2) < (last[3] - last[1]) / 2:
                rows[-1].append(item)
                continue
        rows.append([item])
    return [item for row in rows for item in sorted(row, key=lambda it: it[0][0])]


def pdf_pages(data: bytes, numbers: Sequence[int]) -> Iterator[tuple[int, OcrResult | None]]:
    """OCR the given 1-based pages of a PDF; None for a page that cannot be rendered."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        for number in numbers:
            try:
                page = document[number - 1]
                width, height = page.get_size()
                scale = RENDER_LONG_SIDE / max(width, height, 1.0)
                image = page.render(scale=scale).to_pil()
                page.close()
            except Exception as exc:  # a page pdfium cannot draw costs only that page
                log.warning("cannot render page %d: %s", number, exc)
                yield number, None
                continue
            yield number, recognize(image)
    finally:
        document.close()
