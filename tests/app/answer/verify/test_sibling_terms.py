"""`sibling_terms` alone: its words, its rule over a toy embedding (words of one kind near each
other, as multilingual-e5 puts them) and a scripted yes/no judge; the real model's judgement is
tested in tests/app/test_llm_llamacpp.py's neighbour, the real embedding in the engine test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.answer.verify.sibling_terms import (
    Kind,
    missing_words,
    read_yes_no,
    remembering,
    same_kind,
    sentence_with,
    sibling_term,
    tagged_things,
    thing_words,
)

# each word's kind: two words of one kind get cosine 0.95, other pairs 0
KINDS = {
    "午餐": "meal",
    "晚餐": "meal",
    "早餐": "meal",
    "香港": "city",
    "北京": "city",
    "上海": "city",
    "断电": "power",
    "停电": "power",
    # near each other in the embedding, yet no two things of one kind
    "体重": "animal",
    "哺乳动物": "animal",
}


def embed(words: Sequence[str]) -> np.ndarray:
    kinds = sorted(set(KINDS.values()))
    own = sorted(set(words))
    rows = []
    for word in words:
        vector = np.zeros(len(kinds) + len(own))
        share = np.sqrt(0.95) if word in KINDS else 0.0
        if word in KINDS:
            vector[kinds.index(KINDS[word])] = share
        vector[len(kinds) + own.index(word)] = np.sqrt(1 - share**2)
        rows.append(vector)
    return np.array(rows)


SYNONYMS = {frozenset(("停电", "断电"))}


def judge(a: str, b: str) -> bool | None:
    return frozenset((a, b)) in SYNONYMS


NOTICE = "关于调整员工餐厅午餐价格的通知\n员工餐厅午餐标准套餐价格由 15 元调整为 18 元。"
ALLOWANCE = "员工外派补贴管理办法\n外派至北京、上海的员工，每月补贴 3000 元。"


def test_the_words_of_a_question_are_its_things_not_its_question_words() -> None:
    assert thing_words("员工餐厅的晚餐多少钱一份？") == ["员工", "餐厅", "晚餐"]
    assert "多少" not in thing_words("派驻香港的员工每月补贴多少？")
    assert "香港" in thing_words("派驻香港的员工每月补贴多少？")


def test_missing_words_are_those_no_source_holds() -> None:
    assert list(missing_words("员工餐厅的晚餐多少钱一份？", [NOTICE])) == ["晚餐"]
    assert not missing_words("员工餐厅的午餐多少钱一份？", [NOTICE])


def test_a_sibling_in_place_of_the_asked_thing_is_found() -> None:
    found = sibling_term("员工餐厅的晚餐多少钱一份？", [NOTICE], embed, judge, 0.9)
    assert found is not None and found.missing == "晚餐" and found.instead == ("午餐",)
    found = sibling_term("派驻香港的员工每月补贴多少？", [ALLOWANCE], embed, judge, 0.9)
    assert found is not None and found.missing == "香港"
    assert set(found.instead) == {"北京", "上海"}


def test_the_asked_thing_in_the_passages_is_no_sibling() -> None:
    assert sibling_term("员工餐厅的午餐多少钱一份？", [NOTICE], embed, judge, 0.9) is None
    assert sibling_term("派驻上海的员工每月补贴多少？", [ALLOWANCE], embed, judge, 0.9) is None


def test_a_synonym_in_the_passages_stands_for_the_asked_thing() -> None:
    manual = "路由器使用手册\n设备断电后配置不会丢失。"
    assert sibling_term("停电以后路由器的设置会丢吗？", [manual], embed, judge, 0.9) is None


def test_one_yes_or_an_unsure_judge_never_refuses() -> None:
    one_way = {("晚餐", "午餐"): False, ("午餐", "晚餐"): True}
    assert (
        sibling_term(
            "员工餐厅的晚餐多少钱一份？", [NOTICE], embed, lambda a, b: one_way[(a, b)], 0.9
        )
        is None
    )
    unsure = sibling_term("员工餐厅的晚餐多少钱一份？", [NOTICE], embed, lambda a, b: None, 0.9)
    assert unsure is None


def test_a_near_word_of_another_kind_is_no_sibling() -> None:
    # 哺乳动物 sits near 体重 in the embedding and is no synonym of it, but it is no weight
    # either: the passage does not speak of another thing in the weight's place
    profile = "尤金袋鼠\n尤金袋鼠是一种小型哺乳动物。"
    assert sibling_term("尤金袋鼠的体重大约是多少？", [profile], embed, judge, 0.9) is None


def test_things_of_one_kind_share_their_head_or_their_tag() -> None:
    noun, place, time = Kind("n"), Kind("ns"), Kind("t")
    assert same_kind("晚餐", noun, "午餐", noun)  # the head: a meal
    assert same_kind("周一", time, "周五", time)
    assert same_kind("研发中心", noun, "销售中心", noun)
    assert same_kind("香港", place, "北京", place)  # places
    assert same_kind("星期六", time, "上午", time)  # time words
    assert same_kind("Linux", Kind("eng"), "Windows", Kind("eng"))
    assert same_kind("特需", Kind("n", "号"), "专家", Kind("n", "号"))  # 特需号, 专家号
    assert not same_kind("体重", noun, "哺乳动物", noun)
    assert not same_kind("出生地", noun, "侄子", noun)
    assert not same_kind("香港", place, "公司", noun)
    assert not same_kind("大病", Kind("n", "医疗"), "子女", Kind("n", "教育"))


def test_the_attribute_a_question_asks_to_fill_is_no_thing_asked_about() -> None:
    # "X 的 Y 是谁/在哪里/有哪些": documents say who wrote it or where one was born without
    # the words 作者 or 出生地
    assert "作者" not in thing_words("《佛国记》的作者是谁？", question=True)
    assert "出生地" not in thing_words("严长寿的出生地在哪里？", question=True)
    assert "体重" not in thing_words("尤金袋鼠的体重大约是多少？", question=True)
    # the thing asked about stays, and so does a noun the question does not predicate on
    assert "晚餐" in thing_words("员工餐厅的晚餐多少钱一份？", question=True)
    assert "游船" in thing_words("东湖景区游船的票价是多少？", question=True)
    assert "作者" in thing_words("作者的出生地在哪里？", question=True)


def test_a_split_compound_keeps_the_head_it_modifies() -> None:
    assert tagged_things("特需号的挂号费是多少？", question=True)["特需"].head == "号"


def test_a_missing_word_with_nothing_near_it_is_not_decided_here() -> None:
    # nothing of the passage reaches the floor: other checks decide
    assert sibling_term("员工餐厅的晚餐多少钱一份？", [NOTICE], embed, judge, 0.99) is None


def test_passages_in_another_language_and_english_questions_are_not_read() -> None:
    english = "Hotel costs are reimbursed up to 500 yuan per night in first-tier cities."
    assert sibling_term("二线城市的酒店每晚能报销多少钱？", [english], embed, judge, 0.5) is None
    assert sibling_term("How much is dinner?", [NOTICE], embed, judge, 0.5) is None


def test_the_sentence_saying_the_sibling_is_located() -> None:
    where = sentence_with("午餐", ["无关的段落。", NOTICE])
    assert where is not None
    index, start, end = where
    assert index == 1 and NOTICE[start:end].startswith("关于调整员工餐厅午餐")
    # the title line is the last choice: the sentence saying something of it comes first
    title = "关于调整员工餐厅午餐价格的通知"
    index, start, end = sentence_with("午餐", [NOTICE], [title]) or (0, 0, 0)
    assert NOTICE[start:end].startswith("员工餐厅午餐标准套餐价格")
    assert sentence_with("晚餐", [NOTICE]) is None


def test_the_models_yes_or_no_is_read_from_the_start_of_its_reply() -> None:
    assert read_yes_no("Yes") is True
    assert read_yes_no(" no, they differ") is False
    assert read_yes_no('"No"') is False
    assert read_yes_no("It depends") is None


def test_a_noun_an_interrogative_modifies_is_the_kind_of_answer_not_a_thing_asked() -> None:
    assert "区别" not in thing_words("两种模型有什么区别？", question=True)
    assert "内容" not in thing_words("ZeRO-3 会对哪些内容分片？", question=True)
    assert "方法" not in thing_words("有什么样的方法？", question=True)
    assert "区别" in thing_words("两者的区别在于激活方式。")  # a passage's words are all read
    # so the generic nouns of a question never stand for what it asks about
    assert sibling_term("餐厅有什么区别？", [NOTICE], embed, judge, 0.0) is None


def test_slot_nouns_and_words_jieba_made_up_are_no_things_asked_about() -> None:
    # the name or the date is asked for, and documents state it without the word
    assert thing_words("这个专栏的名字是什么？", question=True) == ["专栏"]
    assert "日期" not in thing_words("条约的签订日期是？", question=True)
    # "花是" is jieba's guess at characters it could not place, not a word of the question
    assert "花是" not in thing_words("假苹婆的花是什么样的？", question=True)
    assert "晚餐" in thing_words("员工餐厅的晚餐多少钱一份？", question=True)


def test_a_weekday_within_a_range_the_passages_give_is_held() -> None:
    hours = ["游泳馆周一至周五 7:00 开门。"]
    assert "周三" not in missing_words("游泳馆周三几点开门？", hours)
    assert "周日" in missing_words("游泳馆周日几点开门？", hours)


def test_remembering_embeds_each_word_once_and_keeps_the_rows() -> None:
    asked: list[list[str]] = []

    def embed(words: Sequence[str]) -> np.ndarray:
        asked.append(list(words))
        return np.array([[len(w), ord(w[0])] for w in words], dtype=np.float32)

    once = remembering(embed)
    first = once(["午餐", "晚餐"])
    again = once(["晚餐", "午餐", "早餐", "午餐"])
    assert asked == [["午餐", "晚餐"], ["早餐"]]
    assert np.array_equal(again, embed(["晚餐", "午餐", "早餐", "午餐"]))
    assert np.array_equal(first, again[[1, 0]])
