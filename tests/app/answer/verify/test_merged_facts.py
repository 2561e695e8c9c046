"""Merged facts: a name or number of the question put where the evidence has another one, the
fact of one thing given as the fact of another."""

from __future__ import annotations

from app.answer.verify.merged_facts import swapped_name


def test_a_name_of_the_question_put_in_place_of_the_evidences_is_a_swap() -> None:
    question = "A 公司的创始人是谁？"
    assert swapped_name("A 公司由王五创立。", "B 公司由王五于 2010 年创立。", question)
    assert not swapped_name("A 公司由王五创立。", "A 公司由王五于 2010 年创立。", question)
    # a spec table's other model: the question's model put on the row of model A
    assert swapped_name("X2 的重量是 1.2 kg。", "| X1 | 1.2 kg | 黑色 |", "X2 有多重？")
    assert not swapped_name("X1 的重量是 1.2 kg。", "| X1 | 1.2 kg | 黑色 |", "X1 有多重？")
    # the other year
    assert swapped_name("2023 年营收为 5 亿元。", "2022 年营收为 5 亿元。", "2023 年营收多少？")
    # a question word restated beside the evidence's own words is no swap
    assert not swapped_name("2023 年营收增长 10%。", "去年营收增长 10%。", "2023 年营收增长多少？")
