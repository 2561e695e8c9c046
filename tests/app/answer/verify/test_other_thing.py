"""`other_thing`: a sentence about another thing of the kind the question names, where its own
document names both. Documents written here (a gym's notice, a travel policy, a club's
timetable), none from an evaluation set."""

from __future__ import annotations

import pytest

from app.answer.verify.other_thing import OtherThing, candidates, other_thing
from app.answer.verify.sibling_terms import Embed
from ingest._embed import Embedder
from ingest.settings import get_settings

FLOOR = get_settings().sibling_floor

# the model's "is A a synonym of B?" stands in as a table here (its answers on word pairs are
# measured by bench/synonym_bench.py); None: unsure
SAME = {frozenset(("办公室", "办公区"))}


def judge(a: str, b: str) -> bool | None:
    return frozenset((a, b)) in SAME


@pytest.fixture
def embed(embedder: Embedder) -> Embed:  # the real embedding: how near two words are decides
    return embedder.encode_queries


NOTICE = (
    "关于调整游泳馆开放时间的通知\n"
    "自 6 月 1 日起，游泳馆周一至周五开放时间调整为 7:00-21:00。\n"
    "周六、周日开放时间保持不变。\n"
    "如有疑问，请联系前台。"
)
POLICY = "差旅住宿标准\n出差至北京、上海的员工，住宿每晚不超过 450 元；\n出差至香港的员工另行审批。"


def test_a_sentence_about_the_sibling_the_document_tells_apart_is_another_things(
    embed: Embed,
) -> None:
    weekdays = "自 6 月 1 日起，游泳馆周一至周五开放时间调整为 7:00-21:00。"
    found = other_thing("游泳馆周日几点开门？", weekdays, NOTICE, judge, embed, FLOOR)
    assert found is not None and found.asked == "周日" and found.said in ("周一", "周五")
    cities = "出差至北京、上海的员工，住宿每晚不超过 450 元；"
    canteen = "员工餐厅价格\n午餐套餐 18 元。\n早餐和晚餐价格不变。"
    found = other_thing("晚餐多少钱？", "午餐套餐 18 元。", canteen, judge, embed, FLOOR)
    assert found == OtherThing("晚餐", "午餐")
    # places are of a kind by their characters only: a sentence naming another place mostly
    # names a part of the asked one or one beside it (香港 for 北京 is `sibling_terms`' to judge)
    assert other_thing("出差到香港住宿每晚能报多少？", cities, POLICY, judge, embed, FLOOR) is None


def test_the_sentence_about_the_asked_thing_passes(embed: Embed) -> None:
    weekdays = "自 6 月 1 日起，游泳馆周一至周五开放时间调整为 7:00-21:00。"
    assert other_thing("游泳馆周一几点开门？", weekdays, NOTICE, judge, embed, FLOOR) is None
    cities = "出差至北京、上海的员工，住宿每晚不超过 450 元；"
    assert other_thing("出差到上海住宿每晚能报多少？", cities, POLICY, judge, embed, FLOOR) is None


def test_without_the_document_naming_the_asked_thing_it_is_not_this_checks_to_judge(
    embed: Embed,
) -> None:
    # the policy never names 深圳: whether it counts among the cities is `sibling_terms`' question
    cities = "出差至北京、上海的员工，住宿每晚不超过 450 元；"
    assert other_thing("出差到深圳住宿每晚能报多少？", cities, POLICY, judge, embed, FLOOR) is None


def test_a_sentence_speaking_of_the_thing_without_naming_it_passes(embed: Embed) -> None:
    article = "华南虎是虎的一个亚种。它们的猎物有野猪及水鹿。华南虎已多年未见于野外。"
    assert (
        other_thing(
            "华南虎的猎物有哪些？", "它们的猎物有野猪及水鹿。", article, judge, embed, FLOOR
        )
        is None
    )


def test_latin_words_are_of_a_kind_only_as_model_names_of_one_series(embed: Embed) -> None:
    manual = "T 系列门铃有 T1 和 T2 两款。T2 支持夜视。T1 的续航为 6 个月。"
    found = other_thing("T1 支持夜视吗？", "T2 支持夜视。", manual, judge, embed, FLOOR)
    assert found == OtherThing("t1", "t2")
    notes = "量化方法有 PTQ 和 QAT。Post-Training Quantization (PTQ)：训练后直接量化。"
    sentence = "Post-Training Quantization (PTQ)：训练后直接量化。"
    assert other_thing("PTQ 和 QAT 有什么不同？", sentence, notes, judge, embed, FLOOR) is None


def test_two_words_of_a_kind_the_model_calls_synonyms_are_one_thing(embed: Embed) -> None:
    faq = "问：可以带宠物来办公室吗？\n答：不可以，办公区禁止携带宠物。"
    sentence = "答：不可以，办公区禁止携带宠物。"
    assert candidates("可以带宠物来办公室吗？", sentence, faq, embed, FLOOR) == [
        OtherThing("办公室", "办公区")
    ]
    assert other_thing("可以带宠物来办公室吗？", sentence, faq, judge, embed, FLOOR) is None

    def unsure(a: str, b: str) -> bool | None:
        return None

    weekdays = "自 6 月 1 日起，游泳馆周一至周五开放时间调整为 7:00-21:00。"
    assert other_thing("游泳馆周日几点开门？", weekdays, NOTICE, unsure, embed, FLOOR) is None, (
        "only two nos"
    )


def test_another_place_a_sentence_mentions_is_not_one_standing_for_the_asked_place(
    embed: Embed,
) -> None:
    # a sentence naming places names many: only one near the asked word stands in its place
    town = "宜州市\n宜州市位于广西北部。该市古称龙州，明代属庆远府，地处中国西南。"
    sentence = "该市古称龙州，明代属庆远府，地处中国西南。"
    assert other_thing("宜州市古称什么？", sentence, town, judge, embed, FLOOR) is None
