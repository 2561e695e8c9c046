"""Retrieval's own steps: a follow-up without an LLM carries the previous question's words."""

from __future__ import annotations

from app.answer.retrieve import carry_over


def test_without_an_llm_follow_ups_carry_the_previous_question() -> None:
    history = [("杭州地铁 1 号线有多长？", "")]
    assert carry_over("那 2 号线呢？", history) == "杭州地铁 1 号线有多长？ 那 2 号线呢？"
    assert carry_over("它的市花是什么？", history).startswith("杭州地铁 1 号线有多长？")
    assert (
        carry_over("北京烤鸭起源于哪个朝代的宫廷菜？", history)
        == "北京烤鸭起源于哪个朝代的宫廷菜？"
    )
    assert carry_over("任何问题", []) == "任何问题"
