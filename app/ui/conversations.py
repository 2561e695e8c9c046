"""The conversation sidebar: the principal's own conversations with a knowledge base listed by
title and date, the open one chosen in the session or named in the URL (`?c=`), renamed, deleted
and exported. Reading and changing them goes through the service (`app/_authored.py`), which
decides whose they are: a link to another's conversation opens nothing ("找不到这个对话或你无权
查看"), except for an admin, who reads it without changing it (and the audit log says so)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from app.access import Principal
from app.service import OpenedConversation, Service, ServiceError
from app.ui.markdown import escape_markdown
from app.ui.viewer import close_source

CONVERSATIONS_SHOWN = 30  # in the sidebar, newest first
CONV_KEY = "zk_conversation"  # session state: the open conversation per knowledge base
CONV_PARAM = "c"  # the open conversation in the URL, so a reload reopens it
NOT_FOUND_ZH = "找不到这个对话或你无权查看。"
_CONFIRM_DELETE = "zk_conv_confirm_delete"
_LINK_READ = "zk_conv_link_read"  # the URL's `?c=` is a link once, at a session's first run
_REFUSED = "zk_conv_refused"  # a link that opened nothing: said until another is chosen


@dataclass(frozen=True)
class Place:
    """Where a turn is drawn: its knowledge base and stored conversation (None while unsaved),
    with the service and principal that read and change it; `own` is False while an admin reads
    another's conversation (no feedback, no questions added)."""

    kb_name: str
    service: Service
    who: Principal
    conversation: str | None
    own: bool = True


def _open(
    service: Service, who: Principal, kb_name: str, conversation_id: str
) -> OpenedConversation | None:
    try:
        return service.open_conversation(who, kb_name, conversation_id)
    except ServiceError:  # none such, deleted in another tab, or another's
        return None


def current_conversation(
    service: Service, who: Principal, kb_name: str
) -> OpenedConversation | None:
    """The open conversation: chosen in this session, else the one a link named (`?c=`);
    a link that opens nothing is remembered to be said (`link_refused`)."""
    chosen: dict[str, str | None] = st.session_state.setdefault(CONV_KEY, {})
    linked = None
    if not st.session_state.get(_LINK_READ):
        st.session_state[_LINK_READ] = True
        linked = st.query_params.get(CONV_PARAM) or None
        chosen[kb_name] = linked
    current = chosen.get(kb_name)
    opened = _open(service, who, kb_name, current) if current else None
    if linked and opened is None:
        st.session_state[_REFUSED] = linked
    chosen[kb_name] = opened.conversation.id if opened is not None else None
    if opened is not None:
        st.query_params[CONV_PARAM] = opened.conversation.id
    elif CONV_PARAM in st.query_params:
        del st.query_params[CONV_PARAM]
    return opened


def link_refused() -> bool:
    """Whether this session's link named a conversation that it may not open (or none)."""
    return bool(st.session_state.get(_REFUSED))


def select_conversation(kb_name: str, conversation_id: str | None) -> None:
    st.session_state.setdefault(CONV_KEY, {})[kb_name] = conversation_id
    st.session_state.pop(_CONFIRM_DELETE, None)
    st.session_state.pop(_REFUSED, None)
    close_source()


def reading_note(opened: OpenedConversation) -> None:
    """Above an admin's view of another's conversation: whose it is, and that it is read only."""
    whose = f"「{escape_markdown(opened.author)}」的" if opened.author else "其他人的"
    st.info(
        f"这是{whose}对话:你以管理员身份只读查看,不能提问或反馈;这次查看已记入审计日志。",
        icon=":material/visibility:",
    )


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%m-%d %H:%M")
    except ValueError:
        return iso


def conversations_sidebar(
    service: Service, who: Principal, kb_name: str, opened: OpenedConversation | None
) -> None:
    sidebar = st.sidebar
    sidebar.button(
        "新对话",
        icon=":material/add_comment:",
        width="stretch",
        on_click=select_conversation,
        args=(kb_name, None),
        key="zk_new_conversation",
    )
    current = opened.conversation.id if opened is not None else None
    conversations = service.conversations(who, kb_name)
    if conversations:
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
            args=(kb_name, conversation.id),
            help=f"{conversation.turns} 轮问答 · 创建于 {_short_time(conversation.created_at)}",
        )
    if opened is None or not opened.own:
        return
    _manage(service, who, kb_name, opened)


def _manage(service: Service, who: Principal, kb_name: str, opened: OpenedConversation) -> None:
    conversation = opened.conversation
    with st.sidebar.popover("管理当前对话", icon=":material/more_horiz:", width="stretch"):
        title = st.text_input(
            "对话标题", conversation.title, max_chars=80, key=f"zk-title-{conversation.id}"
        )
        if st.button("重命名", icon=":material/edit:", key="zk_conv_rename"):
            with contextlib.suppress(ServiceError):  # deleted in another tab meanwhile
                service.rename_conversation(who, kb_name, conversation.id, title)
            st.rerun()
        row = st.container(horizontal=True)
        # made when clicked, through the service: the rule checked again, every export audited
        row.download_button(
            "导出 Markdown",
            lambda: service.export_conversation(who, kb_name, conversation.id, "markdown"),
            file_name=f"zhiku-{conversation.id}.md",
            mime="text/markdown",
            icon=":material/download:",
            on_click="ignore",
            key="zk_conv_md",
        )
        row.download_button(
            "导出 JSON",
            lambda: service.export_conversation(who, kb_name, conversation.id, "json"),
            file_name=f"zhiku-{conversation.id}.json",
            mime="application/json",
            icon=":material/data_object:",
            on_click="ignore",
            key="zk_conv_json",
        )
        if st.session_state.get(_CONFIRM_DELETE) != conversation.id:
            if st.button("删除对话", icon=":material/delete:", key="zk_conv_delete"):
                st.session_state[_CONFIRM_DELETE] = conversation.id
                st.rerun()
        else:
            st.warning("删除后无法恢复。", icon=":material/warning:")
            if st.button("确认删除", type="primary", key="zk_conv_delete_yes"):
                with contextlib.suppress(ServiceError):  # deleted in another tab meanwhile
                    service.delete_conversation(who, kb_name, conversation.id)
                select_conversation(kb_name, None)
                st.rerun()
