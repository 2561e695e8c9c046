"""`generate.synonym_judge` alone, over a chat model scripted here (the real model's judgement is
tested in tests/app/test_llm_llamacpp.py)."""

from __future__ import annotations

from typing import Any

from app.answer.generate import synonym_judge


class Scripted:
    """A chat model answering "No" to everything, or failing; it counts what it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail

    def invoke(self, messages: list[Any], **kwargs: Any) -> Any:
        self.asked.append(str(messages[-1].content))
        if self.fail:
            raise ConnectionError("the model is gone")
        return type("Reply", (), {"content": "No, they are different."})()


def test_each_pair_is_asked_once_and_the_reply_read() -> None:
    chat = Scripted()
    synonym = synonym_judge(chat)  # type: ignore[arg-type]
    assert synonym("晚餐", "午餐") is False
    assert synonym("晚餐", "午餐") is False
    assert chat.asked == ['Is "晚餐" a synonym of "午餐"? Answer yes or no.']


def test_past_its_limit_or_when_the_model_fails_the_judge_is_unsure() -> None:
    chat = Scripted()
    synonym = synonym_judge(chat, limit=2)  # type: ignore[arg-type]
    assert [synonym("甲", w) for w in ("乙", "丙", "丁")] == [False, False, None]
    assert len(chat.asked) == 2, "the wait before an answer is bounded"
    assert synonym_judge(Scripted(fail=True))("甲", "乙") is None  # type: ignore[arg-type]


def test_without_a_limit_every_pair_is_asked() -> None:
    chat = Scripted()
    synonym = synonym_judge(chat, limit=None)  # type: ignore[arg-type]
    words = [f"词{n}" for n in range(20)]
    assert all(synonym("甲", w) is False for w in words)
    assert len(chat.asked) == 20
