"""Markdown and HTML for the web app: escaping, citation links, answers exported as Markdown.

Document text is never rendered as HTML: it goes through `html.escape` into markup written here,
or through `escape_markdown` when it is part of an answer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app._passages import Passage
    from app._rag import AnswerResult


# Characters that would let text become a link, an image, raw HTML or a formula; the rest of
# Markdown (lists, bold, code) stays, since answers use it.
_MARKDOWN_ACTIVE = re.compile(r"([\\\[\]<>&$`])")
_CITATION = re.compile(r"\[(\d{1,3})\]")
_QUOTE_LINE = re.compile(r"(?m)^\\> ")


def escape_markdown(text: str) -> str:
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text)


_BARE_URL = re.compile(r"\bhttps?://[^\s<>()`,;,;。、)]+")


def message_markdown(text: str) -> str:
    """A library message (`LlmError.zh`, `Notice.zh`) for Markdown: its `code` stays, and a
    bare URL is closed off, since Markdown would otherwise run the link into the Chinese text
    that follows it without a space."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans only
        parts[i] = _BARE_URL.sub(lambda m: f"<{m.group(0)}>", parts[i])
    return "`".join(parts)


def anchor_id(turn: int | str, number: int) -> str:
    return f"zk-src-{turn}-{number}"


def answer_markdown(text: str, turn: int | str, numbers: Sequence[int]) -> str:
    """The answer as Markdown whose `[n]` markers link to source card n of this turn."""
    known = set(numbers)
    parts: list[str] = []
    position = 0
    for match in _CITATION.finditer(text):
        parts.append(escape_markdown(text[position : match.start()]))
        number = int(match.group(1))
        marker = escape_markdown(match.group(0))
        parts.append(f"[{marker}](#{anchor_id(turn, number)})" if number in known else marker)
        position = match.end()
    parts.append(escape_markdown(text[position:]))
    # a line opening with "> " is the evidence quoted under the answer: a blockquote, no markup
    return _QUOTE_LINE.sub("> ", "".join(parts))


def file_name(source: str) -> str:
    """The file a source came from: a JSONL record's source is `file.jsonl#record`."""
    return Path(source.split("#", 1)[0]).name


def highlight(text: str, lo: int, hi: int) -> str:
    lo, hi = max(0, min(lo, len(text))), max(0, min(hi, len(text)))
    if hi <= lo:
        return html.escape(text)
    return (
        html.escape(text[:lo])
        + "<mark>"
        + html.escape(text[lo:hi])
        + "</mark>"
        + html.escape(text[hi:])
    )


def _source_line(number: int, passage: Passage) -> str:
    page = f",第 {passage.page} 页" if passage.page is not None else ""
    return f"[{number}] 《{passage.title}》 {file_name(passage.source)}{page}"


def export_markdown(question: str, result: AnswerResult) -> str:
    """An answer with its sources, for copying into notes."""
    lines = [f"**问:** {question}", ""]
    if result.refused and result.refusal_reason == "small_talk":
        lines.append(result.answer)
    elif result.refused:
        lines.append("知识库中没有找到相关内容。")
    elif result.answer:
        lines.append(result.answer)
    else:
        lines.append("(仅检索模式:以下为最相关的段落)")
    if result.citations:
        lines += ["", "**来源**", ""]
        for citation in result.citations:
            lines.append(_source_line(citation.number, citation.passage))
            quote = " ".join(citation.quote.split())
            if quote:
                lines.append(f"> {quote}")
            lines.append("")
    lines.append(f"*由 知库 生成 · {result.backend.label_zh}*")
    return "\n".join(lines).rstrip() + "\n"


def timing_line(result: AnswerResult) -> str:
    t = result.timings
    parts = [result.backend.label_zh, f"检索 {t.get('retrieval_s', 0):.2f} 秒"]
    if "first_token_s" in t:
        parts.append(f"首字 {t['first_token_s']:.1f} 秒")
    parts.append(f"共 {t.get('total_s', 0):.1f} 秒")
    return " · ".join(parts)
