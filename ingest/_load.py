"""Compatibility: the loaders live in the package `ingest.load` (one module per format)."""

from ingest.load import (
    SUPPORTED_SUFFIXES,
    Loaded,
    LoadedDoc,
    OcrLine,
    Page,
    PageLayout,
    Structure,
    load_file,
    path_doc_id,
    structure_of,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Loaded",
    "LoadedDoc",
    "OcrLine",
    "Page",
    "PageLayout",
    "Structure",
    "load_file",
    "path_doc_id",
    "structure_of",
]
