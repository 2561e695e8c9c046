"""Loaders: a file on disk becomes one or more `LoadedDoc`s, or a `Rejection` with its reason.

Every format is reduced to NFKC-normalised text per page. Formats with real structure (Markdown,
DOCX, HTML, spreadsheets, slides) are rendered as Markdown (`#` headings, `|` table rows) so one
chunker handles them all; plain text, PDF and OCR keep their lines as they are.

One module per format; adding a format is adding a module and a line to `_FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest._reasons import Rejection
from ingest.load import delimited, docx, html, image, jsonl, pdf, sheet, slides, text
from ingest.load.base import (
    Loaded,
    LoadedDoc,
    LoadOptions,
    OcrLine,
    OcrMode,
    Page,
    PageLayout,
    PageProgress,
    SourceFile,
    Structure,
    path_doc_id,
    read_bounded,
    short,
)

Loader = Callable[[SourceFile, LoadOptions], Loaded]


@dataclass(frozen=True)
class Format:
    loader: Loader
    structure: Structure  # how the chunker reads its pages (also when a reindex reloads them)
    failure: str = "unreadable"  # the rejection code when the library crashes on a file


_FORMATS: dict[str, Format] = {
    "pdf": Format(pdf.load_pdf, "plain", "broken_pdf"),
    "txt": Format(text.load_txt, "plain"),
    "md": Format(text.load_markdown, "markdown"),
    "docx": Format(docx.load_docx, "markdown", "bad_docx"),
    "html": Format(html.load_html, "markdown"),
    "jsonl": Format(jsonl.load_jsonl, "plain"),
    "xlsx": Format(sheet.load_xlsx, "markdown", "bad_office"),
    "csv": Format(delimited.load_csv, "markdown"),
    "pptx": Format(slides.load_pptx, "markdown", "bad_office"),
    "image": Format(image.load_image, "plain", "bad_image"),
}

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".jsonl": "jsonl",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".csv": "csv",
    ".pptx": "pptx",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".webp": "image",
    ".tif": "image",
    ".tiff": "image",
}


def structure_of(doc_type: str) -> Structure:
    """How a stored document of this type is chunked (a reindex reloads it from its pages)."""
    fmt = _FORMATS.get(doc_type)
    return fmt.structure if fmt else "plain"


def load_file(
    path: Path,
    max_bytes: int,
    max_pdf_pages: int = 3000,
    *,
    ocr: OcrMode = "auto",
    on_page: PageProgress | None = None,
) -> Loaded:
    """Load one file; raise `Rejection` when nothing of it can be ingested. Never reads more
    than `max_bytes` into memory (the size is checked before opening). `on_page(done, total)`
    is told of every page finished where pages are slow (OCR)."""
    doc_type = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if doc_type is None:
        raise Rejection(
            "unsupported", suffix=path.suffix, supported=", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    fmt = _FORMATS[doc_type]
    data = read_bounded(path, max_bytes)
    file = SourceFile(path=path, resolved=str(path.resolve()), data=data, doc_type=doc_type)
    options = LoadOptions(max_pdf_pages=max_pdf_pages, ocr=ocr, on_page=on_page)
    try:
        return fmt.loader(file, options)
    except Rejection:
        raise
    except Exception as exc:  # a library crash on a hostile file must not stop a whole batch
        raise Rejection(fmt.failure, detail=short(exc), kind=doc_type.upper()) from exc


__all__ = [
    "SUPPORTED_SUFFIXES",
    "Loaded",
    "LoadedDoc",
    "OcrLine",
    "OcrMode",
    "Page",
    "PageLayout",
    "Structure",
    "load_file",
    "path_doc_id",
    "structure_of",
]
