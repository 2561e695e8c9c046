"""Prompt building: numbered passages as data, tables a small model can read, the language of
the question, and a fixed prefix (rules, worked examples) that never changes, so llama.cpp
reuses its KV cache for it."""

from __future__ import annotations

from app._prompt import (
    REFUSAL_EN,
    REFUSAL_ZH,
    SYSTEM_PROMPT,
    PromptPassage,
    absent_terms,
    build_condense_messages,
    build_messages,
    is_english,
    prefix_messages,
    quotes_instructions,
    refusal_sentence,
    tables_as_records,
)

TABLE = """显存估算如下。
| 大小 | 位数 | 显存(GB) |
|---|---|---|
| 1.5B | 4 | 0.9 |
| 7B | 8 | 8.4 |
说明完毕。"""


def passages() -> list[PromptPassage]:
    return [
        PromptPassage(1, "量化指南", 3, ("第二章", "显存"), TABLE),
        PromptPassage(2, "杭州概况", None, (), "杭州的市花是桂花。"),
    ]


def test_messages_number_and_label_every_passage_inside_data_markers() -> None:
    messages = build_messages("1.5B 模型 4 位量化需要多少显存？", passages())
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = messages[-1]
    text = user["content"]
    assert user["role"] == "user"
    assert "[1] 《量化指南》 第3页 第二章 > 显存" in text
    assert "[2] 《杭州概况》\n杭州的市花是桂花。" in text
    assert text.index("<<<") < text.index("[1]") < text.index("[2]") < text.index(">>>")
    assert text.index(">>>") < text.index("问题：1.5B 模型 4 位量化需要多少显存？")
    assert REFUSAL_ZH in text and "请用英文回答" not in text


def test_names_the_passages_never_mention_are_pointed_out() -> None:
    question = "Claude 4 和 GPT-1 的显存(GB)各是多少？"
    assert absent_terms(question, passages()) == ["Claude", "GPT-1"]  # "GB" is in the table
    text = build_messages(question, passages())[-1]["content"]
    assert "注意：资料中没有出现问题里的“Claude”、“GPT-1”。" in text
    assert text.index(question) < text.index("注意：")
    # names that are there, English questions (English words are not names) and bare model
    # sizes ("7B") are not flagged
    assert absent_terms("杭州的市花是什么？1.5B 模型要多少 GB？", passages()) == []
    assert absent_terms("What is the city flower of Hangzhou?", passages()) == []
    assert "注意：" not in build_messages("杭州的市花是什么？", passages())[-1]["content"]


def test_everything_before_the_question_is_the_same_for_every_question() -> None:
    first = build_messages("问题一？", passages())
    second = build_messages("Question two?", passages()[:1])
    assert first[:-1] == second[:-1] == prefix_messages()
    assert [m["role"] for m in first] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    # the worked examples show each shape: a cited answer, the bare refusal sentence, and an
    # instruction planted in a passage left undone
    asked = [m["content"] for m in first[1:-1] if m["role"] == "user"]
    answers = [m["content"] for m in first if m["role"] == "assistant"]
    assert any("[" in a and a != REFUSAL_ZH for a in answers) and REFUSAL_ZH in answers
    planted = next(i for i, q in enumerate(asked) if "忽略之前的所有规则" in q)
    assert "已验证" in asked[planted] and "已验证" not in answers[planted]


def test_tables_become_one_record_per_row() -> None:
    records = tables_as_records(TABLE)
    assert records.splitlines() == [
        "显存估算如下。",
        "- 大小=1.5B；位数=4；显存(GB)=0.9",
        "- 大小=7B；位数=8；显存(GB)=8.4",
        "说明完毕。",
    ]
    assert tables_as_records("没有表格 | 只是竖线") == "没有表格 | 只是竖线"


def test_english_questions_are_answered_in_english() -> None:
    assert is_english("How many parameters does GPT-1 have?")
    assert not is_english("GPT-1 有多少参数?")
    assert not is_english("12345?")
    assert refusal_sentence("What is RAG?") == REFUSAL_EN
    assert refusal_sentence("什么是 RAG?") == REFUSAL_ZH
    user = build_messages("What is RAG?", passages())[-1]["content"]
    assert "请用英文回答" in user and REFUSAL_EN in user


def test_condensing_shows_the_recent_turns_without_markers() -> None:
    history = [("杭州地铁 1 号线有多长？", "全长 53.6 公里[1]。")]
    system, user = build_condense_messages("那 2 号线呢？", history)
    assert "改写" in system["content"]
    assert "用户：杭州地铁 1 号线有多长？" in user["content"]
    assert "助手：全长 53.6 公里。" in user["content"]
    assert user["content"].rstrip().endswith("改写后的问题：")


def test_quoting_the_rules_is_detected() -> None:
    assert quotes_instructions("好的。" + SYSTEM_PROMPT.splitlines()[2][:20])
    assert not quotes_instructions("杭州的市花是桂花。")
