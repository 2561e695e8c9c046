"""A Chinese-aware recursive splitter that knows about headings and tables.

LangChain's RecursiveCharacterTextSplitter cuts by separator lists but has no notion of a table
row or a heading, loses character offsets when separators repeat, and does not know Chinese
sentence ends; citations here must point at exact offsets, so the splitter is our own.

Each page is scanned once into candidate break points with a strength, then cut greedily: a chunk
ends at the strongest break inside its last half, preferring the latest among equals.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from dataclasses import dataclass

from ingest.load import LoadedDoc, Structure
from ingest.text import CLAUSE_END as _CLAUSE_END
from ingest.text import SENTENCE_END as _SENTENCE_END
from ingest.text import TABLE_SEPARATOR as _TABLE_SEPARATOR
from ingest.text import is_table_row as _is_table_row

# Break strengths: higher is a better place to end a chunk.
BEFORE_HEADING = 5
BLOCK = 4
SENTENCE = 3  # also: a newline inside a paragraph, a boundary between table rows
CLAUSE = 2
NEVER = -1  # right after a heading or a table header: they stay with what follows

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# Plain text and PDFs have no markup, but Chinese documents number their sections: "第二章 …",
# "2.1 …", "2.1.1 …", "一、…", "（一）…". A short line starting so is a heading (its level from
# the kind of numbering) and gives the chunks under it their section path, which the prompt
# label and the embedding text carry: a passage cut from the middle of "2.1.1 数据来源与清洗策略"
# still says what it is about. "1. …" alone is left out: it is far more often a list item.
_NUMBERED_HEADING = re.compile(
    r"^\s*(?:(?P<chapter>第[一二三四五六七八九十百零〇\d]{1,4}[章部篇])"
    r"|(?P<section>第[一二三四五六七八九十百零〇\d]{1,4}节)"
    r"|(?P<dotted>\d{1,2}(?:\.\d{1,2}){1,3})(?=[\s、:：])(?!\s*[万亿千百十元%倍个岁年月日号])"
    r"|(?P<chinese>[一二三四五六七八九十]{1,3}、)"
    r"|(?P<paren>[（(][一二三四五六七八九十]{1,3}[）)]))"
    r"\s*[:：、.]?\s*(?P<title>[^\s\d].*)$"
)
_HEADING_MAX_CHARS = 40
_NOT_A_HEADING_END = re.compile(r"[。，,；;：:！？!?、]$")


def _numbered_heading(line: str) -> int:
    """The section level of a numbered heading line of plain text, 0 when it is not one."""
    text = line.strip()
    if len(text) > _HEADING_MAX_CHARS or _NOT_A_HEADING_END.search(text):
        return 0
    match = _NUMBERED_HEADING.match(text)
    if not match or not match.group("title").strip():
        return 0
    # only the order matters: 第一章 > 第一节 > 一、 > （一）, and 第二部分 > 2.1 > 2.1.1
    for level, group in enumerate(("chapter", "section", "chinese", "paren"), start=1):
        if match.group(group):
            return level
    return match.group("dotted").count(".") + 1


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # content hash: the same text at the same place keeps the same id
    doc_id: str
    ordinal: int
    page: int | None  # the page number shown to users (PDF), None without pages
    page_index: int  # position of the page in the document
    start: int  # character offsets into the page text
    end: int
    text: str  # the passage; a table continued from an earlier chunk repeats its header first
    headings: tuple[str, ...]
    kind: str  # "text", "table", or "ocr" (read from a page image by OCR)


@dataclass(frozen=True)
class _Line:
    start: int
    end: int  # exclusive, without the newline
    text: str


@dataclass(frozen=True)
class _Table:
    start: int
    header_end: int  # end of the header row (and its separator row, if any)
    end: int


def _lines(text: str) -> list[_Line]:
    lines, pos = [], 0
    for raw in text.split("\n"):
        lines.append(_Line(pos, pos + len(raw), raw))
        pos += len(raw) + 1
    return lines


def _scan(
    text: str, structure: Structure
) -> tuple[dict[int, int], list[_Table], list[tuple[int, int, str]]]:
    """Break strengths by offset, the tables, and the headings as (offset, level, title)."""
    breaks: dict[int, int] = {}
    tables: list[_Table] = []
    headings: list[tuple[int, int, str]] = []

    def mark(offset: int, strength: int) -> None:
        current = breaks.get(offset)
        if current is None or (current != NEVER and (strength == NEVER or strength > current)):
            breaks[offset] = strength

    lines = _lines(text)
    i = 0
    previous_blank = True
    while i < len(lines):
        line = lines[i]
        if not line.text.strip():
            previous_blank = True
            i += 1
            continue
        heading = _MD_HEADING.match(line.text) if structure == "markdown" else None
        level = len(heading.group(1)) if heading else 0
        if structure == "plain":
            level = _numbered_heading(line.text)
        if level:
            title = heading.group(2).strip() if heading else line.text.strip()
            headings.append((line.start, level, title))
            mark(line.start, BEFORE_HEADING)
            mark(line.end, NEVER)
            mark(line.end + 1, NEVER)
            previous_blank = False
            i += 1
            continue
        if _is_table_row(line.text):
            j = i
            while j + 1 < len(lines) and _is_table_row(lines[j + 1].text):
                j += 1
            if j > i:  # a table needs two rows at least; one piped line is just text
                header_last = i + 1 if _TABLE_SEPARATOR.match(lines[i + 1].text) else i
                tables.append(_Table(line.start, lines[header_last].end, lines[j].end))
                mark(line.start, BLOCK)
                for row in lines[i : j + 1]:
                    mark(row.end, SENTENCE)
                    mark(row.end + 1, SENTENCE)
                # a chunk never ends on the header: the rows after it need it to be understood
                for row in lines[i : header_last + 1]:
                    breaks[row.end] = breaks[row.end + 1] = NEVER
                mark(lines[j].end, BLOCK)
                mark(lines[j].end + 1, BLOCK)
                i = j + 1
                previous_blank = False
                continue
        # a paragraph line: a blank line before it or a new line after text both break here
        mark(line.start, BLOCK if previous_blank else SENTENCE)
        for match in _SENTENCE_END.finditer(line.text):
            mark(line.start + match.end(), SENTENCE)
        for match in _CLAUSE_END.finditer(line.text):
            mark(line.start + match.end(), CLAUSE)
        mark(line.end, SENTENCE)
        previous_blank = False
        i += 1
    return breaks, tables, headings


def _heading_path(headings: list[tuple[int, int, str]], offset: int) -> tuple[str, ...]:
    path: list[tuple[int, str]] = []
    for start, level, title in headings:
        if start > offset:
            break
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
    return tuple(t for _, t in path)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_text(
    text: str, size: int, overlap: int, structure: Structure = "plain"
) -> list[tuple[int, int, str, tuple[str, ...], str]]:
    """Cut one page into (start, end, passage text, heading path, kind) tuples."""
    if size < 20:
        raise ValueError("chunk size must be at least 20 characters")
    overlap = max(0, min(overlap, size // 2))
    breaks, tables, headings = _scan(text, structure)
    positions = sorted(p for p, s in breaks.items() if s > 0)
    table_starts = [t.start for t in tables]
    begin, end_of_text = _trim(text, 0, len(text))
    pieces: list[tuple[int, int, str, tuple[str, ...], str]] = []

    def table_at(offset: int) -> _Table | None:
        k = bisect_left(table_starts, offset + 1) - 1
        if k >= 0 and tables[k].start <= offset < tables[k].end:
            return tables[k]
        return None

    pos = begin
    while pos < end_of_text:
        table = table_at(pos)
        header = ""
        if table and pos >= table.header_end:
            header = text[table.start : table.header_end] + "\n"
        budget = size - len(header)
        if end_of_text - pos <= budget:
            cut, strength = end_of_text, BLOCK
        else:
            lo = bisect_left(positions, pos + max(1, budget // 2))
            hi = bisect_left(positions, pos + budget + 1)
            best = max((breaks[p], p) for p in positions[lo:hi]) if hi > lo else None
            if best is None:  # nothing to cut at in the last half: take the last earlier break
                earlier = positions[bisect_left(positions, pos + 1) : hi]
                best = (breaks[earlier[-1]], earlier[-1]) if earlier else (0, pos + budget)
            strength, cut = best
        start, stop = _trim(text, pos, cut)
        if stop > start:
            kind = "table" if table_at(start) or table_at(stop - 1) else "text"
            passage = header + text[start:stop] if header else text[start:stop]
            pieces.append((start, stop, passage, _heading_path(headings, start), kind))
        next_pos = cut
        if overlap and strength <= SENTENCE and not table_at(cut - 1):
            # restart at the earliest sentence (else clause) boundary inside the overlap window
            window = [p for p in positions[bisect_left(positions, cut - overlap) :] if p < cut]
            for wanted in (SENTENCE, CLAUSE):
                candidates = [p for p in window if breaks[p] >= wanted and p > pos]
                if candidates:
                    next_pos = candidates[0]
                    break
        pos = max(next_pos, pos + 1) if next_pos < cut else cut
    return pieces


def chunk_id(doc_id: str, page: int | None, start: int, text: str) -> str:
    key = f"{doc_id}\x00{page}\x00{start}\x00{text}".encode()
    return hashlib.sha256(key).hexdigest()[:24]


def chunk_document(doc: LoadedDoc, size: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for page_index, page in enumerate(doc.pages):
        for start, end, passage, path, kind in split_text(page.text, size, overlap, doc.structure):
            if page.ocr:
                kind = "ocr"  # its line boxes are in the page's layout
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(doc.doc_id, page.number, start, passage),
                    doc_id=doc.doc_id,
                    ordinal=len(chunks),
                    page=page.number,
                    page_index=page_index,
                    start=start,
                    end=end,
                    text=passage,
                    headings=path,
                    kind=kind,
                )
            )
    return chunks
