"""Source cards: one retrieved or cited passage, its place in the document, its supporting span
highlighted, and the button that opens the original at that span (`app/ui/viewer.py`)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from app.ui.markdown import anchor_id, file_name, highlight
from app.ui.viewer import OpenSource, open_source

if TYPE_CHECKING:
    from app.answer import Passage


def _preview(text: str, span: tuple[int, int] | None, room: int = 120) -> str:
    """The card's one-glance line: the supporting span (or the passage's start), on one line,
    escaped; the whole passage is in the card's expander."""
    lo, hi = span if span and span[1] > span[0] else (0, 0)
    piece = text[lo:hi] if hi > lo else text
    flat = " ".join(piece.split())
    cut = flat[:room] + ("…" if len(flat) > room else "")
    before = "…" if lo > 0 else ""
    after = "…" if hi and hi < len(text) and not cut.endswith("…") else ""
    body = html.escape(before + cut + after)
    return f"<mark>{body}</mark>" if hi > lo else body


@dataclass(frozen=True)
class SourceCard:
    """What a source card shows; the span is in passage-text offsets."""

    number: int
    passage: Passage
    span: tuple[int, int] | None = None  # the supporting span; None highlights nothing
    tag: str = ""  # e.g. 可能相关
    page_span: tuple[int, int] | None = None  # the same span in page offsets, for the viewer
    quote: str = ""

    def source(self, kb_name: str) -> OpenSource:
        """What the viewer opens: the supporting span, or the whole passage without one."""
        p = self.passage
        lo, hi = self.page_span or (p.start, p.end)
        quote = self.quote or p.text[p.header_len :]
        return OpenSource(
            kb_name,
            p.doc_id,
            p.title,
            p.source,
            p.doc_type,
            p.page,
            p.page_seq,
            lo,
            hi,
            quote,
            self.number,
        )


def card_for_citation(
    number: int, passage: Passage, span_start: int, span_end: int, quote: str = ""
) -> SourceCard:
    """Citation spans are page offsets; cards highlight in the passage's own text."""
    lo = span_start - passage.start + passage.header_len
    hi = span_end - passage.start + passage.header_len
    return SourceCard(number, passage, (lo, hi), page_span=(span_start, span_end), quote=quote)


def render_source_card(card: SourceCard, turn: int | str, kb_name: str, key: str = "") -> None:
    """One card; its "查看原文" button opens the original beside the chat. `key` tells apart the
    cards of one turn drawn more than once on a page (answers from several knowledge bases)."""
    p = card.passage
    where = [html.escape(file_name(p.source))]
    if p.page is not None:
        where.append(f"第 {p.page} 页")
    if p.ocr:
        where.append("OCR 识别")  # read from an image: a character may be misread
    headings = [h for h in p.headings if h != p.title]
    if headings:
        where.append(html.escape(" › ".join(headings)))
    # The cosine is what the relevance floor applies to; the bar shows the fused score, which
    # ranks passages within this one question.
    rank = max(0.0, min(1.0, p.score))
    tag = f'<span class="zk-tag">{html.escape(card.tag)}</span>' if card.tag else ""
    lo, hi = card.span or (0, 0)
    with st.container(border=True):
        st.html(
            f'<div id="{anchor_id(turn, card.number)}" class="zk-card-head">'
            f'<span class="zk-num">[{card.number}]</span>'
            f'<span class="zk-title">{html.escape(p.title)}</span>'
            f'<span class="zk-meta">{" · ".join(where)}</span>{tag}'
            f'<span class="zk-score" title="语义相似度 {p.dense:.3f} · '
            f'本次检索排名得分 {rank:.2f}">'
            f'相关度 {p.dense:.2f}<span class="zk-bar"><span style="width:{rank:.0%}">'
            "</span></span></span></div>"
            f'<div class="zk-quote">{_preview(p.text, card.span)}</div>'
        )
        st.button(
            "查看原文",
            icon=":material/open_in_new:",
            key=f"zk-open-{key}{turn}-{card.number}",
            on_click=open_source,
            args=(card.source(kb_name),),
            type="tertiary",
            help="在右侧打开原文件,定位到这句话",
        )
        with st.expander("展开原文段落"):
            st.html(f'<div class="zk-passage">{highlight(p.text, lo, hi)}</div>')
            st.caption(
                f"文件:{file_name(p.source)} · 语义相似度 {p.dense:.3f} · 综合得分 {p.score:.2f}"
            )
