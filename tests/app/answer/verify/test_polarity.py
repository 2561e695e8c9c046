"""Polarity: negations, each with the cases a check that only counts shared bigrams (or any
negation character) would get wrong. Written for this project: policies, FAQs and notices nobody
tuned on."""

from __future__ import annotations

import pytest

from app.answer.verify.polarity import clauses, negated, polarity_conflict

NOTICE = "正式员工可凭工牌申请班车卡；实习生和外包人员不在发放范围内。"


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


def test_clauses_are_cut_at_commas_semicolons_and_stops() -> None:
    assert clauses(NOTICE) == ["正式员工可凭工牌申请班车卡", "实习生和外包人员不在发放范围内"]
