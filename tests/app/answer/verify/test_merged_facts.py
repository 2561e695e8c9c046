"""Merged facts: a name or number of the question put where the evidence has another one, the
fact of one thing given as the fact of another."""

from __future__ import annotations

from app.answer.verify.merged_facts import split_value, swapped_name


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


def test_a_chinese_name_of_the_question_put_in_place_of_other_words_is_a_swap() -> None:
    question = "派驻成都的员工每月补贴多少？"
    other_cities = "派驻其他省会城市的员工，每月补贴 1500 元。"
    assert swapped_name("派驻成都的员工，每月补贴 1500 元。", other_cities, question)
    # the evidence names it among others: the fact is its own
    listed = "派驻成都、重庆、西安的员工，每月补贴 2500 元。"
    assert not swapped_name("派驻成都的员工，每月补贴 2500 元。", listed, question)
    # another city of one character's difference
    assert swapped_name("苏州的市树是香樟。", "杭州的市树是香樟。", "苏州的市树是什么？")
    assert not swapped_name("苏州的市树是香樟。", "苏州市的市树是香樟。", "苏州的市树是什么？")
    # a pronoun in the name's place is the thing named, not another
    assert not swapped_name("苏州的市树是香樟。", "该市的市树是香樟。", "苏州的市树是什么？")
    assert not swapped_name("陈立的导师是周明。", "他的导师是周明。", "陈立的导师是谁？")
    assert swapped_name("陈立的导师是周明。", "王小川的导师是周明。", "陈立的导师是谁？")
    # words that are no name may be said in other words ("入职" for "报到")
    assert not swapped_name(
        "入职第一天需要带身份证。", "报到当天需携带身份证。", "入职第一天要带什么？"
    )


def test_a_subject_from_one_sentence_and_a_value_from_another_is_a_split_value() -> None:
    rows = "北京办公室有 120 人。\n广州办公室有 80 人。"
    assert split_value("广州办公室有 120 人。", rows, "广州办公室有多少人？")
    assert not split_value("广州办公室有 80 人。", rows, "广州办公室有多少人？")
    specs = "T1 重 320 克。\nT2 重 450 克。"
    assert split_value("T2 重 320 克。", specs, "T2 有多重？")
    # two sentences about one thing add to each other
    one_thing = "广州办公室成立于 2012 年。\n目前有员工 80 名。"
    assert not split_value(
        "广州办公室成立于 2012 年，有员工 80 名。", one_thing, "广州办公室的情况？"
    )
    # one sentence alone is not this reading's to judge
    assert not split_value("广州办公室有 120 人。", "北京办公室有 120 人。", "广州办公室有多少人？")
