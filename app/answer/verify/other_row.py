"""`other_row` (GUARD_OTHER_ROW): a table row given for a question about another row, or about a
column the row leaves empty.

A spec table lists models A and B; asked for B's weight, a model that finds only A's weight
answers with A's row, and every word of it is in the documents. The table itself says what the
row is about: its label (the cell naming the row: a model, a city, a year) and its columns. When
the question names another row's label and not this row's, or names only columns whose cell in
this row is empty ("-", "/", "N/A"), the row answers a neighbouring question. Read from the
table's own structure, not learned and not tuned: a comparison that names both rows passes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from ingest.text import CJK, TABLE_SEPARATOR, is_table_row, table_cells

# a cell that states nothing ("无" is left out: it answers "does B have …?")
_EMPTY = frozenset({"", "-", "--", "—", "–", "/", "／", "n/a", "na", "tbd", "暂无", "未知", "不详"})
_NUMBER = re.compile(r"^[\d.,\s]+$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def is_empty(cell: str) -> bool:
    return _norm(cell).strip("*_ ") in _EMPTY


def names(question: str, label: str) -> bool:
    """Whether the question names `label`: a Chinese label of two characters or more anywhere in
    it, a Latin or mixed one ("X2", "AX3000", "Pro Max") as a whole word; a lone letter only as
    written ("B", not the b of "bluetooth")."""
    raw = unicodedata.normalize("NFKC", label).strip().strip("*_ ")
    if not raw or _NUMBER.match(raw):
        return False
    text = unicodedata.normalize("NFKC", question)
    if len(raw) == 1:
        if CJK.match(raw):
            return False
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(raw)}(?![A-Za-z0-9])", text) is not None
    if CJK.search(raw) and not re.search(r"[A-Za-z0-9]", raw):
        return raw in text
    pattern = rf"(?<![a-z0-9]){re.escape(raw.lower())}(?![a-z0-9])"
    return re.search(pattern, text.lower()) is not None


def table_around(text: str, row: str) -> list[str] | None:
    """The lines of the table in `text` that holds the line `row` (None when it is no table
    row of it)."""
    lines = text.split("\n")
    wanted = row.strip()
    for index, line in enumerate(lines):
        if line.strip() != wanted or not is_table_row(line):
            continue
        lo = index
        while lo > 0 and is_table_row(lines[lo - 1]):
            lo -= 1
        hi = index
        while hi + 1 < len(lines) and is_table_row(lines[hi + 1]):
            hi += 1
        return lines[lo : hi + 1]
    return None


def _label_column(rows: Sequence[list[str]]) -> int | None:
    """The column naming each row: the first whose cells are all filled, distinct and not bare
    numbers (a "序号" column of 1, 2, 3 names nothing a question would)."""
    width = min(len(r) for r in rows)
    for column in range(min(width, 2)):
        cells = [_norm(r[column]) for r in rows]
        if all(c and not _NUMBER.match(c) for c in cells) and len(set(cells)) == len(cells):
            return column
    return None


def answers_another_row(question: str, row: str, table: Sequence[str]) -> str | None:
    """The other row's label, or the empty column's name, the question asks about instead of
    what `row` states; None when `row` may answer it."""
    header: list[str] | None = None
    body = []
    for index, line in enumerate(table):
        if TABLE_SEPARATOR.match(line):
            continue
        if index + 1 < len(table) and TABLE_SEPARATOR.match(table[index + 1]):
            header = table_cells(line)
            continue
        body.append(table_cells(line))
    cells = table_cells(row)
    if len(body) >= 2 and cells in body:
        column = _label_column(body)
        if column is not None and column < len(cells) and not names(question, cells[column]):
            for other in body:  # a comparison that names this row too is asked of it
                if other != cells and names(question, other[column]):
                    return other[column]
    if header is not None and len(header) == len(cells):
        named = [i for i, name in enumerate(header) if i > 0 and names(question, name)]
        if named and all(is_empty(cells[i]) for i in named):
            return header[named[0]]
    return None


def answers_another_row_of(question: str, sentence: str, text: str) -> str | None:
    """`answers_another_row` for a sentence of `text`: None unless it is a row of a table there."""
    table = table_around(text, sentence) if is_table_row(sentence) else None
    return answers_another_row(question, sentence, table) if table else None
