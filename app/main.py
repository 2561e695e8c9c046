"""知库 web app: `streamlit run app/main.py`. This file routes between the pages and is the chat
page itself; the knowledge-base page is `app/pages/knowledge_base.py`, the retrieval inspector
`app/pages/inspector.py`, the admins' 成员与权限 `app/pages/people.py`. Answers are drawn by
`app/ui/answers.py`, the conversation sidebar by `app/ui/conversations.py`, the source viewer
beside the chat by `app/ui/viewer.py`.

All answering goes through `app.answer.answer`; this file only shows its events.
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
import signal  # noqa: E402
import threading  # noqa: E402

import streamlit as st  # noqa: E402

from app._asking import live  # noqa: E402
from app._conversations import Turn  # noqa: E402
from app._llm import ResolvedBackend  # noqa: E402
from app.access import listening_refusal  # noqa: E402
from app.state.accounts import Accounts  # noqa: E402
from app.ui.asking import (  # noqa: E402
    QUESTION_KEY,
    PersonTurns,
    answer_fn,
    being_answered,
    draw_stored,
    follow,
    keep_question,
    submit_asked,
)
from app.ui.asking import asked as asked_questions  # noqa: E402
from app.ui.conversations import (  # noqa: E402
    NOT_FOUND_ZH,
    Place,
    conversations_sidebar,
    current_conversation,
    link_refused,
    reading_note,
)
from app.ui.login import WHO_KEY, current_user, logout_button, web_user  # noqa: E402
from app.ui.markdown import (  # noqa: E402
    escape_markdown,
    message_markdown,
)
from app.ui.resources import (  # noqa: E402
    APP_ICON,
    APP_TITLE,
    BACKEND_CHOICES,
    BACKEND_LABELS,
    KB_KEY,
    RETURN_TO_INSPECT_KEY,
    RETURN_TO_KB_KEY,
    RETURN_TO_PEOPLE_KEY,
    current_settings,
    get_backend,
    get_service,
    get_warmup,
    hero,
    inject_css,
    kb_info,
    kb_selector,
    load_embedder,
    store_error_zh,
)
from app.ui.sources import ensure_scheduler  # noqa: E402
from app.ui.viewer import current_source, viewer_panel  # noqa: E402
from app.ui.warmup import warmup_progress  # noqa: E402
from app.ui.watched import ensure_watchers  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.store import StoreError  # noqa: E402

log = logging.getLogger("zhiku.app")

# Streamlit 1.67 treats a `pages/` folder beside the main script the pre-st.navigation way until
# st.navigation has run once in the process (and in AppTest, on every run): a URL matching a file
# name there runs that file on its own, without this router. The URL paths ("kb", "inspect",
# "members") therefore differ from the file names, so such a request falls back to this
# script, whose st.navigation then opens the page. The cost: on a fresh server, opening /kb
# first shows "Page not found" once.
KB_PAGE = "pages/knowledge_base.py"
INSPECT_PAGE = "pages/inspector.py"
PEOPLE_PAGE = "pages/people.py"
EMPTY_STATE_TITLES = 5  # documents named before the first question
PREFS_KEY = "answer_prefs"


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
    who = current_user()
    others = [name for name in get_service(settings).kb_names(who) if name != kb_name]
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


# ----- the page -----------------------------------------------------------------------------


def _badges(kb_name: str, backend_label: str, documents: int) -> None:
    row = st.container(horizontal=True, gap="small")
    row.badge(f"知识库:{escape_markdown(kb_name)}", icon=":material/folder:", color="blue")
    row.badge(f"{documents} 篇文档", icon=":material/description:", color="gray")
    color = "gray" if backend_label.startswith("仅检索") else "green"
    row.badge(f"回答方式:{backend_label}", icon=":material/smart_toy:", color=color)


def _backend_badges(settings: Settings, kb_name: str, documents: int) -> ResolvedBackend:
    backend, problem = get_backend(settings)
    _badges(kb_name, backend.info.label_zh, documents)
    if problem is not None:
        st.error(message_markdown(problem.zh), icon=":material/error:")
    elif backend.notice is not None:
        st.warning(message_markdown(backend.notice.zh), icon=":material/info:")
    return backend


def _empty_state(settings: Settings, kb_name: str) -> None:
    """Before the first question: what the knowledge base holds, so the user knows what to ask."""
    docs = get_service(settings).documents(current_user(), kb_name)  # not cached: see the CLI
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
    service, who = get_service(settings), current_user()
    opened = current_conversation(service, who, kb_name)
    conversations_sidebar(service, who, kb_name, opened)
    also = also_ask(settings, kb_name)
    answer_settings = chat_settings(settings)
    place = Place(kb_name, service, who, None)
    if opened is not None:
        place = Place(kb_name, service, who, opened.conversation.id, opened.own)
    running = live(kb_name, place.conversation)  # before the turns: see app/ui/asking.py's follow
    turns: list[Turn] = []
    if opened is not None:  # read again after `running`, as its own (an admin's view: as opened)
        turns = (
            PersonTurns(service, who, kb_name).turns(place.conversation)
            if opened.own
            else list(opened.turns)
        )
    if current_source() is not None:
        chat, side = st.columns([1.15, 1], gap="medium")
        with side:
            viewer_panel(settings)
    else:
        chat = st.container()
    with chat:
        # drawn before the models load, so a first start shows the product, not a blank page
        hero("知库 · 知识库问答", "文档只在本机处理 · 每个回答都附带可核对的出处")
        if opened is None and link_refused():
            st.error(NOT_FOUND_ZH, icon=":material/search_off:")
        elif opened is not None and not opened.own:
            reading_note(opened)
        try:
            info = kb_info(answer_settings, kb_name)
            documents = info.documents if info is not None else 0
        except StoreError as exc:
            st.error(store_error_zh(exc), icon=":material/error:")
            return
        # Models load in the background when the app starts (app/_warmup.py): until they are
        # ready the page shows their progress instead of waiting for them.
        warmup = get_warmup(answer_settings, kb_name)
        header = st.empty()
        backend: ResolvedBackend | None = None
        if warmup.done:
            with header.container():
                backend = _backend_badges(answer_settings, kb_name, documents)
        else:
            with header.container():
                _badges(kb_name, "准备中…", documents)
                warmup_progress(warmup)

    # Read first (it stays pinned to the bottom wherever it is called), so the first question's
    # run already leaves out the empty-state hints.
    asked = "".join(f"「{name}」" for name in [kb_name, *also])
    st.chat_input(
        f"向{asked}提问…" if place.own else "他人的对话只能查看:点「新对话」提问",
        disabled=info is None or documents == 0 or not place.own,
        key=QUESTION_KEY,
        on_submit=keep_question,  # kept before this run starts: a rerun cannot lose it
    )
    busy = bool(asked_questions() or running)  # the chat input's question is among them
    with chat:
        if info is None or documents == 0:
            st.info(
                f"知识库「{escape_markdown(kb_name)}」里还没有文档。"
                "先上传 PDF、Word、Markdown 或网页文件,再回来提问。",
                icon=":material/upload_file:",
            )
            if current_user().may_open("kb"):
                st.page_link(KB_PAGE, label="去上传文档", icon=":material/upload:")
        elif not turns and not busy:
            _empty_state(settings, kb_name)

        shown = draw_stored(turns, place, being_answered(running))
        if backend is None and not busy:
            return  # still warming up: the progress above redraws the page when it is done
        # loaded after the stored conversation is drawn: a restarted app shows it at once
        try:
            load_embedder(answer_settings)
        except Exception as exc:  # the embedding model cannot load: say so, not a traceback
            log.exception("cannot load the embedding model")
            st.error(f"无法加载嵌入模型:{escape_markdown(str(exc))}", icon=":material/error:")
            return
        if asked_questions() and info is not None:
            if backend is None:  # asked during the warm-up: waits for what is left of it
                with header.container():
                    backend = _backend_badges(answer_settings, kb_name, documents)
            answering = answer_fn(get_service(answer_settings), who, kb_name, backend, also)
            place = submit_asked(place, answering)
        follow(running, shown, place)


def refuse_exposed_address(settings: Settings) -> None:
    """Serve nothing, and stop the server, when it listens beyond this machine while nobody has
    an account (`app.access.listening_refusal`). `make run` and `zhiku web` refuse before
    starting; this catches a hand-started `streamlit run app/main.py --server.address 0.0.0.0`
    (or STREAMLIT_SERVER_ADDRESS) at its first page, since Streamlit runs no app code at start."""
    if Path(sys.argv[0]).resolve() != Path(__file__).resolve():
        return  # not served by `streamlit run` (Streamlit's AppTest): nothing listens
    refusal = listening_refusal(st.get_option("server.address"), Accounts(settings).exist())
    if refusal is None:
        return
    en, zh = refusal
    st.error(f"{zh}\n\n{en}", icon=":material/block:")
    print(f"知库 zhiku: {en}", file=sys.stderr, flush=True)
    # Streamlit's handler stops the server; a moment later, so this page reaches the browser
    threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    st.stop()


def main() -> None:
    st.set_page_config(
        page_title=f"{APP_TITLE} · 本地知识库问答",
        page_icon=APP_ICON,
        layout="wide",
        initial_sidebar_state="expanded",
    )
    inject_css()
    settings = current_settings()
    refuse_exposed_address(settings)
    service = get_service(settings)  # loads nothing until asked: here for the audit log
    who = web_user(settings, service)  # the login form and a stop, when nobody is logged in
    st.session_state[WHO_KEY] = who
    every_page = {
        "chat": st.Page(chat_page, title="问答", icon=":material/forum:", default=True),
        "kb": st.Page(KB_PAGE, title="知识库", icon=":material/library_books:", url_path="kb"),
        "inspect": st.Page(
            INSPECT_PAGE, title="命中测试", icon=":material/troubleshoot:", url_path="inspect"
        ),
        "people": st.Page(
            PEOPLE_PAGE, title="成员与权限", icon=":material/group:", url_path="members"
        ),
    }
    pages = {name: page for name, page in every_page.items() if who.may_open(name)}
    navigation = st.navigation(list(pages.values()))
    if st.session_state.pop(RETURN_TO_KB_KEY, False) and "kb" in pages:
        st.switch_page(pages["kb"])
    if st.session_state.pop(RETURN_TO_INSPECT_KEY, False) and "inspect" in pages:
        st.switch_page(pages["inspect"])
    if st.session_state.pop(RETURN_TO_PEOPLE_KEY, False) and "people" in pages:
        st.switch_page(pages["people"])
    logout_button(settings, service, who)
    kb_selector(settings)
    try:
        watchers = ensure_watchers(settings)  # bound folders are followed whichever page is open
    except Exception:  # the embedding model cannot load: each page says so where it needs it
        log.exception("cannot start the folder watchers")
    else:
        for failed in watchers.failed():
            st.sidebar.warning(
                f"「{escape_markdown(failed.kb_name)}」的监视文件夹已停止:"
                f"{escape_markdown(failed.error or '')}(在「知识库」页重新启动)",
                icon=":material/folder_off:",
            )
    try:
        ensure_scheduler(settings)  # sources on a schedule are synced whichever page is open
    except Exception:
        log.exception("cannot start the source scheduler")
    navigation.run()
    st.sidebar.caption(f"数据目录:{escape_markdown(str(settings.zhiku_home.resolve()))}")


main()
