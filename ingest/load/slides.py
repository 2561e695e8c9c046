"""PowerPoint decks (.pptx): one page per slide, its title as the heading, text boxes and
tables in reading order (top to bottom, left to right), the speaker notes after them."""

from __future__ import annotations

import io
from collections.abc import Iterator

from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.shapes.base import BaseShape

from ingest._reasons import Rejection
from ingest.load.base import (
    TITLE_MAX,
    Loaded,
    LoadOptions,
    Page,
    SourceFile,
    markdown_table,
    normalize_text,
    one_line,
)

NOTES_HEADING = "备注 Notes"


def load_pptx(file: SourceFile, options: LoadOptions) -> Loaded:
    try:
        deck = Presentation(io.BytesIO(file.data))
    except Exception as exc:
        raise Rejection("bad_office", kind="PPTX", detail=str(exc)[:160]) from exc
    pages: list[Page] = []
    first_title = ""
    slides = list(deck.slides)
    for number, slide in enumerate(slides, start=1):
        title_shape = slide.shapes.title
        title = one_line(title_shape.text_frame.text) if title_shape is not None else ""
        first_title = first_title or title
        blocks = [f"# {title}"] if title else []
        for shape in _reading_order(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            block = _shape_text(shape)
            if block:
                blocks.append(block)
        notes = _notes(slide)
        if notes:
            blocks += [f"## {NOTES_HEADING}", notes]
        text = normalize_text("\n\n".join(blocks))
        if text.strip():
            pages.append(Page(number, text))
        options.page_done(number, len(slides))
    if not pages:
        raise Rejection("blank")
    title = one_line(deck.core_properties.title or "") or first_title
    return Loaded([file.doc(title[:TITLE_MAX], pages, "markdown")])


def _reading_order(shapes: object) -> Iterator[BaseShape]:
    def key(shape: BaseShape) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=key):  # type: ignore[call-overload]
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _shape_text(shape: BaseShape) -> str:
    if getattr(shape, "has_table", False) and shape.has_table:  # type: ignore[attr-defined]
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]  # type: ignore[attr-defined]
        return markdown_table(rows)
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:  # type: ignore[attr-defined]
        lines = [one_line(p.text) for p in shape.text_frame.paragraphs]  # type: ignore[attr-defined]
        return "\n".join(line for line in lines if line)
    return ""


def _notes(slide: object) -> str:
    if not getattr(slide, "has_notes_slide", False):
        return ""
    frame = slide.notes_slide.notes_text_frame  # type: ignore[attr-defined]
    return normalize_text(frame.text) if frame is not None else ""
