"""The answer as Markdown: citation links, escaped document text; the evidence as its own quote."""

from __future__ import annotations

from app.answer import EvidenceQuote
from app.ui.markdown import answer_markdown, evidence_block_markdown


def test_markers_link_to_their_source_cards_and_document_text_stays_text() -> None:
    shown = answer_markdown("年假 <b>10</b> 天。[1][3]", 2, [1])
    assert shown == r"年假 \<b\>10\</b\> 天。[\[1\]](#zk-src-2-1)\[3\]"


def test_the_evidence_is_a_blockquote_of_its_own_and_the_answer_never_is() -> None:
    quotes = [
        EvidenceQuote(2, "入职满一年每年享有 10 天带薪年假。", 1, "d", "手册", None, 0, 9, 0),
        EvidenceQuote(3, "未休完的可顺延。", 1, "d", "手册", None, 9, 17, 0),
        EvidenceQuote(4, "<b>加班</b>另计。", 2, "e", "制度", None, 0, 9, 1),
    ]
    shown = evidence_block_markdown(quotes, 0, [1, 2, 3, 4])
    first, second = shown.split("\n\n")
    assert first == (
        "> 入职满一年每年享有 10 天带薪年假。[\\[2\\]](#zk-src-0-2)"
        "未休完的可顺延。[\\[3\\]](#zk-src-0-3)"
    ), "consecutive sentences of one passage in one quote"
    assert second == "> \\<b\\>加班\\</b\\>另计。[\\[4\\]](#zk-src-0-4)", "document text escaped"
    assert answer_markdown("> 甲", 0, []) == "\\> 甲", "an answer line is never a quote"
    assert answer_markdown("甲 > 乙", 0, []) == "甲 \\> 乙"
