"""Questions answered apart from the page that asked them.

Streamlit reruns the page script whenever the browser sends something (a new question, a click)
and ends the running script at its next drawing call; a reload or a closed tab ends it too. An
answer produced inside the script would be cut off there. So each conversation's questions are
answered here instead, one after another in a daemon thread of the app process, and each is
stored the moment it is asked (marked incomplete, with what has been streamed so far every few
seconds) and stored again, complete, when its answer is done. A page only shows what is going on
(`live`); any page of the process, after a rerun or a reload, finds it again.

What answers a question is given by the page with it (`AnswerFn`, which knows the knowledge
base, the model and the settings of the moment it was asked); this module only orders, keeps
and stores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from app._conversations import Turn

log = logging.getLogger(__name__)


class TurnStore(Protocol):
    """Where a conversation's turns are kept (the page gives one that acts through the
    service as the person asking)."""

    kb_name: str

    def append(self, conversation_id: str, turn: Turn) -> int: ...

    def update(self, conversation_id: str, turn: Turn) -> bool: ...

    def turns(self, conversation_id: str) -> list[Turn]: ...


PARTIAL_SAVE_S = 2.0  # how often what was streamed so far is stored while an answer runs
QUEUED_ZH = "排队中:上一个问题回答完后开始…"
FAILED_ZH = "回答时出现意外错误"


@dataclass(eq=False)
class Asking:
    """One question, from its submission to its stored answer. The page reads `text`,
    `label` and `finished`; the answering thread writes them (single assignments: no lock)."""

    turn: Turn  # its `seq` is set once stored
    answer: AnswerFn
    text: str = ""  # the answer's words so far, as the model streams them
    label: str = QUEUED_ZH  # what is being done, for the page's status line
    started: bool = False
    _finished: threading.Event = field(default_factory=threading.Event)
    _saved_at: float = 0.0
    _store: TurnStore | None = None
    _conversation: str = ""

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float) -> bool:
        return self._finished.wait(timeout)

    def said(self, text: str) -> None:
        """More of the answer streamed; stored now and then, so a killed app keeps it."""
        self.text += text
        if self._store is not None and time.monotonic() - self._saved_at >= PARTIAL_SAVE_S:
            self._saved_at = time.monotonic()
            self.turn.partial = self.text
            _update(self._store, self._conversation, self.turn)


# answers `asking.turn.question` given the earlier (question, answer) pairs: fills in the turn
# (result, notices, error, others) and reports progress through `asking.said` / `asking.label`
AnswerFn = Callable[[Asking, list[tuple[str, str]]], None]


def _update(store: TurnStore, conversation: str, turn: Turn) -> None:
    try:
        store.update(conversation, turn)
    except Exception:  # the database away for a moment: the final update writes it again
        log.exception("could not store the turn")


class ConversationQueue:
    """The questions of one conversation not answered yet, answered in order by one thread."""

    def __init__(self, store: TurnStore, conversation: str) -> None:
        self.store = store
        self.conversation = conversation
        self._waiting: deque[Asking] = deque()
        self._current: Asking | None = None
        self._thread: threading.Thread | None = None

    def live(self) -> list[Asking]:
        """The question being answered and those waiting, in order."""
        with _lock:
            current = [self._current] if self._current is not None else []
            return current + list(self._waiting)

    def _submit(self, asking: Asking) -> None:  # under _lock
        self._waiting.append(asking)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zhiku-answer", daemon=True)
            self._thread.start()

    def _next(self) -> Asking | None:
        with _lock:
            self._current = self._waiting.popleft() if self._waiting else None
            if self._current is None:  # nothing left: the next submission starts a thread
                self._thread = None
                if _queues.get((self.store.kb_name, self.conversation)) is self:
                    del _queues[(self.store.kb_name, self.conversation)]
            return self._current

    def _run(self) -> None:
        while (asking := self._next()) is not None:
            self._answer(asking)

    def _answer(self, asking: Asking) -> None:
        turn = asking.turn
        asking.started = True
        asking._store, asking._conversation = self.store, self.conversation
        asking._saved_at = time.monotonic()
        try:
            earlier = self.store.turns(self.conversation)
            history = [
                (t.question, t.result.answer)
                for t in earlier
                if t.result is not None and t.seq is not None and t.seq < (turn.seq or 0)
            ]
            asking.answer(asking, history)
        except Exception as exc:  # a bug must not cost the conversation; details go to the log
            log.exception("answering failed")
            turn.error = turn.error or f"{FAILED_ZH}:{type(exc).__name__}: {exc}"
        turn.incomplete, turn.partial = False, ""
        _update(self.store, self.conversation, turn)
        asking._finished.set()


_queues: dict[tuple[str, str], ConversationQueue] = {}
_lock = threading.Lock()


def submit(
    store: TurnStore, conversation: str, question: str, answer: AnswerFn, seq: int | None
) -> Asking:
    """Store `question` at the end of the conversation, marked incomplete (or, given `seq`, mark
    that stored turn for answering again), and answer it after the questions before it.
    Raises what storing raises: then nothing was queued."""
    turn = Turn(question, incomplete=True)
    if seq is None:
        store.append(conversation, turn)
    else:
        turn.seq = seq
        store.update(conversation, turn)
    asking = Asking(turn, answer)
    with _lock:
        queue = _queues.get((store.kb_name, conversation))
        if queue is None:
            queue = _queues[(store.kb_name, conversation)] = ConversationQueue(store, conversation)
        queue._submit(asking)
    return asking


def live(kb_name: str, conversation: str | None) -> list[Asking]:
    """The conversation's questions this process is answering or will answer, in order."""
    if conversation is None:
        return []
    with _lock:
        queue = _queues.get((kb_name, conversation))
    return queue.live() if queue is not None else []
