"""Yes/no verdicts: what a yes/no question asks about, and whether an answer's yes or no is its
evidence's about that subject. Written for this project: policies and notices nobody tuned on."""

from __future__ import annotations

import pytest

from app.answer.verify.yes_no import (
    answer_verdict,
    evidence_verdict,
    is_yes_no,
    question_subject,
    yes_no_conflict,
)


@pytest.mark.parametrize(
    ("question", "yes_no"),
    [
        ("实习生可以申请班车卡吗？", True),
        ("公司是否提供午餐？", True),
        ("外包人员能不能进机房？", True),
        ("试用期可不可以请年假", True),
        ("Can interns apply for a shuttle card?", True),
        ("Does the speaker float in water?", True),
        ("年假有几天？", False),
        ("你知道班车几点发车吗？", False),  # 吗, yet it asks when
        ("谁负责审批请假？", False),
        ("VPN 怎么连？", False),
        ("What is the warranty period?", False),
        ("Is the warranty 2 years or 3 years", False),  # no question mark: not read as one
    ],
)
def test_yes_no_questions_are_told_from_other_questions(question: str, yes_no: bool) -> None:
    assert is_yes_no(question) is yes_no


def test_the_subject_of_a_yes_no_question() -> None:
    assert question_subject("实习生可以申请班车卡吗？") == "实习生"
    assert question_subject("请问试用期员工能请婚假吗？") == "试用期员工"
    assert question_subject("公司会议室可以预订吗？") == "公司会议室", "会 of 会议 ends nothing"
    assert question_subject("我可以带宠物进办公室吗？") == "", "the asker is no subject"
    assert question_subject("Can interns apply for a shuttle card?") == "interns"


NOTICE = "正式员工可凭工牌申请班车卡；实习生和外包人员不在发放范围内。"
FIRST = "正式员工可凭工牌申请班车卡；"


def test_the_clause_about_the_questions_subject_decides_a_yes_no_answer() -> None:
    question = "实习生可以申请班车卡吗？"
    # the model cited the clause about 正式员工; the clause about 实习生 in its passage decides
    assert evidence_verdict(question, [FIRST], NOTICE) is True
    assert yes_no_conflict(question, "可以。", [FIRST], NOTICE)
    assert yes_no_conflict(question, "是的，可凭工牌申请班车卡。", [FIRST], NOTICE)
    assert yes_no_conflict(question, "正式员工可凭工牌申请班车卡。", [FIRST], NOTICE)
    assert not yes_no_conflict(question, "不可以，实习生不在发放范围内。", [FIRST], NOTICE)
    # the same notice says yes for 正式员工
    assert not yes_no_conflict("正式员工可以申请班车卡吗？", "可以。", [FIRST], NOTICE)
    assert yes_no_conflict("正式员工可以申请班车卡吗？", "不可以。", [FIRST], NOTICE)


def test_a_model_name_as_the_subject_is_read_whatever_its_case() -> None:
    faq = "答：T2 支持夜视模式；T1 不支持夜视模式。"
    question = "T1 能开夜视模式吗？"
    assert evidence_verdict(question, ["答：T2 支持夜视模式；"], faq) is True
    assert yes_no_conflict(question, "T2 支持夜视模式。", ["答：T2 支持夜视模式；"], faq)
    assert not yes_no_conflict("t2 能开夜视模式吗？", "T2 支持夜视模式。", [faq], faq)


def test_a_bare_yes_agrees_with_the_question_as_asked() -> None:
    question = "试用期员工不能请婚假吗？"
    evidence = ["试用期员工不可以请婚假。"]
    assert answer_verdict(question, "是的。") is True, "yes, they cannot"
    assert not yes_no_conflict(question, "是的。", evidence)
    assert yes_no_conflict(question, "不是，可以请。", evidence)


def test_yes_no_in_english_and_over_english_evidence() -> None:
    evidence = ["Interns and contractors are not eligible for a shuttle card."]
    assert yes_no_conflict("Can interns apply for a shuttle card?", "Yes.", evidence)
    assert not yes_no_conflict("Can interns apply for a shuttle card?", "No.", evidence)
    # a Chinese question over the English notice: the cited sentence's polarity decides
    assert yes_no_conflict("实习生可以申请班车卡吗？", "可以。", evidence)
    assert not yes_no_conflict("实习生可以申请班车卡吗？", "不可以。", evidence)


def test_a_question_that_is_not_yes_no_is_left_to_the_other_checks() -> None:
    assert not yes_no_conflict("班车几点发车？", "可以。", ["班车不在周末运行。"])


def test_a_clause_after_the_subject_in_the_same_sentence_is_about_it() -> None:
    policy = "第一条 试用期员工不享受年假，但可以请病假和婚假。"
    # the second clause is about 试用期员工 without naming them again; what is asked decides
    assert evidence_verdict("试用期员工可以请婚假吗？", [policy]) is False
    assert evidence_verdict("试用期员工可以休年假吗？", [policy]) is True
    assert yes_no_conflict("试用期员工可以休年假吗？", "可以。", [policy])
    assert not yes_no_conflict("试用期员工可以请婚假吗？", "可以。", [policy])
    # the whole sentence given as the answer carries the evidence's own verdict
    assert not yes_no_conflict("试用期员工可以休年假吗？", policy, [policy])


def test_without_a_subject_the_clause_asked_about_decides() -> None:
    notice = "班车每天早上 7:30 从地铁站 B 口发车，周末和法定节假日不运行。"
    assert question_subject("班车周末运行吗？") == ""
    assert not yes_no_conflict("班车周末运行吗？", notice, [notice])
    assert not yes_no_conflict("班车周末运行吗？", "周末不运行。", [notice])
    assert yes_no_conflict("班车周末运行吗？", "周末正常运行。", [notice])
