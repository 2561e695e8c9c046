"""DOCX: headings (by paragraph style) and tables as Markdown, in document order."""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest._reasons import Rejection
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
    short,
)

_DOCX_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_DOCX_TITLE_STYLES = frozenset({"title", "标题"})


def load_docx(file: SourceFile, options: LoadOptions) -> Loaded:
    try:
        document = docx.Document(io.BytesIO(file.data))
    except Exception as exc:  # BadZipFile, KeyError (missing part), ValueError (not Word)
        raise Rejection("bad_docx", detail=short(exc)) from exc
    blocks: list[str] = []
    first_heading = ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            block = markdown_table([[cell.text for cell in row.cells] for row in item.rows])
        else:
            text = one_line(item.text)
            level = _docx_heading_level(item)
            if level and text and not first_heading:
                first_heading = text
            block = f"{'#' * level} {text}" if level and text else normalize_text(item.text)
        if block.strip():
            blocks.append(block)
    text = require_text(normalize_text("\n\n".join(blocks)))
    title = one_line(document.core_properties.title or "") or first_heading or first_line(text)
    return Loaded([file.doc(title[:TITLE_MAX], [Page(None, text)], "markdown")])


def _docx_heading_level(paragraph: Paragraph) -> int:
    try:
        name = (paragraph.style.name or "").strip() if paragraph.style else ""
    except Exception:  # a paragraph pointing at a missing style is just a paragraph
        return 0
    if name.lower() in _DOCX_TITLE_STYLES:
        return 1
    match = _DOCX_HEADING_STYLE.match(name)
    return int(match.group(1)) if match else 0
