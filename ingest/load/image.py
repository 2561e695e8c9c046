"""Images (.png .jpg .jpeg .webp .tif): OCR, one page per frame of a multi-page TIFF.

A photo is turned upright by its EXIF orientation first; a scan lying on its side (no EXIF)
is tried at the other three right angles when the upright reading is poor, and the best
reading is kept.
"""

from __future__ import annotations

import io
import itertools

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from ingest._reasons import Rejection
from ingest.load import ocr
from ingest.load.base import Loaded, LoadOptions, Page, SourceFile, first_line

MAX_FRAMES = 200
MAX_PIXELS = 80_000_000  # larger images are decompression bombs or posters, not documents


def load_image(file: SourceFile, options: LoadOptions) -> Loaded:
    if options.ocr == "off" or ocr.unavailable() is not None:
        raise ocr.no_text(options.ocr)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        picture = Image.open(io.BytesIO(file.data))
        frames = [f.copy() for f in itertools.islice(ImageSequence.Iterator(picture), MAX_FRAMES)]
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise Rejection("bad_image", detail=str(exc)[:160]) from exc
    pages: list[Page] = []
    noise = 0
    multi = len(frames) > 1
    for index, frame in enumerate(frames, start=1):
        result = _best_reading(ImageOps.exif_transpose(frame) or frame)
        options.page_done(index, len(frames))
        if result.usable():
            pages.append(Page(index if multi else None, result.text, result.layout))
        elif result.text:
            noise += 1
    if not pages:
        if noise:
            raise Rejection("ocr_noise", pages=noise)
        raise Rejection("ocr_empty")
    return Loaded([file.doc(first_line(pages[0].text), pages, "plain")])


def _best_reading(image: Image.Image) -> ocr.OcrResult:
    upright = ocr.recognize(image)
    if upright.usable() and upright.mean_score >= _CONFIDENT and not upright.sideways():
        return upright
    best = upright
    for angle in (90, 270, 180):
        turned = ocr.recognize(image.rotate(angle, expand=True), turn_lines=False)
        if turned.strength() > best.strength():
            best = turned
    return best


_CONFIDENT = 0.9  # an upright reading this sure is not worth three more tries
