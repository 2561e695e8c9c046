"""A cited span in its original (`app/_source.py`): found again on the PDF page by its text,
boxed on the page image, and the stored text of other formats with its offsets; and a document
uploaded through one app server opened at its cited page through another (real PostgreSQL and
Milvus), which only the originals in the shared database make possible."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from milvus_server import MilvusServer
from PIL import Image
from postgres_server import PostgresServer
from support import make_cjk_pdf, make_settings

from app._source import find_span, render_pdf_page, source_file
from app.access import Principal
from app.service import Service
from app.state import engine as state_engine
from ingest._embed import Embedder

PAGES = [
    ["第一页:总则。"],
    ["第二章 休假", "员工每年享有十五天带薪年假,需要提前两周申请。", "未休完的年假可以顺延。"],
]


def test_a_span_is_found_across_spacing_and_line_breaks() -> None:
    chars = list("员工每年享有\r\n十五天 带薪年假。其他")
    indices, whole = find_span(chars, "员工每年享有十五天带薪年假。")
    assert whole
    assert "".join(chars[i] for i in indices).replace("\r\n", "").replace(" ", "") == (
        "员工每年享有十五天带薪年假。"
    )


def test_a_quote_the_page_does_not_hold_whole_is_found_in_pieces() -> None:
    chars = list("员工每年享有十五天带薪年假,需要提前两周申请。")
    indices, whole = find_span(chars, "员工每年享有十五天带薪年假,需要提前三周申请。")
    assert not whole
    found = "".join(chars[i] for i in indices)
    assert found.startswith("员工每年享有十五天")  # the pieces that are there
    assert find_span(chars, "完全无关的句子内容在这里") == ([], False)


def test_the_cited_page_is_rendered_with_the_span_boxed(tmp_path: Path) -> None:
    pdf = make_cjk_pdf(tmp_path / "手册.pdf", PAGES)
    image = render_pdf_page(pdf, 2, "员工每年享有十五天带薪年假,")
    assert (image.number, image.pages) == (2, 2)
    assert image.complete and image.found == "员工每年享有十五天带薪年假,"
    assert len(image.boxes) == 1  # one line
    left, top, right, bottom = image.boxes[0]
    # the second line of the page, from the left margin (72 pt of a 595 pt page, 900 px wide)
    assert 100 < left < 120 and right > left + 200 and 100 < top < bottom < 140
    png = Image.open(io.BytesIO(image.png)).convert("RGB")
    assert png.size == (image.width, image.height) == (900, 1273)
    # inside the box the page is tinted yellow, outside it stays white
    inside = png.crop(
        (int(left) + 1, int(top) + 1, int(right) - 1, int(bottom) - 1)
    ).get_flattened_data()
    tinted = sum(1 for r, g, b in inside if r > 200 and g > 180 and b < 200)
    assert tinted > 0.4 * len(inside)
    assert png.getpixel((800, 1200)) == (255, 255, 255)
    assert image.zoom_png and Image.open(io.BytesIO(image.zoom_png)).size[0] < image.width


def test_a_page_the_file_does_not_have_is_refused(tmp_path: Path) -> None:
    pdf = make_cjk_pdf(tmp_path / "手册.pdf", PAGES)
    with pytest.raises(ValueError, match="has 2 pages"):
        render_pdf_page(pdf, 3, "x")


def test_a_page_read_by_ocr_gets_the_boxes_of_its_cited_lines(tmp_path: Path) -> None:
    """A scanned page has no characters to find: the boxes OCR stored for the cited lines (in
    the pixels of the image it read) are scaled onto the rendered page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = tmp_path / "扫描件.pdf"
    sheet = canvas.Canvas(str(path), pagesize=A4)
    sheet.rect(72, 600, 300, 40, stroke=1, fill=0)  # a drawing, no text layer
    sheet.showPage()
    sheet.save()
    # OCR read the page as a 1240 x 1754 image; the cited line sat at (100, 200)-(700, 260)
    image = render_pdf_page(
        path,
        1,
        "员工每年享有十五天带薪年假",
        ocr_boxes=((100, 200, 700, 260),),
        ocr_size=(1240, 1754),
    )
    assert len(image.boxes) == 1
    left, top, right, bottom = image.boxes[0]
    scale = 900 / 1240
    assert (left, right) == pytest.approx((100 * scale, 700 * scale), abs=1)
    assert (top, bottom) == pytest.approx((200 * scale, 260 * scale), abs=2)
    png = Image.open(io.BytesIO(image.png)).convert("RGB")
    inside = png.crop((int(left) + 3, int(top) + 3, int(right) - 3, int(bottom) - 3))
    pixels = inside.get_flattened_data()
    assert sum(1 for r, g, b in pixels if r > 200 and g > 180 and b < 200) > 0.8 * len(pixels)
    assert image.found == "员工每年享有十五天带薪年假" and image.zoom_png
    # without OCR boxes the same page has nothing to highlight
    assert render_pdf_page(path, 1, "员工每年享有十五天带薪年假").boxes == []


@pytest.fixture
def shared(
    tmp_path: Path, postgres_server: PostgresServer, milvus_server: MilvusServer
) -> Iterator[dict[str, object]]:
    """What two app servers share: one PostgreSQL state database and one Milvus."""
    url = postgres_server.create_database()
    yield {
        "state_url": url,
        "vector_store": "milvus",
        "milvus_uri": milvus_server.uri,
        "milvus_index_type": "FLAT",
    }
    milvus_server.drop_all()
    state_engine.forget_engines()
    postgres_server.drop_database(url)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("store", ["auto", "files"])
def test_a_document_uploaded_through_one_server_opens_at_its_cited_page_through_the_other(
    store: str, shared: dict[str, object], tmp_path: Path, embedder: Embedder
) -> None:
    """ORIGINALS_STORE=auto (with PostgreSQL: the database) opens it on the second server; with
    `files` the original stays on the first server's disk and the second has only the text."""
    me = Principal.local("test")
    one, two = (
        make_settings(tmp_path / name / "home", originals_store=store, **shared)
        for name in ("one", "two")
    )
    first = Service(one, embedder)
    pdf = make_cjk_pdf(tmp_path / "手册.pdf", PAGES).read_bytes()
    imported = first.ingest_saved(me, "shared", first.save_files(me, "shared", [("手册.pdf", pdf)]))
    assert imported[0].status == "added", imported
    first.close()
    shutil.rmtree(one.zhiku_home)  # the first server's disk is not the second's

    second = Service(two, embedder)
    cited = second.search(me, "shared", "员工每年有几天带薪年假?")[0].chunk
    assert cited.page == 2 and "十五天带薪年假" in cited.text
    kb = second.kb("shared")
    path = source_file(two, kb, kb.document(cited.doc_id))  # what the viewer opens
    second.close()
    if store == "files":
        assert path is None
        return
    assert path is not None and path.is_relative_to(two.zhiku_home)
    assert path.read_bytes() == pdf
    image = render_pdf_page(path, cited.page, "员工每年享有十五天带薪年假,")
    assert (image.number, image.pages) == (2, 2)
    assert image.complete and image.found == "员工每年享有十五天带薪年假," and image.boxes
