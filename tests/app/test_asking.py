"""Questions answered apart from the page (`app/_asking.py`): stored the moment they are asked,
answered one after another in order with the answers before them as history, what was streamed
stored on the way, and a failing answer still stored. The answering function is the page's
(`app/ui/asking.py`'s `answer_fn`, over the real `answer()`, is covered by the browser and
AppTest tests); here it is a small function the test holds and releases, to see each stage."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support import answer_result, make_settings

from app import _asking
from app._asking import Asking, live, submit
from app._conversations import ConversationStore, Turn

WAIT_S = 30


class Script:
    """An answering function that records its calls and waits to be released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.release: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}

    def hold(self, question: str) -> None:
        self.release[question] = threading.Event()
        self.entered[question] = threading.Event()

    def __call__(self, asking: Asking, history: list[tuple[str, str]]) -> None:
        question = asking.turn.question
        self.calls.append((question, history))
        asking.said(f"{question}的回答")
        if question in self.release:
            self.entered[question].set()
            assert self.release[question].wait(WAIT_S)
        if question.startswith("坏"):
            raise RuntimeError("boom")
        asking.turn.result = answer_result(question)


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore(make_settings(tmp_path / "home"), "default")


def test_questions_are_stored_at_once_and_answered_in_order(store: ConversationStore) -> None:
    script = Script()
    script.hold("一?")
    conversation = store.create()
    first = submit(store, conversation, "一?", script, None)
    second = submit(store, conversation, "二?", script, None)
    assert script.entered["一?"].wait(WAIT_S)
    # both kept before any answer: a reload or a restart now still shows them
    assert [(t.question, t.incomplete) for t in store.turns(conversation)] == [
        ("一?", True),
        ("二?", True),
    ]
    assert live("default", conversation) == [first, second]
    assert second.label == _asking.QUEUED_ZH and not second.started
    script.release["一?"].set()
    assert second.wait(WAIT_S) and first.finished
    turns = store.turns(conversation)
    assert [(t.question, t.incomplete) for t in turns] == [("一?", False), ("二?", False)]
    assert turns[1].result == answer_result("二?")
    # the second was answered after the first, with the first's answer as its history
    assert [q for q, _ in script.calls] == ["一?", "二?"]
    assert script.calls[1][1] == [("一?", answer_result("一?").answer)]
    assert live("default", conversation) == []


def test_what_was_streamed_is_stored_while_the_answer_runs(
    store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_asking, "PARTIAL_SAVE_S", 0.0)
    script = Script()
    script.hold("三?")
    conversation = store.create()
    asking = submit(store, conversation, "三?", script, None)
    assert script.entered["三?"].wait(WAIT_S)
    [cut] = store.turns(conversation)  # what an app killed now leaves
    assert (cut.incomplete, cut.partial, cut.result) == (True, "三?的回答", None)
    script.release["三?"].set()
    assert asking.wait(WAIT_S)
    [done] = store.turns(conversation)
    assert (done.incomplete, done.partial) == (False, "")
    assert done.result == answer_result("三?")


def test_a_failing_answer_is_stored_with_its_error_and_the_queue_goes_on(
    store: ConversationStore,
) -> None:
    script = Script()
    conversation = store.create()
    bad = submit(store, conversation, "坏问题?", script, None)
    good = submit(store, conversation, "好问题?", script, None)
    assert good.wait(WAIT_S) and bad.finished
    failed, answered = store.turns(conversation)
    assert not failed.incomplete and failed.result is None
    assert "回答时出现意外错误" in failed.error and "boom" in failed.error
    assert answered.result == answer_result("好问题?")


def test_an_incomplete_turn_asked_again_is_answered_in_its_place(
    store: ConversationStore,
) -> None:
    script = Script()
    conversation = store.create()
    submit(store, conversation, "一?", script, None).wait(WAIT_S)
    cut = Turn("二?", incomplete=True, partial="说到一半")  # as a restart leaves it
    seq = store.append(conversation, cut)
    assert submit(store, conversation, "二?", script, seq).wait(WAIT_S)
    turns = store.turns(conversation)
    assert [(t.seq, t.question, t.incomplete) for t in turns] == [
        (0, "一?", False),
        (1, "二?", False),
    ]
    assert turns[1].result == answer_result("二?")
    assert script.calls[-1][1] == [("一?", answer_result("一?").answer)]
