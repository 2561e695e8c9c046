"""Excel workbooks (.xlsx): each sheet a section, its rows a Markdown table under the header row,
so the chunker keeps rows whole and repeats the header in every chunk a table continues into.

Read in openpyxl's read-only (streaming) mode: a 50,000-row sheet is never held as cell objects.
That mode does not report merged cells, so their ranges are read from the sheet's XML with a
streaming parser, and a merged value is repeated in every cell it spans (each row stays a
complete record).
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import zipfile
from collections.abc import Iterator

import openpyxl
from lxml import etree
from openpyxl.utils.cell import range_boundaries

from ingest._reasons import Rejection
from ingest.load.base import (
    TITLE_MAX,
    Loaded,
    LoadOptions,
    Page,
    SourceFile,
    normalize_text,
    one_line,
    table_cell,
)

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_MAX_MERGE_CELLS = 100_000  # a merged range larger than this is kept in its first cell only


def load_xlsx(file: SourceFile, options: LoadOptions) -> Loaded:
    try:
        book = openpyxl.load_workbook(
            io.BytesIO(file.data), read_only=True, data_only=True, keep_links=False
        )
    except Exception as exc:
        raise Rejection("bad_office", kind="XLSX", detail=str(exc)[:160]) from exc
    try:
        merges = _merged_ranges(file.data)
        pages: list[Page] = []
        names = book.sheetnames
        for index, name in enumerate(names, start=1):
            rows = _sheet_rows(book[name], merges.get(name, []))
            text = render_table_section(name, rows)
            if text:
                pages.append(Page(None, text))
            options.page_done(index, len(names))
        title = one_line(book.properties.title or "")[:TITLE_MAX] if book.properties else ""
    finally:
        book.close()
    if not pages:
        raise Rejection("blank")
    return Loaded([file.doc(title or file.path.stem, pages, "markdown")])


def render_table_section(heading: str, rows: Iterator[list[str]]) -> str:
    """A heading and the rows as one Markdown table; the first non-empty row is the header.
    Empty rows and columns empty in every row are left out."""
    kept: list[list[str]] = []
    width = 0
    for row in rows:
        cells = [table_cell(c) for c in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        width = max(width, len(cells))
        kept.append(cells)
    if not kept:
        return ""
    used = [any(i < len(r) and r[i] for r in kept) for i in range(width)]
    columns = [i for i, u in enumerate(used) if u]
    table: list[str] = []
    for n, row in enumerate(kept):
        cells = [row[i] if i < len(row) else "" for i in columns]
        table.append("| " + " | ".join(cells) + " |")
        if n == 0:
            table.append("|" + "---|" * len(columns))
    body = "\n".join(table)
    return normalize_text(f"## {one_line(heading)}\n\n{body}" if heading else body)


def _sheet_rows(sheet: object, merges: list[tuple[int, int, int, int]]) -> Iterator[list[str]]:
    # (min_col, min_row, max_col, max_row) -> value of the top-left cell, filled in as rows pass
    starting: dict[int, list[tuple[int, int, int, int]]] = {}
    for box in merges:
        starting.setdefault(box[1], []).append(box)
    active: list[tuple[tuple[int, int, int, int], str]] = []
    for row_number, values in enumerate(sheet.iter_rows(values_only=True), start=1):  # type: ignore[attr-defined]
        row = [_cell_text(v) for v in values]
        for box in starting.pop(row_number, []):
            min_col = box[0]
            active.append((box, row[min_col - 1] if min_col - 1 < len(row) else ""))
        active = [(box, value) for box, value in active if box[3] >= row_number]
        for (min_col, _, max_col, _), value in active:
            if len(row) < max_col:
                row += [""] * (max_col - len(row))
            for col in range(min_col - 1, max_col):
                row[col] = value
        yield row


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="minutes").removesuffix(" 00:00")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _merged_ranges(data: bytes) -> dict[str, list[tuple[int, int, int, int]]]:
    """Merged ranges per sheet name, from the workbook XML (streamed, nothing kept but them)."""
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name, part in _sheet_parts(archive):
            boxes: list[tuple[int, int, int, int]] = []
            try:
                with archive.open(part) as stream:
                    for _, element in etree.iterparse(stream, events=("end",)):
                        if element.tag == f"{_NS}mergeCell":
                            box = range_boundaries(element.get("ref", ""))
                            if all(box) and _area(box) <= _MAX_MERGE_CELLS:  # type: ignore[arg-type]
                                boxes.append(box)  # type: ignore[arg-type]
                        if element.tag != f"{_NS}mergeCells":
                            element.clear()
            except (KeyError, etree.XMLSyntaxError, ValueError, TypeError):
                continue  # no merges known for this sheet: its cells are read as they are
            if boxes:
                out[name] = boxes
    return out


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


def _sheet_parts(archive: zipfile.ZipFile) -> Iterator[tuple[str, str]]:
    try:
        book = etree.fromstring(archive.read("xl/workbook.xml"))
        rels = etree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, etree.XMLSyntaxError):
        return
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels}
    for sheet in book.iter(f"{_NS}sheet"):
        target = targets.get(sheet.get(f"{_REL_NS}id"), "")
        if target:
            part = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
            yield sheet.get("name", ""), posixpath.normpath(part)
