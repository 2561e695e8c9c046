"""What the checks read of a question and a sentence: the question's own words, and whether a
sentence can be given as an answer by itself."""

from __future__ import annotations

from app.answer.verify.reading import can_stand_as_answer, question_grams


def test_question_words_are_not_the_questions_own_words() -> None:
    assert question_grams("杭州的市花是什么？") == {"杭州", "市花"}
    assert question_grams("What is the refund policy?") == {"refund", "policy"}


def test_question_lines_headings_and_table_rows_cannot_stand_as_answers() -> None:
    assert not can_stand_as_answer("问：快递可以寄到公司吗？")
    assert not can_stand_as_answer("第三章 快递收发")
    assert not can_stand_as_answer("| 型号 | 功率 |")
    assert not can_stand_as_answer("报销需要的材料如下：")
    assert can_stand_as_answer("答：可以，由前台代收。")
