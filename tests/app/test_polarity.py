"""Polarity: negations, yes/no verdicts and swapped names, each with the cases a check that
only counts shared bigrams (or any negation character) would get wrong. Written for this
project: policies, FAQs and notices nobody tuned on."""

from __future__ import annotations

import pytest

from app._polarity import (
    answer_verdict,
    clauses,
    evidence_verdict,
    is_yes_no,
    negated,
    polarity_conflict,
    question_subject,
    swapped_name,
    yes_no_conflict,
)


@pytest.mark.parametrize(
    "clause",
    [
        "试用期员工不可以请婚假",
        "实习生和外包人员不在发放范围内",
        "该功能暂未开放",
        "会议室没有投影仪",
        "禁止在机房内饮食",
        "外包人员不得进入数据中心",
        "本产品非防水设计",
        "The device does not support 5 GHz networks",
        "Interns cannot apply for a parking permit",
        "Refunds are never given for opened items",
        "Visitors may not enter the lab without an escort",
    ],
)
def test_a_negation_is_read(clause: str) -> None:
    assert negated(clause)


@pytest.mark.parametrize(
    "clause",
    [
        "员工不仅可以请婚假还可以请产假",  # 不仅: "not only", no denial
        "无论是否在试用期都可以请病假",  # 无论: "whatever"
        "报销须在不超过 30 天内提交",  # a bound, not a denial
        "每次请假不少于半天",
        "我们非常重视数据安全",  # 非常: "very"
        "未来三年公司将扩建园区",  # 未来: "future"
        "员工不得不在周末加班时可申请调休",  # double negation: must
        "此项审批非部门经理签字不可",  # 非…不可: must
        "系统会不断更新病毒库",
        "Reimbursements are paid no later than 30 days after approval",
        "The offer applies not only to staff but also to their families",
        "正式员工可凭工牌申请班车卡",
    ],
)
def test_words_that_only_contain_a_negation_character_deny_nothing(clause: str) -> None:
    assert not negated(clause)


def test_a_claim_of_the_opposite_polarity_conflicts_with_its_evidence() -> None:
    assert polarity_conflict("试用期员工可以请婚假。", "试用期员工不可以请婚假。")
    assert polarity_conflict("试用期员工不可以请婚假。", "试用期员工可以请婚假。")
    assert polarity_conflict("外包人员可以进入数据中心。", "外包人员不得进入数据中心。")
    # the clause the claim restates decides, not a negated clause elsewhere in the sentence
    evidence = "正式员工可凭工牌申请班车卡；实习生和外包人员不在发放范围内。"
    assert polarity_conflict("实习生和外包人员在发放范围内。", evidence)
    assert not polarity_conflict("正式员工可凭工牌申请班车卡。", evidence)


def test_the_same_polarity_in_other_words_does_not_conflict() -> None:
    assert not polarity_conflict("试用期员工不能请婚假。", "试用期员工不可以请婚假。")
    assert not polarity_conflict("员工不仅可以请婚假，还可以请产假。", "员工可以请婚假和产假。")
    assert not polarity_conflict("报销最多在 30 天内提交。", "报销须在不超过 30 天内提交。")
    # a sentence about something else is no restatement: nothing to compare
    assert not polarity_conflict("班车每天早上 8 点发车。", "外包人员不得进入数据中心。")


def test_polarity_across_languages() -> None:
    assert polarity_conflict("设备支持 5 GHz 网络。", "The device does not support 5 GHz networks.")
    assert polarity_conflict("该设备不支持 5 GHz 网络。", "The device supports 5 GHz networks.")
    assert not polarity_conflict(
        "该设备不支持 5 GHz 网络。", "The device does not support 5 GHz networks."
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


def test_clauses_are_cut_at_commas_semicolons_and_stops() -> None:
    assert clauses(NOTICE) == ["正式员工可凭工牌申请班车卡", "实习生和外包人员不在发放范围内"]


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
