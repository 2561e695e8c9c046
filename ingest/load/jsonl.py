"""JSON Lines corpora: one document per `{"id", "title", "text"}` record; bad lines are skipped
with their line number and reason, the rest is kept."""

from __future__ import annotations

import hashlib
import json

from ingest._reasons import Rejection
from ingest.load.base import (
    TITLE_MAX,
    Loaded,
    LoadedDoc,
    LoadOptions,
    Page,
    SourceFile,
    first_line,
    normalize_text,
    one_line,
)
from ingest.load.decode import decode_text


def load_jsonl(file: SourceFile, options: LoadOptions) -> Loaded:
    text = _decode_jsonl(file.data)
    docs: list[LoadedDoc] = []
    skipped: list[Rejection] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            doc = _jsonl_record(file, line)
            if doc.doc_id in first_line_of:
                raise ValueError(
                    f"duplicate id {doc.doc_id!r} (first on line {first_line_of[doc.doc_id]})"
                )
        except ValueError as exc:
            skipped.append(Rejection("bad_jsonl", line=number, detail=str(exc)))
            continue
        first_line_of[doc.doc_id] = number
        docs.append(doc)
    if not docs:
        if skipped:
            raise skipped[0]
        raise Rejection("blank")
    return Loaded(docs, skipped)


def _decode_jsonl(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # JSON Lines is UTF-8 by definition
    except UnicodeDecodeError:
        return decode_text(data)  # exported by a tool that did not know that


def _jsonl_record(file: SourceFile, line: str) -> LoadedDoc:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg}, column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    doc_id = _jsonl_id(record.get("id"))
    raw_text = record.get("text")
    if not isinstance(raw_text, str):
        raise ValueError("missing or non-string 'text'")
    text = normalize_text(raw_text)
    if not text.strip():
        raise ValueError("empty 'text'")
    raw_title = record.get("title")
    if raw_title is not None and not isinstance(raw_title, str):
        raise ValueError("'title' must be a string")
    title = one_line(raw_title or "")[:TITLE_MAX] or first_line(text) or doc_id
    return LoadedDoc(
        doc_id=doc_id,
        title=title,
        source=f"{file.resolved}#{doc_id}",
        doc_type="jsonl",
        sha256=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
        size=len(line.rstrip("\r").encode("utf-8")),
        pages=(Page(None, text),),
        structure="plain",
    )


def _jsonl_id(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError("missing 'id' (a string or an integer)")
    doc_id = str(raw)
    if not doc_id.strip():
        raise ValueError("empty 'id'")
    return doc_id
