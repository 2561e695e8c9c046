"""What every loader shares: the document types, the bounded read and text normalisation."""

from __future__ import annotations

import hashlib
import re
import stat
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ingest._reasons import Rejection

Structure = Literal["markdown", "plain"]
OcrMode = Literal["auto", "off"]

TITLE_MAX = 80
_MIB = 1024 * 1024


@dataclass(frozen=True)
class OcrLine:
    """One line recognised on a page image: where its text sits in the page text and where
    it sits on the page (pixels of the rendered image, top-left origin)."""

    start: int
    end: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    score: float


@dataclass(frozen=True)
class PageLayout:
    """How a page's text was obtained when it was not read from a text layer."""

    source: Literal["ocr"]
    width: int  # of the image the boxes refer to
    height: int
    lines: tuple[OcrLine, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "lines": [[ln.start, ln.end, *ln.box, round(ln.score, 3)] for ln in self.lines],
        }

    def lines_between(self, start: int, end: int) -> tuple[OcrLine, ...]:
        """The lines a passage at [start, end) of the page text was read from: a citation's
        regions on the page image."""
        return tuple(ln for ln in self.lines if ln.start < end and ln.end > start)

    @classmethod
    def from_json(cls, data: dict) -> PageLayout:
        lines = tuple(
            OcrLine(int(s), int(e), (int(x0), int(y0), int(x1), int(y1)), float(score))
            for s, e, x0, y0, x1, y1, score in data.get("lines", [])
        )
        return cls("ocr", int(data.get("width", 0)), int(data.get("height", 0)), lines)


@dataclass(frozen=True)
class Page:
    number: int | None  # 1-based page of a PDF or slide of a deck; None without pages
    text: str  # NFKC-normalised
    # set when the text was recognised from an image (OCR); compare=False keeps equality about
    # the text, which is what a reader of the page gets
    layout: PageLayout | None = field(default=None, compare=False)

    @property
    def ocr(self) -> bool:
        return self.layout is not None and self.layout.source == "ocr"


@dataclass(frozen=True)
class LoadedDoc:
    doc_id: str  # the record id for JSONL, else derived from the resolved path
    title: str
    source: str  # resolved path; for a JSONL record "path#id"
    doc_type: str  # a value of SUPPORTED_SUFFIXES
    sha256: str  # of the file bytes; for a JSONL record, of the record
    size: int  # bytes of the file or record
    pages: tuple[Page, ...]
    structure: Structure


@dataclass(frozen=True)
class Loaded:
    docs: list[LoadedDoc]
    # records skipped inside an otherwise usable file (a bad JSONL line), each with its reason
    skipped: list[Rejection] = field(default_factory=list)


# Called once per page a loader has finished (PDF pages, OCR pages, slides): (done, total).
PageProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadOptions:
    max_pdf_pages: int = 3000
    ocr: OcrMode = "auto"
    on_page: PageProgress | None = None

    def page_done(self, done: int, total: int) -> None:
        if self.on_page is not None:
            self.on_page(done, total)


def path_doc_id(path: Path) -> str:
    """Stable across edits of the file, so an update replaces the document it updates."""
    return hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SourceFile:
    path: Path
    resolved: str
    data: bytes
    doc_type: str

    def doc(self, title: str, pages: Sequence[Page], structure: Structure) -> LoadedDoc:
        return LoadedDoc(
            doc_id=path_doc_id(self.path),
            title=title or self.path.stem,
            source=self.resolved,
            doc_type=self.doc_type,
            sha256=hashlib.sha256(self.data).hexdigest(),
            size=len(self.data),
            pages=tuple(pages),
            structure=structure,
        )


def read_bounded(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            # opening a FIFO or device would block or never end
            raise Rejection("unreadable", detail="not a regular file")
        if st.st_size == 0:
            raise Rejection("empty")
        if st.st_size > max_bytes:
            raise Rejection("too_large", size_mb=st.st_size / _MIB, limit_mb=max_bytes / _MIB)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise Rejection("unreadable", detail=exc.strerror or short(exc)) from exc
    if len(data) > max_bytes:
        raise Rejection("too_large", size_mb=len(data) / _MIB, limit_mb=max_bytes / _MIB)
    if not data:
        raise Rejection("empty")
    return data


def short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# C0 and C1 controls except \t and \n; \r is turned into \n before this runs
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFKC (PDF fonts map 大 to the Kangxi radical ⼤), one newline convention, no controls,
    no trailing spaces, at most one blank line in a row, no blank lines around."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n")


def one_line(text: str) -> str:
    return " ".join(normalize_text(text).split())


def first_line(text: str) -> str:
    for line in text.split("\n"):
        line = " ".join(line.split())
        if any(ch.isalpha() for ch in line):  # not a lone page number
            return line[:TITLE_MAX].rstrip()
    return ""


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def first_heading(markdown: str) -> str:
    match = _MD_HEADING.search(markdown)
    return one_line(match.group(1))[:TITLE_MAX] if match else ""


def require_text(text: str) -> str:
    if not text.strip():
        raise Rejection("blank")
    return text


def markdown_table(rows: list[list[str]]) -> str:
    """Rows as a Markdown table, the first row its header; the chunker never cuts such a table
    mid-row and repeats its header in every chunk it continues into."""
    cells = [[table_cell(text) for text in row] for row in rows if row]
    if not cells:
        return ""
    width = max(len(row) for row in cells)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * width)
    return "\n".join(lines)


def table_cell(text: str) -> str:
    return one_line(text).replace("|", "\\|")
