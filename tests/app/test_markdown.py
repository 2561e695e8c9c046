"""The answer as Markdown: citation links, escaped document text, the evidence quote."""

from __future__ import annotations

from app.ui.markdown import answer_markdown


def test_markers_link_to_their_source_cards_and_document_text_stays_text() -> None:
    shown = answer_markdown("年假 <b>10</b> 天。[1][3]", 2, [1])
    assert shown == r"年假 \<b\>10\</b\> 天。[\[1\]](#zk-src-2-1)\[3\]"


def test_the_quoted_evidence_is_a_blockquote_and_nothing_else_is() -> None:
    text = "年假有 10 天。[1]\n\n原文：\n\n> 入职满一年每年享有 10 天带薪年假。[1]"
    shown = answer_markdown(text + "\n\n> a > b", 0, [1])
    assert "\n> 入职满一年每年享有 10 天带薪年假。[\\[1\\]](#zk-src-0-1)" in shown
    assert shown.endswith("> a \\> b"), "only a line's opening '> ' is Markdown"
    assert answer_markdown("甲 > 乙", 0, []) == "甲 \\> 乙"
