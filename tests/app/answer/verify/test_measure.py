"""`measure`: a question asking for a weight, a length, a period, an amount of money or a share
is not answered by sentences that state none. Sentences written here (a kettle's manual, a gym's
price list, a lease), none from an evaluation set."""

from __future__ import annotations

import pytest

from app.answer.verify.measure import (
    asked_measures,
    asks_one_thing,
    holds_measure,
    other_member,
    unmeasured,
)


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("这款电水壶有多重？", {"weight"}),
        ("水壶的净重是多少？", {"weight"}),
        ("How heavy is the kettle?", {"weight"}),
        ("电源线有多长？", {"length", "duration"}),  # 多长: a length, or a period (试用期多长)
        ("租约期限多久？", {"duration"}),
        ("押金要交几个月？", {"duration"}),
        ("年卡多少钱？", {"money"}),
        ("私教课的价格是多少？", {"money"}),
        ("退租时押金能退多少？", {"money"}),
        ("How much does the annual pass cost?", {"money"}),
        ("会员中女性占比多少？", {"share"}),
        ("健身房有多少会员？", {"people"}),
        ("私教团队有几名教练？", set()),  # a count of coaches is asked in its own word
        ("How many members does the gym have?", {"people"}),
        ("年卡要多少人民币？", {"money"}),
        # asking no quantity, or naming one in a yes/no question
        ("水壶是什么材质的？", set()),
        ("重量超过 2 公斤的行李要托运吗？", set()),
        ("健身房几点开门？", set()),
        ("Who signs the lease?", set()),
    ],
)
def test_the_kind_of_quantity_a_question_asks_for(question: str, kinds: set[str]) -> None:
    assert asked_measures(question) == kinds


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("weight", "整机重量约 1.2 kg。"),
        ("weight", "净重 850 克"),
        ("weight", "型号=K5，重量(g)=850，容量=1.7 L"),
        ("weight", "The kettle weighs 850 grams."),
        ("length", "电源线长 75 cm。"),
        ("duration", "租期为两年，押金为一个月租金。"),
        ("duration", "Warranty: 24 months from purchase."),
        ("duration", "会员资格永久有效。"),
        ("money", "年卡 2,680 元，月卡 299 元。"),
        ("money", "Annual pass: $399."),
        ("money", "私教课价格=300"),
        ("money", "老会员续卡免费。"),
        ("money", "押金为两个月租金。"),  # an amount as a multiple of another
        ("money", "节假日加班按 3 倍工资支付。"),
        ("share", "女性会员约占 42%。"),
        ("share", "约三成会员选择私教课。"),
        ("people", "目前有会员 1,200 余人。"),
        ("people", "门店规模：教练 12 名，会员约 800 人"),
        ("people", "会员人数=800"),
        ("people", "The gym has about 800 members."),
        ("weight", "哑铃重 20 余公斤。"),  # "余" between the number and its unit
    ],
)
def test_sentences_stating_a_quantity_of_the_kind(kind: str, text: str) -> None:
    assert holds_measure(kind, text)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        # digits in names and dates are no weight, no price
        ("weight", "K5 在 K3 的基础上增加了 4G 远程控制功能。"),
        ("weight", "型号=K5，功率=1800 W，容量=1.7 L"),
        ("weight", "K5 的重量见包装盒。[1]"),  # the attribute named, no weight stated
        ("money", "本价目表自 2025 年 1 月 1 日起执行。"),
        ("money", "私教课需提前 24 小时预约。"),
        ("duration", "Damage caused by limescale is not covered."),
        ("length", "电源线可收纳在底座中。"),
        ("share", "女性会员可使用专属更衣室。"),
        ("people", "健身房成立于 2018 年，2023 年完成 A 轮融资。"),
    ],
)
def test_sentences_stating_none(kind: str, text: str) -> None:
    assert not holds_measure(kind, text)


def test_an_answer_without_the_quantity_asked_is_unmeasured() -> None:
    intro = "K5 在 K3 的基础上增加了 4G 远程控制功能。"
    assert unmeasured("K5 电水壶有多重？", [intro]) == "weight"
    assert unmeasured("K5 电水壶有多重？", [intro, "K5 重 850 g。"]) is None
    assert unmeasured("How long is the warranty?", ["Limescale damage is not covered."])
    assert unmeasured("How long is the warranty?", ["The warranty lasts 2 years."]) is None
    # no quantity asked: nothing to hold
    assert unmeasured("K5 有哪些新功能？", [intro]) is None


def test_a_question_asking_two_things_is_left_to_the_other_checks() -> None:
    assert not asks_one_thing("年卡多少钱？有问题找谁？")
    assert not asks_one_thing("How much is the pass, and when does the gym open?")
    assert asks_one_thing("入会满一年，年卡续费多少钱？")
    # the half answered holds no price, but the question asked for a contact too
    assert unmeasured("年卡多少钱？有问题找谁？", ["如有问题请联系前台王芳。"]) is None


def test_a_question_asking_one_of_a_series_needs_an_answer_naming_one() -> None:
    founded = "健身房成立于 2018 年，现有会员约 800 人。"
    assert unmeasured("这家健身房完成了哪一轮融资？", [founded]) == "哪一轮"
    assert unmeasured("这家健身房完成了哪一轮融资？", ["2023 年完成 A 轮融资。"]) is None
    assert unmeasured("这家健身房完成了哪一轮融资？", ["去年完成天使轮融资。"]) is None
    assert unmeasured("年会是第几届？", ["本次年会为第五届。"]) is None
    assert unmeasured("年会是第几届？", ["年会在杭州举行。"]) == "第几届"


def test_another_member_of_the_asked_series_is_not_the_answer() -> None:
    funding = "2023 年 9 月，公司完成 2 亿元 B 轮融资，由红杉中国领投。"
    assert other_member("公司的 A 轮融资是谁投的？", [funding]) == "a轮 → b轮"
    assert other_member("第三届年会在哪里举行？", ["第二届年会在杭州举行。"]) == "3届 → 2届"
    assert other_member("二期工程什么时候完工？", ["一期工程已于 2023 年完工。"]) == "2期 → 1期"


def test_the_asked_member_in_other_notation_or_a_count_is_no_other_member() -> None:
    assert other_member("B 轮融资是谁投的？", ["公司完成 2 亿元 b 轮融资。"]) is None
    assert other_member("第三届年会在哪里举行？", ["第 3 届年会在杭州举行。"]) is None
    assert other_member("第十二届年会在哪里？", ["第12届年会在杭州举行。"]) is None
    # a number of instalments is no instalment; 二级以上 holds 三级
    assert other_member("第 2 期什么时候付款？", ["货款可分 3 期付清。"]) is None
    assert other_member("三级医院的证明可以吗？", ["须提供二级以上医院的证明。"]) is None
    # nothing of the series stated, or a yes/no question (the other member is the answer)
    assert other_member("A 轮融资是谁投的？", ["公司成立于 2015 年。"]) is None
    assert other_member("公司在 3 楼吗？", ["公司位于大厦 12 楼。"]) is None
