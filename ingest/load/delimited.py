"""CSV and other delimited text: decoded like any text file (GBK included), the delimiter
sniffed, the rows rendered as one Markdown table under the header row."""

from __future__ import annotations

import csv
import io

from ingest._reasons import Rejection
from ingest.load.base import Loaded, LoadOptions, Page, SourceFile
from ingest.load.decode import decode_text
from ingest.load.sheet import render_table_section

_SNIFF_CHARS = 16384
_DELIMITERS = ",;\t|"


def load_csv(file: SourceFile, options: LoadOptions) -> Loaded:
    text = decode_text(file.data)
    if not text.strip():
        raise Rejection("blank")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:_SNIFF_CHARS], delimiters=_DELIMITERS
        )
    except csv.Error:
        dialect = csv.excel  # one column, or too irregular to tell: commas
    rows = csv.reader(io.StringIO(text, newline=""), dialect)
    body = render_table_section("", rows)
    if not body:
        raise Rejection("blank")
    return Loaded([file.doc(file.path.stem, [Page(None, body)], "markdown")])
