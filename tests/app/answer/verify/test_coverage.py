"""Coverage: the largest share of the question's own words one passage holds, and no figure
where shared words cannot tell (another language, a question of question words only)."""

from __future__ import annotations

from app.answer.verify.coverage import coverage

QUESTION = "员工请假需要提前几天申请？"


def test_a_passage_about_something_else_holds_none_of_the_question() -> None:
    assert coverage(QUESTION, ["杭州的市花是桂花。"]) == 0.0


def test_the_passage_holding_most_of_the_question_decides() -> None:
    policy = "请假须提前 3 个工作日在 OA 系统提交申请。"
    alone = coverage(QUESTION, [policy])
    assert alone is not None and 0.0 < alone < 1.0
    best = coverage(QUESTION, ["杭州的市花是桂花。", policy, "员工请假需要提前 3 天申请。"])
    assert best is not None and best > alone


def test_no_figure_where_shared_words_cannot_tell() -> None:
    # a passage in another language shares no words with the question whatever it says
    assert coverage(QUESTION, ["Leave must be requested 3 working days ahead."]) is None
    assert coverage("是什么？", ["杭州的市花是桂花。"]) is None  # nothing but question words
    assert coverage(QUESTION, []) is None


def test_plurals_question_words_and_demonstratives_are_not_words_a_passage_must_hold() -> None:
    # "locker" is held by "Lockers"; "much" asks, it names nothing
    held = coverage("How much does a locker cost?", ["Lockers are free for all members."])
    assert held is not None and held >= 0.5
    # "这套" points at the flat, "多长" asks: the question's words are 房子 and 租期
    held = coverage("这套房子的租期多长？", ["租期两年，自 2025 年 3 月 1 日起计算。"])
    assert held is not None and held >= 0.5
    # a passage about something else still holds none of them
    assert coverage("How much does a locker cost?", ["The pool opens at 6:00."]) == 0.0
