"""OCR (RapidOCR, offline): scanned pages, images and unreadable text layers become text with
their page numbers and line boxes; noise is still refused with a reason.

Real OCR runs here (the PP-OCRv4 models ship inside the rapidocr-onnxruntime wheel); each page
costs a few seconds on two cores, so the documents are small.
"""

from __future__ import annotations

import io
import random
import unicodedata
from pathlib import Path

import pytest
from ocr_support import PAGE_ONE, PAGE_THREE, cer, rasterize, scanned_pdf, text_page_pdf
from PIL import Image, ImageFilter
from pypdf import PdfReader, PdfWriter

from ingest._reasons import Rejection
from ingest.load import load_file, ocr

pytestmark = pytest.mark.skipif(
    ocr.unavailable() is not None, reason=f"OCR unavailable: {ocr.unavailable()}"
)
LIMIT = 50 * 1024 * 1024


def nfkc(lines: list[str]) -> str:
    return unicodedata.normalize("NFKC", "\n".join(lines))


def test_scanned_pdf_is_read_with_its_page_numbers_and_line_boxes(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", [PAGE_ONE, None, PAGE_THREE])
    progress: list[tuple[int, int]] = []
    doc = load_file(pdf, LIMIT, on_page=lambda done, total: progress.append((done, total))).docs[0]
    assert [page.number for page in doc.pages] == [1, 3]  # the blank scan gives no page
    assert all(page.ocr for page in doc.pages)
    assert progress == [(1, 3), (2, 3), (3, 3)]
    for page, lines in zip(doc.pages, (PAGE_ONE, PAGE_THREE), strict=True):
        assert cer(nfkc(lines), page.text) <= 0.03, page.text
        layout = page.layout
        assert layout is not None and len(layout.lines) == len(lines)
        for line, known in zip(layout.lines, lines, strict=True):
            x0, y0, x1, y1 = line.box
            assert 0 <= x0 < x1 <= layout.width and 0 <= y0 < y1 <= layout.height
            assert (
                cer(unicodedata.normalize("NFKC", known), page.text[line.start : line.end]) <= 0.1
            )
        tops = [line.box[1] for line in layout.lines]
        assert tops == sorted(tops)  # reading order: top to bottom
        # a passage's offsets find the line it came from
        start = page.text.index(page.text.split("\n")[1][:6])
        assert layout.lines_between(start, start + 4) == (layout.lines[1],)


def test_mixed_pdf_keeps_its_text_pages_as_text(tmp_path: Path) -> None:
    text_layer = PdfReader(io.BytesIO(text_page_pdf([PAGE_ONE])))
    scan = PdfReader(scanned_pdf(tmp_path / "scan.pdf", [PAGE_THREE]))
    writer = PdfWriter()
    writer.add_page(text_layer.pages[0])
    writer.add_page(scan.pages[0])
    mixed = tmp_path / "mixed.pdf"
    with mixed.open("wb") as f:
        writer.write(f)
    first, second = load_file(mixed, LIMIT).docs[0].pages
    assert (first.number, first.ocr, first.text) == (1, False, nfkc(PAGE_ONE))
    assert (second.number, second.ocr) == (2, True)
    assert cer(nfkc(PAGE_THREE), second.text) <= 0.03


def test_photo_of_a_notice_lying_on_its_side_is_read(tmp_path: Path) -> None:
    page = rasterize(text_page_pdf([PAGE_THREE], size=16), dpi=120)[0]
    photo = page.crop((0, 0, page.width, page.height // 3)).rotate(
        -88, expand=True, fillcolor="white"
    )
    noise = Image.effect_noise(photo.size, 24).convert("RGB")
    photo = Image.blend(photo, noise, 0.12).filter(ImageFilter.GaussianBlur(0.6))
    path = tmp_path / "notice.jpg"
    photo.save(path, quality=80)
    doc = load_file(path, LIMIT).docs[0]
    assert doc.doc_type == "image" and len(doc.pages) == 1
    (only,) = doc.pages
    assert only.ocr and only.number is None
    assert cer(nfkc(PAGE_THREE), only.text) <= 0.05, only.text


def test_noise_is_refused_with_a_reason(tmp_path: Path) -> None:
    rng = random.Random(3)
    image = Image.new("L", (640, 480), 255)
    pixels = image.load()
    for _ in range(6000):  # specks and scratches, no writing
        pixels[rng.randrange(640), rng.randrange(480)] = 0
    path = tmp_path / "speckles.png"
    image.save(path)
    with pytest.raises(Rejection) as info:
        load_file(path, LIMIT)
    assert info.value.code in {"ocr_noise", "ocr_empty"}
    assert info.value.zh and info.value.en


def test_ocr_off_rejects_scans_saying_so(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", [PAGE_ONE])
    for path in (pdf, tmp_path / "photo.png"):
        if path.suffix == ".png":
            rasterize(text_page_pdf([PAGE_ONE]))[0].save(path)
        with pytest.raises(Rejection) as info:
            load_file(path, LIMIT, ocr="off")
        assert info.value.code == "ocr_off" and "OCR=auto" in info.value.en


@pytest.mark.slow
def test_thesis_with_broken_tounicode_is_read_by_ocr(shared_dir: Path, tmp_path: Path) -> None:
    """The shared 32-page thesis template: its CJK has no Unicode map, so the text layer is
    junk. Its first three pages (the whole file takes minutes on two cores; the bench reads all
    32) must come back readable."""
    source = shared_dir / "fixtures/pdfs/zh/cn_thesis_template_broken_tounicode_32p.pdf"
    writer = PdfWriter()
    for page in PdfReader(source).pages[:3]:
        writer.add_page(page)
    part = tmp_path / "thesis-p1-3.pdf"
    with part.open("wb") as f:
        writer.write(f)
    doc = load_file(part, LIMIT).docs[0]
    assert [page.number for page in doc.pages] == [1, 2, 3]
    text = "\n".join(page.text for page in doc.pages)
    for words in ("北京师范大学珠海分校", "本科生毕业论文", "学位论文写作声明", "摘要", "指导教师"):
        assert words in text, words
    assert doc.title == "北京师范大学珠海分校"
