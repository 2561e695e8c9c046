"""Off topic: a passage that mentions none of the things the question asks about, told from one
that names them in its title, a heading, an alias, a typo or another language."""

from __future__ import annotations

import pytest

from app.answer.verify.off_topic import mentions_topic, topic_terms


@pytest.mark.parametrize(
    ("question", "source"),
    [
        # another plant's description answers "what colour": the question's plant is not there
        ("龙胆在秋季开什么颜色的花？", "《假苹婆》\n花淡红色，无花冠，花萼5裂。"),
        ("员工生日有什么福利？", "《假期制度》\n入职满一年每年享有 10 天带薪年假。"),
        ("香港羽毛球公开赛的官方名称是什么？", "《费尔德海斯》\n她参加了 2008 年世界游泳锦标赛。"),
    ],
)
def test_a_passage_about_something_else_is_off_topic(question: str, source: str) -> None:
    assert topic_terms(question)
    assert not mentions_topic(topic_terms(question), source, question)


@pytest.mark.parametrize(
    ("question", "source"),
    [
        # the subject only in the title, the text says "它"/"牠们"
        ("马来穿山甲的天敌有哪些？", "《马来穿山甲》\n牠们的天敌有虎及云豹。"),
        ("北京大学在哪一年创办？", "《学校简介》\n北大创办于 1898 年，初名京师大学堂。"),  # alias
        ("诸葛量辅佐的是谁？", "诸葛亮，字孔明，辅佐刘备建立蜀汉。"),  # a typo
        ("报销差旅费需要哪些材料？", "Travel expenses are reimbursed with the original invoice."),
        ("What is the refund policy?", "Refunds are paid within 14 days of the return."),
        ("此剧的制作人是谁？", "制作人为伍宗德。"),  # nothing named: the guard cannot judge
        ("员工请假需要提前几天申请？", "《考勤制度》\n请假须提前 3 个工作日在 OA 系统提交申请。"),
        ("VPN 连不上怎么办？", "《IT 手册》\n## 远程办公 VPN\n请先检查网络，再重启客户端。"),
    ],
)
def test_titles_headings_aliases_and_other_languages_keep_a_passage_on_topic(
    question: str, source: str
) -> None:
    assert mentions_topic(topic_terms(question), source, question)


def test_topic_terms_are_the_things_asked_about_not_question_words() -> None:
    assert topic_terms("《越南亡国史》讲述了什么内容？")[-1] == "越南亡国史"
    assert "What" not in topic_terms("What is the refund policy?")
    assert topic_terms("今天天气怎么样？") == []
