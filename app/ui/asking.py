"""Asking on the chat page: questions go into the session as they are submitted (`keep_question`,
the chat input's callback, which Streamlit runs before the script, so a rerun cannot lose one),
are stored and queued for answering by `app._asking` (`submit_asked`), and the page shows the
conversation: its stored turns, then the ones being answered, streamed as they come (`show`).

A second question sent while an answer streams reruns the page: the running answer goes on in
its thread and the new run follows it again, then the queued question. A reload or another tab
finds both through `app._asking.live`; an answer an app restart cut off is shown as incomplete
with 重新提问.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from app import _asking
from app._asking import Asking
from app._conversations import INCOMPLETE_ZH, Turn
from app._llm import LlmError, ResolvedBackend
from app.access import Principal
from app.answer import AnswerResult, Final, Notice, Retrieved, Token
from app.service import Service, ServiceError
from app.ui.answers import draw_result
from app.ui.conversations import CONV_PARAM, Place, select_conversation
from app.ui.markdown import escape_markdown, message_markdown, timing_line
from app.ui.resources import store_error_zh
from ingest.store import StoreError

log = logging.getLogger(__name__)

QUESTION_KEY = "question"  # the chat input's key
ASKED_KEY = "zk_asked"  # session state: (question, seq to answer again or None), not yet stored
POLL_S = 0.1  # how often a streaming answer is redrawn
# at least this often the page draws something while it waits: only at a drawing call can
# Streamlit end the run for a question sent meanwhile
BEAT_S = 0.5
StatusState = Literal["running", "complete", "error"]


# ----- questions into the session ------------------------------------------------------------


def keep_question() -> None:
    """The chat input's on_submit: the question is kept before the script runs."""
    question = str(st.session_state.get(QUESTION_KEY) or "").strip()
    if question:
        st.session_state.setdefault(ASKED_KEY, []).append((question, None))


def ask_again(question: str, seq: int) -> None:
    st.session_state.setdefault(ASKED_KEY, []).append((question, seq))


def asked() -> list[tuple[str, int | None]]:
    """The questions submitted in this session and not stored yet."""
    return list(st.session_state.get(ASKED_KEY, []))


# ----- storing and answering -----------------------------------------------------------------


def answer_fn(
    service: Service,
    who: Principal,
    kb_name: str,
    backend: ResolvedBackend,
    also: Sequence[str] = (),
) -> _asking.AnswerFn:
    """How a question asked now is answered (in `app._asking`'s thread): through `answer()`
    as `who` (`Service.answer_with`, with the service's settings: the sidebar's choices), then
    by each other knowledge base in `also` that `who` may read."""
    readable = service.kb_names(who)
    others = [name for name in also if name in readable]
    generating = backend.chat is not None

    def run(asking: Asking, history: list[tuple[str, str]]) -> None:
        turn = asking.turn
        asking.label = "检索中…"
        try:
            for event in service.answer_with(who, kb_name, turn.question, history, backend):
                if isinstance(event, Notice):
                    turn.notices.append(message_markdown(event.zh))
                elif isinstance(event, Retrieved):
                    label = "生成中…" if generating else "整理检索结果…"
                    asking.label = (
                        f"{label}(检索到 {len(event.passages)} 个段落,用时 {event.seconds:.2f} 秒)"
                    )
                elif isinstance(event, Token):
                    asking.said(event.text)
                elif isinstance(event, Final):
                    turn.result = event.result
        except StoreError as exc:
            turn.error = store_error_zh(exc)
        except LlmError as exc:
            turn.error = message_markdown(exc.zh)
        except ServiceError as exc:  # a right taken away since the question was asked
            turn.error = escape_markdown(exc.zh)
        for name in others:
            asking.label = f"正在问知识库「{name}」…"
            turn.others.update(_ask_other(turn, history, name, service, who, backend))

    return run


def _ask_other(
    turn: Turn,
    history: list[tuple[str, str]],
    name: str,
    service: Service,
    who: Principal,
    backend: ResolvedBackend,
) -> dict[str, AnswerResult]:
    """The same question to another knowledge base, through the same `answer()`."""
    try:
        for event in service.answer_with(who, name, turn.question, history, backend):
            if isinstance(event, Final):
                return {name: event.result}
    except (StoreError, LlmError, ServiceError) as exc:
        if isinstance(exc, StoreError):
            why = store_error_zh(exc)
        elif isinstance(exc, LlmError):
            why = message_markdown(exc.zh)
        else:
            why = escape_markdown(exc.zh)
        turn.notices.append(f"知识库「{escape_markdown(name)}」没有回答:{why}")
    return {}


@dataclass(frozen=True)
class PersonTurns:
    """A person's conversations in one knowledge base, as `app._asking` stores turns: every
    read and write through the service, which checks that the conversation is theirs."""

    service: Service
    who: Principal
    kb_name: str

    def create(self) -> str:
        return self.service.new_conversation(self.who, self.kb_name)

    def append(self, conversation_id: str, turn: Turn) -> int:
        return self.service.add_turn(self.who, self.kb_name, conversation_id, turn)

    def update(self, conversation_id: str, turn: Turn) -> bool:
        return self.service.update_turn(self.who, self.kb_name, conversation_id, turn)

    def turns(self, conversation_id: str) -> list[Turn]:
        opened = self.service.open_conversation(self.who, self.kb_name, conversation_id)
        return list(opened.turns)


def submit_asked(place: Place, answer: _asking.AnswerFn) -> Place:
    """Store and queue the session's submitted questions; returns where they are stored (a new
    conversation for the first question, which the URL then names)."""
    conversation = place.conversation
    store = PersonTurns(place.service, place.who, place.kb_name)
    while pending := st.session_state.get(ASKED_KEY):
        question, seq = pending[0]
        try:
            if conversation is None:
                conversation = store.create()
            _asking.submit(store, conversation, question, answer, seq)
        except Exception:  # the database is away: the question stays in the session
            log.exception("could not store the question")
            st.error("问题未能保存到对话记录,稍后再试。", icon=":material/error:")
            break
        pending.pop(0)  # only now: a run ended before this line keeps it for the next
    if conversation is not None and conversation != place.conversation:
        select_conversation(place.kb_name, conversation)
        st.query_params[CONV_PARAM] = conversation
    return Place(place.kb_name, place.service, place.who, conversation, place.own)


# ----- showing the conversation -------------------------------------------------------------


def being_answered(running: list[Asking]) -> set[int]:
    """The stored turns `follow` draws: those being answered, and those asked again."""
    again = {seq for _, seq in asked() if seq is not None}
    return again | {a.turn.seq for a in running if a.turn.seq is not None}


def status_of(turn: Turn) -> tuple[str, StatusState]:
    """The line over an answer: how it ended and, for a finished one, how it was made."""
    if turn.incomplete:
        return "回答未完成", "error"
    if turn.result is None:
        return "出错了", "error"
    state: StatusState = "error" if turn.result.error_zh and not turn.result.answer else "complete"
    return f"完成 · {timing_line(turn.result)}", state


def draw_stored(turns: list[Turn], place: Place, skip: set[int]) -> int:
    """The stored turns but those in `skip`; returns how many were drawn (the index of the
    next one: anchors and widget keys go by it).

    A turn is drawn as `follow` leaves it (a status line, then one container): when a run
    draws as stored what the run before drew live, each element takes the place of its
    like, and nothing of the earlier layout lingers, faded, while this run goes on."""
    index = 0
    for turn in turns:
        if turn.seq in skip:
            continue
        with st.chat_message("user"):
            st.markdown(escape_markdown(turn.question))
        with st.chat_message("assistant"):
            label, state = status_of(turn)
            st.status(label, state=state, expanded=False)
            with st.container():
                if turn.incomplete:
                    _draw_incomplete(turn, place)
                else:
                    draw_result(index, turn, place, timing_shown=True)
        index += 1
    return index


def _draw_incomplete(turn: Turn, place: Place) -> None:
    """A turn the app stopped answering (restarted, killed): what was streamed, and a way to
    ask again."""
    if turn.partial:
        st.markdown(escape_markdown(turn.partial))
        why = "回答过程中应用停止了,以上是停止前已生成的部分。"
    else:
        why = "应用在回答这个问题之前停止了。"
    st.warning(f"{INCOMPLETE_ZH}{why}", icon=":material/hourglass_disabled:")
    if place.conversation is not None and turn.seq is not None:
        st.button(
            "重新提问",
            icon=":material/refresh:",
            key=f"zk-again-{place.conversation}-{turn.seq}",
            on_click=ask_again,
            args=(turn.question, turn.seq),
        )


def follow(running: list[Asking], first_index: int, place: Place) -> None:
    """The questions being answered, streamed as they come, until the last is done; then each
    is drawn as a finished answer. `running` was read before the stored turns (an answer
    finishing in between is in one or the other); those submitted since are added here."""
    live = _asking.live(place.kb_name, place.conversation)
    items = running + [a for a in live if all(a is not r for r in running)]
    slots = []
    for asking in items:
        with st.chat_message("user"):
            st.markdown(escape_markdown(asking.turn.question))
        with st.chat_message("assistant"):
            slots.append((asking, st.status(asking.label, expanded=False), st.empty()))
    for index, (asking, status, streamed) in enumerate(slots, start=first_index):
        label, text, beat = asking.label, "", 0.0
        while not asking.wait(POLL_S):
            beat += POLL_S
            if asking.label != label or beat >= BEAT_S:
                label, beat = asking.label, 0.0
                status.update(label=label)
            if asking.text != text:
                text = asking.text
                streamed.markdown(escape_markdown(text))
        turn = asking.turn
        label, state = status_of(turn)
        status.update(label=label, state=state)
        with streamed.container():  # as `draw_stored` draws it: see there
            draw_result(index, turn, place, timing_shown=True)
