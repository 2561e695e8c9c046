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
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import streamlit as st  # noqa: E402

from app._llm import LlmError, ResolvedBackend  # noqa: E402
from app._rag import AnswerResult, Final, Notice, Retrieved, Token, answer  # noqa: E402
from app._ui import (  # noqa: E402
    APP_ICON,
    APP_TITLE,
    BACKEND_CHOICES,
    BACKEND_LABELS,
    ENABLE_GENERATION_ZH,
    KB_KEY,
    RETURN_TO_KB_KEY,
    SourceCard,
    answer_markdown,
    card_for_citation,
    current_settings,
    escape_markdown,
    export_markdown,
    get_backend,
    get_embedder,
    get_kb,
    hero,
    inject_css,
    kb_selector,
    message_markdown,
    render_source_card,
    store_error_zh,
    timing_line,
)
from ingest.settings import Settings  # noqa: E402
from ingest.store import KnowledgeBase, StoreError  # noqa: E402

log = logging.getLogger("zhiku.app")

# Streamlit 1.67 treats a `pages/` folder beside the main script the pre-st.navigation way until
# st.navigation has run once in the process (and in AppTest, on every run): a URL matching a file
# name there runs that file on its own, without this router. The URL path "kb" therefore differs
# from the file name, so such a request falls back to this script, whose st.navigation then
# opens the page. The cost: on a fresh server, opening /kb first shows "Page not found" once.
KB_PAGE = "pages/knowledge_base.py"
REFUSAL_ZH = "知识库中没有找到相关内容"
RELATED_SHOWN = 3  # passages shown with a refusal as 可能相关
EMPTY_STATE_TITLES = 5  # documents named before the first question
PREFS_KEY = "answer_prefs"


@dataclass
class Turn:
    """One question and its finished answer, kept for redrawing and for follow-ups."""

    question: str
    result: AnswerResult | None = None
    notices: list[str] = field(default_factory=list)
    error: str = ""  # a failure outside answer(), already in Chinese


# ----- sidebar ------------------------------------------------------------------------------


def _turns(kb_name: str) -> list[Turn]:
    """The conversation with one knowledge base; each has its own."""
    conversations: dict[str, list[Turn]] = st.session_state.setdefault("conversations", {})
    return conversations.setdefault(kb_name, [])


def chat_settings(settings: Settings, kb_name: str) -> Settings:
    """The sidebar's answering options applied to the settings. The choices are kept outside
    the widgets' own state, which Streamlit drops while another page is shown."""
    sidebar = st.sidebar
    if sidebar.button("新对话", icon=":material/add_comment:", width="stretch"):
        _turns(kb_name).clear()
    chosen: dict[str, object] = st.session_state.setdefault(
        PREFS_KEY,
        {
            "backend": settings.llm_backend,
            "top_k": settings.top_k,
            "temperature": float(settings.llm_temperature),
        },
    )
    with sidebar.expander("回答设置", icon=":material/tune:", expanded=False):
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


# ----- drawing answers ----------------------------------------------------------------------


def draw_result(turn_index: int, turn: Turn, timing_shown: bool = False) -> None:
    """A finished answer: text with linked citations, its sources, and how it was made."""
    for notice in turn.notices:
        st.warning(notice, icon=":material/info:")
    if turn.error:
        st.error(turn.error, icon=":material/error:")
    result = turn.result
    if result is None:
        return
    if result.refused:
        _draw_refusal(turn_index, result)
    elif result.backend.kind == "none" and not result.error_zh:
        _draw_retrieval_only(turn_index, result)
    else:
        _draw_answer(turn_index, result)
    if result.error_zh:
        label = "回答不完整:" if result.partial else ""
        st.error(f"{label}{message_markdown(result.error_zh)}", icon=":material/error:")
    _draw_footer(turn_index, turn, result, timing_shown)


def _draw_answer(turn_index: int, result: AnswerResult) -> None:
    if result.answer:
        numbers = [c.number for c in result.citations]
        st.markdown(answer_markdown(result.answer, turn_index, numbers))
    if result.model_answer:
        st.caption(
            "大模型的回答没有用到资料中与问题最相符的句子,这里直接给出该句。大模型原来的回答:"
            + escape_markdown(result.model_answer)
        )
    if result.citations:
        st.markdown("**来源**")
        for c in result.citations:
            card = card_for_citation(c.number, c.passage, c.span_start, c.span_end)
            render_source_card(card, turn_index)


def _draw_refusal(turn_index: int, result: AnswerResult) -> None:
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
            render_source_card(SourceCard(p.number, p, None, tag="可能相关"), turn_index)
    else:
        st.caption("知识库中没有任何段落与问题相近。换个说法,或先上传相关文档。")


def _draw_retrieval_only(turn_index: int, result: AnswerResult) -> None:
    st.info(
        "当前为**仅检索**模式,下面是与问题最相关的段落。\n\n" + ENABLE_GENERATION_ZH,
        icon=":material/manage_search:",
    )
    for c in result.citations:
        # no supporting span without an answer: nothing is highlighted
        render_source_card(SourceCard(c.number, c.passage), turn_index)


def _draw_footer(turn_index: int, turn: Turn, result: AnswerResult, timing_shown: bool) -> None:
    left, right = st.columns([5, 1.3], vertical_alignment="center")
    if not timing_shown:  # a fresh answer has it in its status line already
        left.caption(timing_line(result))
    with right.popover("复制", icon=":material/content_copy:", width="stretch"):
        markdown = export_markdown(turn.question, result)
        st.caption("点右上角图标复制,或下载为文件")
        st.code(markdown, language="markdown", wrap_lines=True)
        st.download_button(
            "下载 Markdown",
            markdown,
            file_name=f"zhiku-answer-{turn_index + 1}.md",
            mime="text/markdown",
            icon=":material/download:",
            key=f"download-{turn_index}",
            on_click="ignore",
        )


def draw_history(turns: list[Turn]) -> None:
    for index, turn in enumerate(turns):
        with st.chat_message("user"):
            st.markdown(escape_markdown(turn.question))
        with st.chat_message("assistant"):
            draw_result(index, turn)


# ----- asking -------------------------------------------------------------------------------


def ask(
    question: str,
    turns: list[Turn],
    kb: KnowledgeBase,
    settings: Settings,
    backend: ResolvedBackend,
) -> None:
    """Stream one answer into the page, then redraw it with verified citations."""
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
        turns.append(turn)
        draw_result(len(turns) - 1, turn, timing_shown=turn.result is not None)


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
            "回答只根据知识库中的文档生成,每句话后的 [1] [2] 链接到下方的出处;"
            "找不到依据时会直接说明。可以接着追问,「新对话」清空上下文。"
        )


def chat_page() -> None:
    settings = current_settings()
    kb_name: str = st.session_state[KB_KEY]
    answer_settings = chat_settings(settings, kb_name)
    turns = _turns(kb_name)
    # drawn before the models load, so a first start shows the product, not a blank page
    hero("知库 · 知识库问答", "文档只在本机处理 · 每个回答都附带可核对的出处")
    try:
        get_embedder(answer_settings)
        kb = get_kb(answer_settings, kb_name)
        documents = kb.counts().get("documents", 0) if kb is not None else 0
    except StoreError as exc:
        st.error(store_error_zh(exc), icon=":material/error:")
        return
    except Exception as exc:  # e.g. the embedding model cannot load: say so, not a traceback
        log.exception("cannot prepare the knowledge base")
        st.error(f"无法加载嵌入模型或知识库:{escape_markdown(str(exc))}", icon=":material/error:")
        return
    backend, problem = get_backend(answer_settings)
    _badges(kb_name, backend.info.label_zh, documents)
    if problem is not None:
        st.error(message_markdown(problem.zh), icon=":material/error:")
    elif backend.notice is not None:
        st.warning(message_markdown(backend.notice.zh), icon=":material/info:")

    # Read first (it stays pinned to the bottom wherever it is called), so the first question's
    # run already leaves out the empty-state hints.
    question = st.chat_input(
        f"向「{kb_name}」提问…", disabled=kb is None or documents == 0, key="question"
    )
    if kb is None or documents == 0:
        st.info(
            f"知识库「{escape_markdown(kb_name)}」里还没有文档。"
            "先上传 PDF、Word、Markdown 或网页文件,再回来提问。",
            icon=":material/upload_file:",
        )
        st.page_link(KB_PAGE, label="去上传文档", icon=":material/upload:")
    elif not turns and not question:
        _empty_state(kb)

    draw_history(turns)
    if question and kb is not None:
        ask(question, turns, kb, answer_settings, backend)


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
    ]
    navigation = st.navigation(pages)
    if st.session_state.pop(RETURN_TO_KB_KEY, False):
        st.switch_page(pages[1])
    kb_selector(settings)
    navigation.run()
    st.sidebar.caption(f"数据目录:{escape_markdown(str(settings.zhiku_home.resolve()))}")


main()
