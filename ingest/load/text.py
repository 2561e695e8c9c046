"""Plain text and Markdown: decoded, normalised, one page."""

from __future__ import annotations

from ingest.load.base import (
    Loaded,
    LoadOptions,
    Page,
    SourceFile,
    first_heading,
    first_line,
    normalize_text,
    require_text,
)
from ingest.load.decode import decode_text


def load_txt(file: SourceFile, options: LoadOptions) -> Loaded:
    text = require_text(normalize_text(decode_text(file.data)))
    return Loaded([file.doc(first_line(text), [Page(None, text)], "plain")])


def load_markdown(file: SourceFile, options: LoadOptions) -> Loaded:
    text = require_text(normalize_text(decode_text(file.data)))
    title = first_heading(text) or first_line(text)
    return Loaded([file.doc(title, [Page(None, text)], "markdown")])
