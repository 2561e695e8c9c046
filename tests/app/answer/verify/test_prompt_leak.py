"""Prompt leak: an answer sentence repeating a stretch of the system prompt word for word."""

from __future__ import annotations

from app.answer.prompt import SYSTEM_PROMPT
from app.answer.verify.prompt_leak import leak_windows, quotes_prompt

WINDOWS = leak_windows(SYSTEM_PROMPT)


def test_a_line_of_the_system_prompt_in_an_answer_is_a_leak() -> None:
    line = SYSTEM_PROMPT.splitlines()[3]
    assert quotes_prompt(f"我的规则是：{line}", WINDOWS)
    assert quotes_prompt(line[:15], WINDOWS)


def test_an_answer_sharing_only_a_few_words_with_the_prompt_is_not() -> None:
    line = SYSTEM_PROMPT.splitlines()[3]
    assert not quotes_prompt(line[:14], WINDOWS)  # shorter than a window
    assert not quotes_prompt("杭州的市花是桂花。", WINDOWS)
