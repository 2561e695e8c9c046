"""知库 web app: `streamlit run app/main.py`. This file routes between the two pages and is the
chat page itself; the knowledge-base page is `app/pages/knowledge_base.py`.

All answering goes through `app._rag.answer`; this file only shows its events.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before torch loads (see app/_llm_llamacpp.py): spinning OpenMP threads starve generation.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# `streamlit run app/main.py` puts app/ first on sys.path; the packages live one level up.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(1, _REPO)

import logging  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime  # noqa: E402

import streamlit as st  # noqa: E402

from app._conversations import (  # noqa: E402
    ConversationStore,
    Feedback,
    Turn,
    export_conversation_markdown,
    export_json,
)
from app._evalset import make_case, save_case  # noqa: E402
from app._llm import LlmError, ResolvedBackend  # noqa: E402
from app._rag import AnswerResult, Final, Notice, Retrieved, Token, answer  # noqa: E402
from app.ui.cards import SourceCard, card_for_citation, render_source_card  # noqa: E402
from app.ui.markdown import (  # noqa: E402
    answer_markdown,
    escape_markdown,
    export_markdown,
    message_markdown,
    timing_line,
)
from app.ui.resources import (  # noqa: E402
    APP_ICON,
    APP_TITLE,
    BACKEND_CHOICES,
    BACKEND_LABELS,
    ENABLE_GENERATION_ZH,
    KB_KEY,
    RETURN_TO_INSPECT_KEY,
    RETURN_TO_KB_KEY,
    current_settings,
    get_backend,
    get_embedder,
    get_kb,
    hero,
    inject_css,
    kb_selector,
    store_error_zh,
)
from app.ui.viewer import close_source, current_source, open_source, viewer_panel  # noqa: E402
from ingest._store import KnowledgeBase, StoreError, list_kbs  # noqa: E402
from ingest.settings import Settings  # noqa: E402

log = logging.getLogger("zhiku.app")

# Streamlit 1.67 treats a `pages/` folder beside the main script the pre-st.navigation way until
# st.navigation has run once in the process (and in AppTest, on every run): a URL matching a file
# name there runs that file on its own, without this router. The URL paths ("kb", "inspect")
# therefore differ from the file names, so such a request falls back to this script, whose
# st.navigation then opens the page. The cost: on a fresh server, opening /kb first shows "Page
# not found" once.
KB_PAGE = "pages/knowledge_base.py"
INSPECT_PAGE = "pages/inspector.py"
REFUSAL_ZH = "知识库中没有找到相关内容"
RELATED_SHOWN = 3  # passages shown with a refusal as 可能相关
EMPTY_STATE_TITLES = 5  # documents named before the first question
CONVERSATIONS_SHOWN = 30  # in the sidebar, newest first
PREFS_KEY = "answer_prefs"
CONV_KEY = "zk_conversation"  # session state: the open conversation per knowledge base
CONV_PARAM = "c"  # the open conversation in the URL, so a reload reopens it
_CONFIRM_DELETE = "zk_conv_confirm_delete"


# ----- conversations ------------------------------------------------------------------------


def current_conversation(store: ConversationStore) -> str | None:
    """The open conversation: chosen in this session, else the one named in the URL."""
    chosen: dict[str, str | None] = st.session_state.setdefault(CONV_KEY, {})
    if store.kb_name not in chosen:
        wanted = st.query_params.get(CONV_PARAM)
        chosen[store.kb_name] = wanted if wanted and store.get(wanted) else None
    current = chosen[store.kb_name]
    if current is not None and store.get(current) is None:  # deleted in another tab
        current = chosen[store.kb_name] = None
    if current:
        st.query_params[CONV_PARAM] = current
    elif CONV_PARAM in st.query_params:
        del st.query_params[CONV_PARAM]
    return current


def select_conversation(kb_name: str, conversation_id: str | None) -> None:
    st.session_state.setdefault(CONV_KEY, {})[kb_name] = conversation_id
    st.session_state.pop(_CONFIRM_DELETE, None)
    close_source()


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%m-%d %H:%M")
    except ValueError:
        return iso


def conversations_sidebar(store: ConversationStore, current: str | None) -> None:
    sidebar = st.sidebar
    sidebar.button(
        "新对话",
        icon=":material/add_comment:",
        width="stretch",
        on_click=select_conversation,
        args=(store.kb_name, None),
        key="zk_new_conversation",
    )
    conversations = store.list()
    if not conversations:
        return
    sidebar.caption("历史对话")
    shown = conversations[:CONVERSATIONS_SHOWN]
    box = sidebar.container(height=320) if len(shown) > 6 else sidebar.container()
    for conversation in shown:
        box.button(
            f"{conversation.title} · {_short_time(conversation.updated_at)}",
            key=f"zk-conv-{conversation.id}",
            type="primary" if conversation.id == current else "tertiary",
            width="stretch",
            on_click=select_conversation,
            args=(store.kb_name, conversation.id),
            help=f"{conversation.turns} 轮问答 · 创建于 {_short_time(conversation.created_at)}",
        )
    opened = store.get(current) if current else None
    if opened is None:
        return
    with sidebar.popover("管理当前对话", icon=":material/more_horiz:", width="stretch"):
        title = st.text_input("对话标题", opened.title, max_chars=80, key=f"zk-title-{opened.id}")
        if st.button("重命名", icon=":material/edit:", key="zk_conv_rename"):
            store.rename(opened.id, title)
            st.rerun()
        turns = store.turns(opened.id)
        row = st.container(horizontal=True)
        row.download_button(
            "导出 Markdown",
            export_conversation_markdown(opened, turns),
            file_name=f"zhiku-{opened.id}.md",
            mime="text/markdown",
            icon=":material/download:",
            on_click="ignore",
            key="zk_conv_md",
        )
        row.download_button(
            "导出 JSON",
            export_json(opened, turns),
            file_name=f"zhiku-{opened.id}.json",
            mime="application/json",
            icon=":material/data_object:",
            on_click="ignore",
            key="zk_conv_json",
        )
        if st.session_state.get(_CONFIRM_DELETE) != opened.id:
            if st.button("删除对话", icon=":material/delete:", key="zk_conv_delete"):
                st.session_state[_CONFIRM_DELETE] = opened.id
                st.rerun()
        else:
            st.warning("删除后无法恢复。", icon=":material/warning:")
            if st.button("确认删除", type="primary", key="zk_conv_delete_yes"):
                store.delete(opened.id)
                select_conversation(store.kb_name, None)
                st.rerun()


# ----- sidebar ------------------------------------------------------------------------------


def chat_settings(settings: Settings) -> Settings:
    """The sidebar's answering options applied to the settings. The choices are kept outside
    the widgets' own state, which Streamlit drops while another page is shown."""
    chosen: dict[str, object] = st.session_state.setdefault(
        PREFS_KEY,
        {
            "backend": settings.llm_backend,
            "top_k": settings.top_k,
            "temperature": float(settings.llm_temperature),
        },
    )
    with st.sidebar.expander("回答设置", icon=":material/tune:", expanded=False):
        chosen["backend"] = st.selectbox(
            "回答方式",
            BACKEND_CHOICES,
            index=BACKEND_CHOICES.index(str(chosen["backend"])),
            format_func=BACKEND_LABELS.__getitem__,
            key="backend",
            help="自动:有 Ollama 用 Ollama,否则用内置模型,都没有时只检索。",
        )
        chosen["top_k"] = st.slider(
            "检索段落数(top-k)",
            1,
            20,
            int(chosen["top_k"]),  # type: ignore[call-overload]
            key="top_k",
            help="每个问题检索多少个段落;最相关的几个交给大模型。",
        )
        chosen["temperature"] = st.slider(
            "温度",
            0.0,
            1.0,
            float(chosen["temperature"]),  # type: ignore[arg-type]
            0.05,
            key="temperature",
            help="越低越忠实于资料,越高越有变化。",
        )
    return settings.model_copy(
        update={
            "llm_backend": chosen["backend"],
            "top_k": chosen["top_k"],
            "llm_temperature": chosen["temperature"],
        }
    )


ALSO_KEY = "zk_also_ask"  # the other knowledge bases asked with the selected one


def also_ask(settings: Settings, kb_name: str) -> list[str]:
    """Other knowledge bases to ask the same question at once (kept outside widget state, which
    Streamlit drops while another page is shown)."""
    others = [name for name in list_kbs(settings) if name != kb_name]
    if not others:
        return []
    kept: list[str] = st.session_state.setdefault(ALSO_KEY, [])
    chosen = st.sidebar.multiselect(
        "同时提问的其他知识库",
        others,
        default=[name for name in kept if name in others],
        key=f"zk-also-{kb_name}",
        placeholder="只问当前知识库",
        help="每个知识库各自检索和回答,答案依次显示;对话保存在当前知识库下。",
    )
    st.session_state[ALSO_KEY] = chosen
    return chosen


# ----- drawing answers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a turn is drawn: its knowledge base and stored conversation (None while unsaved)."""

    kb_name: str
    store: ConversationStore
    conversation: str | None


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
    if result.answer:
        numbers = [c.number for c in result.citations]
        st.markdown(answer_markdown(result.answer, index, numbers))
    if result.model_answer:
        st.caption(
            "大模型的回答没有用到资料中与问题最相符的句子,这里直接给出该句。大模型原来的回答:"
            + escape_markdown(result.model_answer)
        )
    if cards:
        _citation_buttons(index, cards, kb_name)
        st.markdown("**来源**")
        for card in cards:
            render_source_card(card, index, kb_name)


def _draw_refusal(index: str, result: AnswerResult, kb_name: str) -> None:
    st.warning(f"{REFUSAL_ZH}。", icon=":material/search_off:")
    if result.refusal_reason == "model_refused":
        st.caption("大模型判断检索到的资料不足以回答这个问题。")
    elif result.refusal_reason == "name_not_found":
        names = "、".join(f"“{n}”" for n in result.missing_names)
        st.caption(f"检索到的资料都没有提到问题里的{names}。")
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
    if place.conversation is not None and turn.seq is not None:
        with row:
            _feedback(turn, place)
            _feedback_details(turn, result, place)
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


def _save_score(place: Place, turn: Turn) -> None:
    score = st.session_state.get(_feedback_key(place, turn))
    old = turn.feedback or Feedback(-1)
    feedback = None if score is None else Feedback(score, old.note, old.correction)
    assert place.conversation is not None and turn.seq is not None
    place.store.set_feedback(place.conversation, turn.seq, feedback)


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
        if row.button("保存反馈", icon=":material/save:", key=f"zk-fb-save-{key}"):
            place.store.set_feedback(
                place.conversation,
                turn.seq,
                Feedback(score if score is not None else -1, note, correction),
            )
            st.toast("反馈已保存", icon=":material/check:")
        if row.button("存为评测题", icon=":material/quiz:", key=f"zk-case-{key}", type="primary"):
            place.store.set_feedback(
                place.conversation,
                turn.seq,
                Feedback(score if score is not None else -1, note, correction),
            )
            kb = get_kb(current_settings(), place.kb_name)
            if kb is None:
                st.error("知识库已不存在。", icon=":material/error:")
                return
            expected = None if refuse else correction
            case = make_case(turn.question, expected, [gold] if gold and not refuse else [], note)
            new = save_case(current_settings(), kb, case)
            st.success(
                ("已存为评测题" if new else "已更新评测题") + ",可在「知识库」页面运行评测。",
                icon=":material/check_circle:",
            )


def draw_history(turns: list[Turn], place: Place) -> None:
    for index, turn in enumerate(turns):
        with st.chat_message("user"):
            st.markdown(escape_markdown(turn.question))
        with st.chat_message("assistant"):
            draw_result(index, turn, place)


# ----- asking -------------------------------------------------------------------------------


def ask(
    question: str,
    turns: list[Turn],
    kb: KnowledgeBase,
    settings: Settings,
    backend: ResolvedBackend,
    place: Place,
    also: Sequence[str] = (),
) -> None:
    """Stream one answer into the page, ask the other knowledge bases in `also`, store the turn,
    then redraw it with verified citations."""
    turn = Turn(question)
    history = [(t.question, t.result.answer) for t in turns if t.result is not None]
    with st.chat_message("user"):
        st.markdown(escape_markdown(question))
    with st.chat_message("assistant"):
        status = st.status("检索中…", expanded=False)
        streamed = st.empty()
        generating = backend.chat is not None

        def tokens() -> Iterator[str]:
            events = answer(question, history, kb, settings, get_embedder(settings), backend)
            for event in events:
                if isinstance(event, Notice):
                    turn.notices.append(message_markdown(event.zh))
                elif isinstance(event, Retrieved):
                    label = "生成中…" if generating else "整理检索结果…"
                    status.update(
                        label=f"{label}(检索到 {len(event.passages)} 个段落,"
                        f"用时 {event.seconds:.2f} 秒)"
                    )
                elif isinstance(event, Token):
                    yield escape_markdown(event.text)
                elif isinstance(event, Final):
                    turn.result = event.result

        try:
            with streamed.container():
                st.write_stream(tokens())
        except StoreError as exc:
            turn.error = store_error_zh(exc)
        except LlmError as exc:
            turn.error = message_markdown(exc.zh)
        except Exception as exc:  # a bug must not cost the conversation; details go to the log
            log.exception("answering failed")
            turn.error = escape_markdown(f"回答时出现意外错误:{type(exc).__name__}: {exc}")
        streamed.empty()
        if turn.result is not None:
            state = "error" if turn.result.error_zh and not turn.result.answer else "complete"
            status.update(label=f"完成 · {timing_line(turn.result)}", state=state)
        else:
            status.update(label="出错了", state="error")
        for name in also:
            turn.others.update(_ask_other(question, history, name, settings, backend))
        conversation = place.conversation or place.store.create()
        try:
            place.store.append(conversation, turn)
        except Exception:  # the answer is still shown; only keeping it failed
            log.exception("could not store the turn")
            st.warning("这轮问答未能保存到对话记录。", icon=":material/warning:")
        if place.conversation is None:
            select_conversation(place.kb_name, conversation)
            st.query_params[CONV_PARAM] = conversation
        turns.append(turn)
        stored = Place(place.kb_name, place.store, conversation)
        draw_result(len(turns) - 1, turn, stored, timing_shown=turn.result is not None)


def _ask_other(
    question: str,
    history: list[tuple[str, str]],
    kb_name: str,
    settings: Settings,
    backend: ResolvedBackend,
) -> dict[str, AnswerResult]:
    """The same question to another knowledge base, through the same `answer()`."""
    kb = get_kb(settings, kb_name)
    if kb is None:
        return {}
    with st.spinner(f"正在问知识库「{kb_name}」…"):
        try:
            for event in answer(question, history, kb, settings, get_embedder(settings), backend):
                if isinstance(event, Final):
                    return {kb_name: event.result}
        except (StoreError, LlmError) as exc:
            st.warning(
                f"知识库「{escape_markdown(kb_name)}」没有回答:{store_error_zh(exc)}"
                if isinstance(exc, StoreError)
                else message_markdown(exc.zh),
                icon=":material/warning:",
            )
    return {}


# ----- the page -----------------------------------------------------------------------------


def _badges(kb_name: str, backend_label: str, documents: int) -> None:
    row = st.container(horizontal=True, gap="small")
    row.badge(f"知识库:{escape_markdown(kb_name)}", icon=":material/folder:", color="blue")
    row.badge(f"{documents} 篇文档", icon=":material/description:", color="gray")
    color = "gray" if backend_label.startswith("仅检索") else "green"
    row.badge(f"回答方式:{backend_label}", icon=":material/smart_toy:", color=color)


def _empty_state(kb: KnowledgeBase) -> None:
    """Before the first question: what the knowledge base holds, so the user knows what to ask."""
    docs = kb.documents()  # not cached: the CLI may have added some
    titles = "、".join(f"《{escape_markdown(doc.title)}》" for doc in docs[-EMPTY_STATE_TITLES:])
    more = f" 等 {len(docs)} 篇" if len(docs) > EMPTY_STATE_TITLES else ""
    with st.container(border=True):
        st.markdown(f"**可以问这些文档里的内容:**{titles}{more}")
        st.caption(
            "回答只根据知识库中的文档生成,每句话后的 [1] [2] 链接到下方的出处,"
            "「查看原文」在右侧打开原文件并定位到那句话;找不到依据时会直接说明。"
            "对话自动保存在本机,可在侧边栏重新打开。"
        )


def chat_page() -> None:
    settings = current_settings()
    kb_name: str = st.session_state[KB_KEY]
    store = ConversationStore(settings, kb_name)
    conversation = current_conversation(store)
    conversations_sidebar(store, conversation)
    also = also_ask(settings, kb_name)
    answer_settings = chat_settings(settings)
    turns = store.turns(conversation) if conversation else []
    place = Place(kb_name, store, conversation)
    if current_source() is not None:
        chat, side = st.columns([1.15, 1], gap="medium")
        with side:
            viewer_panel(settings)
    else:
        chat = st.container()
    with chat:
        # drawn before the models load, so a first start shows the product, not a blank page
        hero("知库 · 知识库问答", "文档只在本机处理 · 每个回答都附带可核对的出处")
        try:
            kb = get_kb(answer_settings, kb_name)
            documents = kb.counts().get("documents", 0) if kb is not None else 0
        except StoreError as exc:
            st.error(store_error_zh(exc), icon=":material/error:")
            return
        backend, problem = get_backend(answer_settings)
        _badges(kb_name, backend.info.label_zh, documents)
        if problem is not None:
            st.error(message_markdown(problem.zh), icon=":material/error:")
        elif backend.notice is not None:
            st.warning(message_markdown(backend.notice.zh), icon=":material/info:")

    # Read first (it stays pinned to the bottom wherever it is called), so the first question's
    # run already leaves out the empty-state hints.
    asked = "".join(f"「{name}」" for name in [kb_name, *also])
    question = st.chat_input(
        f"向{asked}提问…", disabled=kb is None or documents == 0, key="question"
    )
    with chat:
        if kb is None or documents == 0:
            st.info(
                f"知识库「{escape_markdown(kb_name)}」里还没有文档。"
                "先上传 PDF、Word、Markdown 或网页文件,再回来提问。",
                icon=":material/upload_file:",
            )
            st.page_link(KB_PAGE, label="去上传文档", icon=":material/upload:")
        elif not turns and not question:
            _empty_state(kb)

        draw_history(turns, place)
        # loaded after the stored conversation is drawn: a restarted app shows it at once
        try:
            get_embedder(answer_settings)
        except Exception as exc:  # the embedding model cannot load: say so, not a traceback
            log.exception("cannot load the embedding model")
            st.error(f"无法加载嵌入模型:{escape_markdown(str(exc))}", icon=":material/error:")
            return
        if question and kb is not None:
            ask(question, turns, kb, answer_settings, backend, place, also)


def main() -> None:
    st.set_page_config(
        page_title=f"{APP_TITLE} · 本地知识库问答",
        page_icon=APP_ICON,
        layout="wide",
        initial_sidebar_state="expanded",
    )
    inject_css()
    settings = current_settings()
    pages = [
        st.Page(chat_page, title="问答", icon=":material/forum:", default=True),
        st.Page(KB_PAGE, title="知识库", icon=":material/library_books:", url_path="kb"),
        st.Page(INSPECT_PAGE, title="命中测试", icon=":material/troubleshoot:", url_path="inspect"),
    ]
    navigation = st.navigation(pages)
    if st.session_state.pop(RETURN_TO_KB_KEY, False):
        st.switch_page(pages[1])
    if st.session_state.pop(RETURN_TO_INSPECT_KEY, False):
        st.switch_page(pages[2])
    kb_selector(settings)
    navigation.run()
    st.sidebar.caption(f"数据目录:{escape_markdown(str(settings.zhiku_home.resolve()))}")


main()
