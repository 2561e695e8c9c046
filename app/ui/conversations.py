"""The conversation sidebar: the stored conversations of a knowledge base listed by title and
date, the open one chosen in the session or named in the URL (`?c=`), renamed, deleted and
exported. The storing is `app._conversations.ConversationStore`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from app._conversations import ConversationStore, export_conversation_markdown, export_json
from app.ui.viewer import close_source

CONVERSATIONS_SHOWN = 30  # in the sidebar, newest first
CONV_KEY = "zk_conversation"  # session state: the open conversation per knowledge base
CONV_PARAM = "c"  # the open conversation in the URL, so a reload reopens it
_CONFIRM_DELETE = "zk_conv_confirm_delete"


@dataclass(frozen=True)
class Place:
    """Where a turn is drawn: its knowledge base and stored conversation (None while unsaved)."""

    kb_name: str
    store: ConversationStore
    conversation: str | None


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
