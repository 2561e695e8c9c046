"""An answer as Markdown for notes and exported conversations: the answer, the evidence quoted
under it, and its sources. Plain text only, so the conversation store and the web app share it
without the store reaching up into the UI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.answer import AnswerResult, EvidenceQuote, Passage

EVIDENCE_HEADING = "原文"


def file_name(source: str) -> str:
    """The file a source came from: a JSONL record's source is `file.jsonl#record`; a web
    page is its address without the scheme."""
    if source.startswith(("http://", "https://")):
        return source.split("://", 1)[1]
    return Path(source.split("#", 1)[0]).name


def source_line(number: int, passage: Passage) -> str:
    page = f",第 {passage.page} 页" if passage.page is not None else ""
    return f"[{number}] 《{passage.title}》 {file_name(passage.source)}{page}"


def quote_groups(quotes: Sequence[EvidenceQuote]) -> list[list[EvidenceQuote]]:
    """The quotes, consecutive sentences of one passage together, in order."""
    groups: list[list[EvidenceQuote]] = []
    for quote in quotes:
        if groups and groups[-1][-1].group == quote.group:
            groups[-1].append(quote)
        else:
            groups.append([quote])
    return groups


def evidence_markdown(quotes: Sequence[EvidenceQuote]) -> list[str]:
    """The evidence as Markdown lines: a heading, then one blockquote per group of sentences,
    each sentence with its marker."""
    if not quotes:
        return []
    lines = [f"**{EVIDENCE_HEADING}**", ""]
    for group in quote_groups(quotes):
        text = "".join(f"{' '.join(q.text.split())}[{q.marker}]" for q in group)
        lines += [f"> {text}", ""]
    return lines


def export_markdown(question: str, result: AnswerResult) -> str:
    """An answer with its evidence and sources, for copying into notes."""
    lines = [f"**问:** {question}", ""]
    if result.refused and result.refusal_reason == "small_talk":
        lines.append(result.answer)
    elif result.refused:
        lines.append("知识库中没有找到相关内容。")
    elif result.answer:
        lines.append(result.answer)
    else:
        lines.append("(仅检索模式:以下为最相关的段落)")
    if result.evidence_quotes and not result.refused:
        lines += ["", *evidence_markdown(result.evidence_quotes)]
    if result.citations:
        lines += ["", "**来源**", ""]
        for citation in result.citations:
            lines.append(source_line(citation.number, citation.passage))
            quote = " ".join(citation.quote.split())
            if quote:
                lines.append(f"> {quote}")
            lines.append("")
    lines.append(f"*由 知库 生成 · {result.backend.label_zh}*")
    return "\n".join(lines).rstrip() + "\n"
