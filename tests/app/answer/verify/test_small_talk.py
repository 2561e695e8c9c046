"""Small talk against short real questions: greetings, thanks and questions about the assistant
are told from the short questions a knowledge base is asked ("年假几天？", "VPN 怎么连？")."""

from __future__ import annotations

import pytest

from app.answer.verify.small_talk import (
    SMALL_TALK_EN,
    SMALL_TALK_ZH,
    is_small_talk,
    small_talk_reply,
)

POLICY = [
    "正式员工每年享有 10 天带薪年假。",
    "VPN 客户端安装后，用工号和域密码登录即可连接。",
    "航班如遇恶劣天气延误，可凭航空公司证明改签。",
    "前台电话：8001，工作时间为早上 9 点至晚上 6 点。",
]


@pytest.mark.parametrize(
    "line",
    [
        "你好",
        "您好！",
        "hello",
        "Hi there!",
        "谢谢",
        "好的，谢谢！",
        "Thank you very much.",
        "再见",
        "你是谁",
        "你是谁？你能做什么？",
        "What can you do?",
        "今天天气怎么样？",
        "现在几点了？",
        "How are you?",
        "讲个笑话吧",
        "在吗",
        "你好，最近过得怎么样？",  # a greeting in front of chit-chat
    ],
)
def test_small_talk_is_told(line: str) -> None:
    assert is_small_talk(line, POLICY)


@pytest.mark.parametrize(
    "question",
    [
        "年假几天？",
        "VPN 怎么连？",
        "你好，年假有几天？",  # a greeting in front of a question is a question
        "前台电话是多少？",
        "天气原因航班延误可以改签吗？",
        "今天天气影响航班改签吗？",
        "你们几点上班？",
        "火星上的天气怎么样？",  # asks about Mars, not about the weather now
        "公司在哪？",
        "谁审批请假？",
        "How many days of annual leave do I get?",
        "What is the VPN password policy?",
    ],
)
def test_short_real_questions_are_not_small_talk(question: str) -> None:
    assert not is_small_talk(question, POLICY)


def test_chit_chat_whose_words_the_documents_hold_is_a_question_for_them() -> None:
    # "天气怎么样" over a weather report is asked of the report
    report = ["杭州今天天气晴，最高气温 25 度。"]
    assert is_small_talk("杭州今天天气怎么样？", [])
    assert not is_small_talk("杭州今天天气怎么样？", report)


def test_the_reply_says_what_zhiku_is_for_in_the_questions_language() -> None:
    assert small_talk_reply("你好") == SMALL_TALK_ZH and "文档" in SMALL_TALK_ZH
    assert small_talk_reply("hello") == SMALL_TALK_EN and "documents" in SMALL_TALK_EN
