"""What the checks read of a question and a sentence: the question's own words, and whether a
sentence can be given as an answer by itself."""

from __future__ import annotations

from app.answer.verify.reading import can_stand_as_answer, points_at, question_grams


def test_question_words_are_not_the_questions_own_words() -> None:
    assert question_grams("杭州的市花是什么？") == {"杭州", "市花"}
    assert question_grams("What is the refund policy?") == {"refund", "policy"}


def test_a_question_word_with_its_measure_word_or_a_how_of_size_names_nothing() -> None:
    # what a passage could hold of the question: never "哪家", "几点", "多高"
    assert question_grams("老周之前在哪家医院工作？") == {
        "老周",
        "周之",
        "之前",
        "医院",
        "院工",
        "工作",
    }
    assert question_grams("食堂几点开门？") == {"食堂", "开门"}
    assert question_grams("这座塔有多高？") == {"这座", "座塔"}
    assert question_grams("热水壶多重呢？") == {"热水", "水壶"}
    assert question_grams("第几届比赛在杭州？") & {"几届", "届比"} == set()
    # words that only start like one stay
    assert "几何" in question_grams("几何课在哪间教室？")
    assert "多大" not in question_grams("仓库多大？") and "仓库" in question_grams("仓库多大？")
    assert {"users", "zk-300"} <= question_grams("How many users does ZK-300 support?")


def test_question_lines_headings_and_table_rows_cannot_stand_as_answers() -> None:
    assert not can_stand_as_answer("问：快递可以寄到公司吗？")
    assert not can_stand_as_answer("第三章 快递收发")
    assert not can_stand_as_answer("| 型号 | 功率 |")
    assert not can_stand_as_answer("报销需要的材料如下：")
    assert can_stand_as_answer("答：可以，由前台代收。")


def test_a_demonstrative_or_a_pronoun_points_at_a_word_without_naming_it() -> None:
    assert points_at("宜州市", "该市位于广西北部。")
    assert points_at("宜州市", "宜州有山有水，它们养育了这里的人。")
    assert not points_at("宜州市", "柳州市位于广西中部。")
