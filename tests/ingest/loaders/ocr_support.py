"""Scanned documents made in the tests: known Chinese text drawn with reportlab's CID font,
rasterised with pdfium (so the PDF has no text layer, only an image), and the character error
rate of what OCR reads back."""

from __future__ import annotations

import io
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

PAGE_ONE = [
    "知识库支持中文文档检索与大模型问答，所有数据都保存在本机。",
    "扫描件和照片中的文字由离线识别模型读取，页码保持不变。",
    "合同第三条规定：乙方应在收到货款后十五个工作日内交付。",
    "本通知自二〇二四年三月一日起施行，原规定同时废止。",
]
PAGE_THREE = [
    "第二章 设备维护",
    "冷却塔的风机每季度检查一次，轴承温度不得超过八十度。",
    "巡检记录由值班工程师签字后交档案室保存三年。",
    "发现漏水时应立即关闭进水阀门并报告设备科。",
]


def text_page_pdf(pages: list[list[str]], size: int = 14) -> bytes:
    """A PDF with a real text layer: each page its lines."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    for lines in pages:
        pdf.setFont(FONT, size)
        for i, line in enumerate(lines):
            pdf.drawString(60, 780 - 2 * size * i, line)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def rasterize(pdf_bytes: bytes, dpi: int = 150) -> list[Image.Image]:
    document = pdfium.PdfDocument(pdf_bytes)
    try:
        return [page.render(scale=dpi / 72).to_pil().convert("RGB") for page in document]
    finally:
        document.close()


def scanned_pdf(path: Path, pages: list[list[str] | Image.Image | None]) -> Path:
    """An image-only PDF: each page the picture of its lines (None: a blank scanned page;
    an image: that picture)."""
    pdf = canvas.Canvas(str(path))
    width, height = pdf._pagesize
    for page in pages:
        if isinstance(page, Image.Image):
            image = page
        elif page is None:
            image = Image.new("RGB", (1240, 1754), "white")
        else:
            image = rasterize(text_page_pdf([page]))[0]
        pdf.drawImage(ImageReader(image), 0, 0, width=width, height=height)
        pdf.showPage()
    pdf.save()
    return path


def cer(expected: str, got: str) -> float:
    """Character error rate: edit distance over the expected length, whitespace ignored."""
    a = "".join(expected.split())
    b = "".join(got.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / max(1, len(a))
