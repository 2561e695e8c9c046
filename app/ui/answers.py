"""A finished answer in the chat: its text with linked citations, the evidence quoted under it
(原文), the buttons that open each source beside the chat, its source cards, how it was made,
and its feedback row (👍/👎, a note, the right answer, 存为评测题). Answers from other
knowledge bases asked at once follow it."""

from __future__ import annotations

import streamlit as st

from app._conversations import Feedback, Turn
from app._export import EVIDENCE_HEADING, export_markdown
from app.answer import AnswerResult
from app.service import ServiceError
from app.ui.cards import SourceCard, card_for_citation, render_source_card
from app.ui.conversations import Place
from app.ui.markdown import (
    answer_markdown,
    escape_markdown,
    evidence_block_markdown,
    message_markdown,
    timing_line,
)
from app.ui.resources import ENABLE_GENERATION_ZH, store_error_zh
from app.ui.viewer import open_source
from ingest.store import StoreError

REFUSAL_ZH = "知识库中没有找到相关内容"
RELATED_SHOWN = 3  # passages shown with a refusal as 可能相关


def draw_result(index: int, turn: Turn, place: Place, timing_shown: bool = False) -> None:
    """A finished answer: text with linked citations, its sources, and how it was made."""
    for notice in turn.notices:
        st.warning(notice, icon=":material/info:")
    if turn.error:
        st.error(turn.error, icon=":material/error:")
    result = turn.result
    if result is None:
        return
    if turn.others:
        st.markdown(f"**知识库「{escape_markdown(place.kb_name)}」**")
    _draw_one(str(index), result, place.kb_name)
    _draw_footer(index, turn, result, place, timing_shown)
    for number, (name, other) in enumerate(turn.others.items(), start=1):
        st.divider()
        st.markdown(f"**知识库「{escape_markdown(name)}」**")
        _draw_one(f"{index}k{number}", other, name)
        st.caption(timing_line(other))


def _draw_one(tag: str, result: AnswerResult, kb_name: str) -> None:
    """One knowledge base's answer; `tag` keeps its anchors and widget keys apart."""
    if result.refused:
        _draw_refusal(tag, result, kb_name)
    elif result.backend.kind == "none" and not result.error_zh:
        _draw_retrieval_only(tag, result, kb_name)
    else:
        _draw_answer(tag, result, kb_name)
    if result.error_zh:
        label = "回答不完整:" if result.partial else ""
        st.error(f"{label}{message_markdown(result.error_zh)}", icon=":material/error:")


def _citation_buttons(index: str, cards: list[SourceCard], kb_name: str) -> None:
    """The markers again, as buttons that open each source beside the chat."""
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    row.caption("打开原文:", width="content")
    for card in cards:
        page = f",第 {card.passage.page} 页" if card.passage.page is not None else ""
        row.button(
            f"[{card.number}]",
            key=f"zk-cite-{index}-{card.number}",
            on_click=open_source,
            args=(card.source(kb_name),),
            help=f"在右侧打开《{card.passage.title}》{page},定位到引用的句子",
        )


def _draw_answer(index: str, result: AnswerResult, kb_name: str) -> None:
    cards = [
        card_for_citation(c.number, c.passage, c.span_start, c.span_end, c.quote)
        for c in result.citations
    ]
    numbers = [c.number for c in result.citations]
    if result.answer:
        st.markdown(answer_markdown(result.answer, index, numbers))
    if result.evidence_quotes:
        # the source's own words under the answer, drawn from the data, apart from the answer
        with st.container(key=f"zk-evidence-{index}"):
            st.caption(f"{EVIDENCE_HEADING}(资料中的原句,供核对回答)")
            st.markdown(evidence_block_markdown(result.evidence_quotes, index, numbers))
    if result.model_answer:
        st.caption(
            "大模型的回答没有得到它引用的句子的支持,这里直接给出依据的原句。大模型原来的回答:"
            + escape_markdown(result.model_answer)
        )
    if cards:
        _citation_buttons(index, cards, kb_name)
        st.markdown("**来源**")
        for card in cards:
            render_source_card(card, index, kb_name)


def _draw_refusal(index: str, result: AnswerResult, kb_name: str) -> None:
    if result.refusal_reason == "small_talk":  # a greeting: what zhiku is for, no sources
        st.info(result.answer, icon=":material/waving_hand:")
        return
    st.warning(f"{REFUSAL_ZH}。", icon=":material/search_off:")
    if result.refusal_reason == "model_refused":
        st.caption("大模型判断检索到的资料不足以回答这个问题。")
    elif result.refusal_reason == "name_not_found":
        names = "、".join(f"“{n}”" for n in result.missing_names)
        st.caption(f"整个知识库都没有提到问题里的{names}。")
    elif result.refusal_reason == "question_not_covered":
        st.caption("检索到的段落都只包含问题中很少的词,不足以回答。")
    elif result.refusal_reason == "unsupported_answer":
        st.caption("大模型的回答得不到资料中任何句子的支持,因此不予显示。")
    elif result.refusal_reason == "off_topic":
        st.caption("大模型引用的段落都没有提到问题所问的事物,它的回答说的是别的内容,因此不予显示。")
    elif result.refusal_reason == "not_answered":
        st.caption(
            "资料里最接近的句子回答的是别的问题(另一个对象、年份或事件),不是这个问题的答案。"
        )
        for c in result.related:
            title = escape_markdown(c.passage.title)
            st.markdown(f"相关内容:《{title}》" + escape_markdown(c.quote))
    related = result.passages[:RELATED_SHOWN]
    if related:
        st.markdown("**可能相关的段落**(相关度不足,仅供参考)")
        for p in related:
            render_source_card(SourceCard(p.number, p, None, tag="可能相关"), index, kb_name)
    else:
        st.caption("知识库中没有任何段落与问题相近。换个说法,或先上传相关文档。")


def _draw_retrieval_only(index: str, result: AnswerResult, kb_name: str) -> None:
    st.info(
        "当前为**仅检索**模式,下面是与问题最相关的段落。\n\n" + ENABLE_GENERATION_ZH,
        icon=":material/manage_search:",
    )
    cards = [SourceCard(c.number, c.passage) for c in result.citations]
    if cards:
        _citation_buttons(index, cards, kb_name)
    for card in cards:
        # no supporting span without an answer: nothing is highlighted in the card
        render_source_card(card, index, kb_name)


def _draw_footer(index: int, turn: Turn, result: AnswerResult, place: Place, shown: bool) -> None:
    if not shown:  # a fresh answer has it in its status line already
        st.caption(timing_line(result))
    row = st.container(horizontal=True, vertical_alignment="center", gap="small")
    if place.conversation is not None and turn.seq is not None and place.own:
        with row:
            _feedback(turn, place)
            _feedback_details(turn, result, place)
    # One answer on the person's screen, read for them already: made here, not through
    # `Service.export_conversation` (whole conversations are, and audited: conversations.py)
    with row.popover("复制", icon=":material/content_copy:"):
        markdown = export_markdown(turn.question, result)
        st.caption("点右上角图标复制,或下载为文件")
        st.code(markdown, language="markdown", wrap_lines=True)
        st.download_button(
            "下载 Markdown",
            markdown,
            file_name=f"zhiku-answer-{index + 1}.md",
            mime="text/markdown",
            icon=":material/download:",
            key=f"download-{index}",
            on_click="ignore",
        )


# ----- feedback -----------------------------------------------------------------------------


def _feedback_key(place: Place, turn: Turn) -> str:
    return f"zk-fb-{place.conversation}-{turn.seq}"


def _keep_feedback(place: Place, turn: Turn, feedback: Feedback | None) -> bool:
    """Store the verdict through the service (the conversation's author's alone)."""
    assert place.conversation is not None and turn.seq is not None
    try:
        place.service.set_feedback(place.who, place.kb_name, place.conversation, turn.seq, feedback)
    except ServiceError as exc:  # deleted in another tab meanwhile
        st.error(message_markdown(exc.zh), icon=":material/error:")
        return False
    return True


def _save_score(place: Place, turn: Turn) -> None:
    score = st.session_state.get(_feedback_key(place, turn))
    old = turn.feedback or Feedback(-1)
    feedback = None if score is None else Feedback(score, old.note, old.correction)
    _keep_feedback(place, turn, feedback)


def _feedback(turn: Turn, place: Place) -> None:
    st.feedback(
        "thumbs",
        key=_feedback_key(place, turn),
        default=turn.feedback.score if turn.feedback and turn.feedback.score >= 0 else None,
        on_change=_save_score,
        args=(place, turn),
    )


def _feedback_details(turn: Turn, result: AnswerResult, place: Place) -> None:
    assert place.conversation is not None and turn.seq is not None
    score = st.session_state.get(_feedback_key(place, turn))
    feedback = turn.feedback or Feedback(-1)
    key = f"{place.conversation}-{turn.seq}"
    with st.popover("反馈", icon=":material/rate_review:"):
        note = st.text_area("说明(可选)", feedback.note, key=f"zk-note-{key}", height=68)
        correction = ""
        if score == 0:
            correction = st.text_input(
                "正确答案(如果知道)",
                feedback.correction,
                key=f"zk-correction-{key}",
                help="回答里必须出现的关键文字,例如「十五天」;存为评测题时作为期望答案。",
            )
        refuse = st.checkbox(
            "这个问题应当拒答(知识库里没有答案)",
            value=result.refused and score == 1,
            key=f"zk-refuse-{key}",
        )
        docs = {p.doc_id: p.title for p in [c.passage for c in result.citations] + result.passages}
        gold = st.selectbox(
            "答案所在的文档",
            list(docs),
            format_func=docs.__getitem__,
            key=f"zk-gold-{key}",
            disabled=refuse or not docs,
        )
        row = st.container(horizontal=True)
        verdict = Feedback(score if score is not None else -1, note, correction)
        saved = row.button("保存反馈", icon=":material/save:", key=f"zk-fb-save-{key}")
        if saved and _keep_feedback(place, turn, verdict):
            st.toast("反馈已保存", icon=":material/check:")
        if row.button("存为评测题", icon=":material/quiz:", key=f"zk-case-{key}", type="primary"):
            if not _keep_feedback(place, turn, verdict):
                return
            try:
                new = place.service.save_evaluation_case(
                    place.who,
                    place.kb_name,
                    turn.question,
                    None if refuse else correction,
                    [gold] if gold and not refuse else [],
                    note,
                )
            except ServiceError as exc:
                st.error(message_markdown(exc.zh), icon=":material/error:")
                return
            except StoreError as exc:  # the knowledge base is gone
                st.error(store_error_zh(exc), icon=":material/error:")
                return
            st.success(
                ("已存为评测题" if new else "已更新评测题") + ",可在「知识库」页面运行评测。",
                icon=":material/check_circle:",
            )
