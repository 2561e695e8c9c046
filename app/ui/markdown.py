"""Markdown and HTML for the web app: escaping, citation links, the evidence under an answer.

Document text is never rendered as HTML: it goes through `html.escape` into markup written here,
or through `escape_markdown` when it is part of an answer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app._export import export_markdown as export_markdown
from app._export import file_name as file_name
from app._export import quote_groups

if TYPE_CHECKING:
    from app.answer import AnswerResult, EvidenceQuote


# Characters that would let text become a link, an image, raw HTML or a formula; the rest of
# Markdown (lists, bold, code) stays, since answers use it.
_MARKDOWN_ACTIVE = re.compile(r"([\\\[\]<>&$`])")
_CITATION = re.compile(r"\[(\d{1,3})\]")


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
    return "".join(parts)


def evidence_block_markdown(
    quotes: Sequence[EvidenceQuote], turn: int | str, numbers: Sequence[int]
) -> str:
    """The evidence quoted under an answer: a blockquote per group of consecutive sentences,
    each sentence's marker linked to its source card; document text escaped."""
    blocks = []
    for group in quote_groups(quotes):
        text = "".join(
            answer_markdown(f"{' '.join(q.text.split())}[{q.marker}]", turn, numbers) for q in group
        )
        blocks.append(f"> {text}")
    return "\n\n".join(blocks)


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


def timing_line(result: AnswerResult) -> str:
    t = result.timings
    parts = [result.backend.label_zh, f"检索 {t.get('retrieval_s', 0):.2f} 秒"]
    if "first_token_s" in t:
        parts.append(f"首字 {t['first_token_s']:.1f} 秒")
    parts.append(f"共 {t.get('total_s', 0):.1f} 秒")
    return " · ".join(parts)
