"""The check step alone (`AnswerCheck`): over passages written here (a notice, a leave policy,
two company profiles, an English manual), fed a scripted reply as it streams, with the readings
beyond shared words (polarity, yes/no, merged facts, languages) switched on and off."""

from __future__ import annotations

from collections.abc import Sequence

from app.answer.check import AnswerCheck
from app.answer.passages import Passage
from app.answer.prompt import PromptPassage, number_sentences
from app.answer.results import Checked
from app.answer.verify.cross_language import Similarity, similarity_with
from app.answer.verify.sibling_terms import Embed, Synonym
from ingest._embed import Embedder
from ingest.settings import Settings


def check_reply(
    question: str,
    texts: Sequence[str],
    reply: str,
    evidence: Sequence[int],
    settings: Settings,
    similarity: Similarity | None = None,
    synonym: Synonym | None = None,
    embed: Embed | None = None,
) -> tuple[Checked, str]:
    passages = [
        Passage(
            i + 1,
            (i,),
            f"d{i}",
            f"d{i}",
            f"d{i}.txt",
            "txt",
            None,
            0,
            (),
            0,
            len(t),
            t,
            1.0,
            0.9,
        )
        for i, t in enumerate(texts)
    ]
    prompt = [PromptPassage(p.number, p.title, p.page, p.headings, p.prompt_text) for p in passages]
    check = AnswerCheck(
        question,
        passages,
        number_sentences(prompt),
        settings,
        similarity,
        synonym=synonym,
        embed=embed,
    )
    check.set_evidence(list(evidence), False)
    shown = "".join(check.feed(c) for c in reply) + check.flush()
    result, late = check.finish(not evidence)
    return result, shown + late


NOTICE = "正式员工可凭工牌申请班车卡；实习生和外包人员不在发放范围内。"


def test_a_yes_to_a_yes_no_question_the_evidence_denies_is_never_shown(
    small_kb_settings: Settings,
) -> None:
    question = "实习生可以申请班车卡吗？"
    result, shown = check_reply(
        question, [NOTICE], "可以，实习生可凭工牌申请班车卡。", [1], small_kb_settings
    )
    assert "可以" not in shown and "可凭工牌" not in shown, "nothing reads as yes"
    # what is given instead is the notice's clause about 实习生
    assert result.answer == shown == "实习生和外包人员不在发放范围内。[1]"
    [event] = [g for g in result.guards if g.name == "yes_no"]
    assert event.before_answer is not None and "可凭工牌" in event.before_answer
    # without the reading, the check showed the yes (what the issue measured)
    off = small_kb_settings.model_copy(update={"guard_yes_no": False})
    _, before = check_reply(question, [NOTICE], "可以，实习生可凭工牌申请班车卡。", [1], off)
    assert "可凭工牌" in before


def test_a_yes_about_the_other_model_gives_the_clause_about_the_asked_one(
    small_kb_settings: Settings,
) -> None:
    manual = (
        "## 产品简介\nT 系列门铃有 T1 和 T2 两款，T2 增加了夜视功能。\n## 常见问题\n"
        "问：晚上能看清门外吗？\n答：T2 支持夜视模式；T1 不支持夜视模式。"
    )
    question = "T1 能开夜视模式吗？"
    # the model quotes the T2 clause, naming the heading above it as its evidence
    result, shown = check_reply(question, [manual], "T2 支持夜视模式。", [3], small_kb_settings)
    assert result.answer == shown == "T1 不支持夜视模式。[1]"
    assert any(g.name == "yes_no" for g in result.guards)
    off = small_kb_settings.model_copy(update={"guard_yes_no": False})
    _, before = check_reply(question, [manual], "T2 支持夜视模式。", [3], off)
    assert before.startswith("T2 支持夜视模式"), "the other model's yes was the answer"


def test_a_bare_piece_given_to_a_yes_no_question_is_shown_with_its_sentence(
    small_kb_settings: Settings,
) -> None:
    minutes = "周会纪要\n出席：王芳、赵磊\n缺席：陈晨（病假）\n会议决定下周发布新版本。"
    result, shown = check_reply(
        "陈晨参加周会了吗？", [minutes], "陈晨（病假）", [3], small_kb_settings
    )
    assert result.answer == shown and shown.startswith(("缺席：陈晨（病假）", "缺席:陈晨(病假)"))
    # to a question that asks who, the name is the answer in its own right
    _, shown = check_reply("谁请了病假？", [minutes], "陈晨（病假）", [3], small_kb_settings)
    assert shown.startswith("陈晨")


def test_a_no_that_the_evidence_states_is_shown(small_kb_settings: Settings) -> None:
    question = "实习生可以申请班车卡吗？"
    reply = "不可以，实习生和外包人员不在发放范围内。"
    result, shown = check_reply(question, [NOTICE], reply, [2], small_kb_settings)
    assert shown == result.answer and "不在发放范围内" in shown and not result.refused
    assert not [g for g in result.guards if g.name in ("yes_no", "polarity")]
    # and the yes for 正式员工, from the same notice
    result, shown = check_reply(
        "正式员工可以申请班车卡吗？",
        [NOTICE],
        "可以，正式员工可凭工牌申请班车卡。",
        [1],
        small_kb_settings,
    )
    assert "可凭工牌申请班车卡" in shown and not result.refused


def test_a_sentence_of_the_opposite_polarity_is_dropped(small_kb_settings: Settings) -> None:
    policy = "试用期员工不可以请婚假。婚假为 3 天，须在领取结婚证后一年内休完。"
    question = "试用期员工的婚假怎么规定？"
    result, shown = check_reply(
        question, [policy], "试用期员工可以请婚假。", [1], small_kb_settings
    )
    assert "试用期员工可以请婚假" not in shown
    assert any(g.name == "polarity" for g in result.guards)
    off = small_kb_settings.model_copy(update={"guard_polarity": False})
    _, before = check_reply(question, [policy], "试用期员工可以请婚假。", [1], off)
    assert "试用期员工可以请婚假。" in before, "bigrams alone let the flip through"
    # the same polarity in other words stays
    _, shown = check_reply(question, [policy], "试用期员工不能请婚假。", [1], small_kb_settings)
    assert shown.startswith("试用期员工不能请婚假。")


def test_a_fact_of_another_passage_is_not_put_on_the_questions_subject(
    small_kb_settings: Settings,
) -> None:
    profiles = [
        "A 公司成立于 2015 年，总部位于杭州，主营智能家居。",
        "B 公司由王五于 2010 年创立，总部位于上海。",
    ]
    question = "A 公司的创始人是谁？"
    result, shown = check_reply(question, profiles, "A 公司由王五创立。", [1, 3], small_kb_settings)
    assert "王五" not in shown
    assert any(g.name == "merged_facts" for g in result.guards)
    off = small_kb_settings.model_copy(update={"guard_merged_facts": False})
    _, before = check_reply(question, profiles, "A 公司由王五创立。", [1, 3], off)
    assert "王五" in before
    # the fact of B stays B's
    _, shown = check_reply(
        "B 公司的创始人是谁？", profiles, "B 公司由王五创立。", [3], small_kb_settings
    )
    assert "王五" in shown


def test_pieces_of_two_passages_do_not_support_one_sentence(small_kb_settings: Settings) -> None:
    texts = ["A 公司成立于 2015 年。", "B 公司总部位于上海浦东新区张江。"]
    reply = "A 公司成立于 2015 年，总部位于上海浦东新区张江。"
    result, shown = check_reply("A 公司的概况？", texts, reply, [1, 2], small_kb_settings)
    assert "A 公司成立于 2015 年，总部" not in shown
    assert any(g.name == "merged_facts" for g in result.guards)
    off = small_kb_settings.model_copy(update={"guard_merged_facts": False})
    _, before = check_reply("A 公司的概况？", texts, reply, [1, 2], off)
    assert "张江。[1][2]" in before, "two passages' pieces made one fact"
    # two sentences of one passage may still support one answer sentence together
    one = ["A 公司成立于 2015 年。A 公司总部位于上海浦东新区张江。"]
    _, shown = check_reply("A 公司的概况？", one, reply, [1, 2], small_kb_settings)
    assert shown.startswith(reply + "[1][2]")


def test_a_name_taken_from_one_row_and_a_value_from_another_gives_the_rows_instead(
    small_kb_settings: Settings,
) -> None:
    policy = [
        "第三条 派驻成都、重庆、西安的员工，每月补贴 2500 元；"
        "派驻其他省会城市的员工，每月补贴 1500 元。"
    ]
    question = "派到成都工作，每月补贴多少？"
    merged = "派驻成都的员工，每月补贴 1500 元。"
    result, shown = check_reply(question, policy, merged, [1, 2], small_kb_settings)
    assert "派驻成都的员工，每月补贴 1500 元" not in shown
    assert "2500 元" in result.answer, "the rows the model chose are given instead"
    assert any(g.name == "merged_facts" for g in result.guards)
    off = small_kb_settings.model_copy(update={"guard_merged_facts": False})
    _, before = check_reply(question, policy, merged, [1, 2], off)
    assert "派驻成都的员工，每月补贴 1500 元。" in before, "shared words alone let it through"
    # the city's own figure, restated, stays the answer
    _, shown = check_reply(
        question, policy, "派驻成都的员工，每月补贴 2500 元。", [1], small_kb_settings
    )
    assert shown.startswith("派驻成都的员工，每月补贴 2500 元。[1]")


def test_a_sentence_about_the_sibling_its_document_tells_apart_is_no_answer(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    notice = (
        "关于调整游泳馆开放时间的通知\n"
        "自 6 月 1 日起，游泳馆周一至周五开放时间调整为 7:00-21:00。\n"
        "周六、周日开放时间保持不变。"
    )
    reply = "游泳馆周一至周五开放时间调整为 7:00-21:00。"

    def no_synonyms(a: str, b: str) -> bool | None:
        return False  # the bundled model's answer for 周日 and 周一, both orders

    def check(question: str, settings: Settings) -> tuple[Checked, str]:
        embed = embedder.encode_queries
        return check_reply(
            question, [notice], reply, [1], settings, synonym=no_synonyms, embed=embed
        )

    result, shown = check("游泳馆周日几点开门？", small_kb_settings)
    assert result.refused and "7:00-21:00" not in shown
    # what the notice says of Sundays first, then the sentence the answer rested on
    assert [c.quote for c in result.related] == [
        "周六、周日开放时间保持不变。",
        "自 6 月 1 日起，游泳馆周一至周五开放时间调整为 7:00-21:00。",
    ]
    assert any(g.name == "other_thing" for g in result.guards)
    off = small_kb_settings.model_copy(update={"guard_other_thing": False})
    result, _ = check("游泳馆周日几点开门？", off)
    assert not result.refused and "7:00-21:00" in result.answer
    # asked about a weekday, the same sentence answers
    result, _ = check("游泳馆周三几点开门？", small_kb_settings)
    assert not result.refused


def test_the_passage_an_answer_rests_on_speaking_of_a_sibling_is_no_answer(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    leave = "请假制度\n一、婚假：员工可享受 3 天婚假。\n二、病假：病假期间按基本工资的 80% 发放。"
    # an English passage beside it: before the answer, the rule cannot read the prompt's
    # passages, since a word missing in Chinese may stand there in English
    travel = "Travel Policy\nHotel costs are reimbursed up to 500 yuan per night."
    reply = "员工可享受 3 天婚假。"

    def no(a: str, b: str) -> bool | None:
        return False  # the bundled model's answer for 产假 and 婚假, both orders

    def check(question: str, settings: Settings, synonym: Synonym = no) -> Checked:
        texts = [leave, travel]
        embed = embedder.encode_queries
        return check_reply(question, texts, reply, [2], settings, synonym=synonym, embed=embed)[0]

    result = check("员工产假可以休几天？", small_kb_settings)
    assert result.refused and [g.detail for g in result.guards if g.name == "sibling_terms"]
    assert [c.quote for c in result.related] == ["一、婚假：员工可享受 3 天婚假。"]
    off = small_kb_settings.model_copy(update={"guard_sibling_terms": False})
    assert not check("员工产假可以休几天？", off).refused
    assert not check("员工产假可以休几天？", small_kb_settings, lambda a, b: True).refused
    # the question about the thing the passage names
    assert not check("员工婚假可以休几天？", small_kb_settings).refused


def test_a_word_the_passage_says_in_other_words_is_not_refused_for_a_sibling_beside_them(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    notice = "员工餐厅通知\n因食材成本上涨，员工餐厅午餐套餐价格调整为 18 元。"
    # with an English passage beside it, so the rule reads the passage after the answer
    travel = "Travel Policy\nHotel costs are reimbursed up to 500 yuan per night."
    synonyms = {frozenset(("午饭", "午餐")), frozenset(("食堂", "餐厅"))}

    def judge(a: str, b: str) -> bool | None:
        return frozenset((a, b)) in synonyms  # scripted: the model says yes to 午饭/午餐 both ways

    result, _ = check_reply(
        "食堂的午饭套餐现在多少钱？",
        [notice, travel],
        "员工餐厅午餐套餐价格调整为 18 元。",
        [2],
        small_kb_settings,
        synonym=judge,
        embed=embedder.encode_queries,
    )
    # 食材 shares 食堂's first character, but 餐厅 is nearer: the canteen in other words
    assert not result.refused and "18 元" in result.answer


MANUAL = (
    "The battery lasts up to 12 hours on a full charge. "
    "A full charge takes about 3 hours with the supplied USB-C cable. "
    "Do not charge the speaker while it is wet."
)


def test_an_answer_in_chinese_over_an_english_manual_is_supported(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    similarity = similarity_with(embedder)
    question = "电池能用多久？"
    result, shown = check_reply(
        question, [MANUAL], "电池最长可用 12 小时。", [1], small_kb_settings, similarity
    )
    assert shown == result.answer and shown.startswith("电池最长可用 12 小时。[1]")
    assert result.citations[0].quote.startswith("The battery lasts up to 12 hours")
    assert any(g.name == "cross_language" for g in result.guards)
    # a wrong number is unsupported however close the sentence
    result, shown = check_reply(
        question, [MANUAL], "电池最长可用 10 小时。", [1], small_kb_settings, similarity
    )
    assert "10 小时" not in shown
    # and a fact of another unit: the right one is cited, or none
    result, shown = check_reply(
        question, [MANUAL], "电池充满约需 3 小时。", [1], small_kb_settings, similarity
    )
    assert shown.startswith("电池充满约需 3 小时。[1]")
    quoted = " ".join(q.text for q in result.evidence_quotes)
    assert "A full charge takes about 3 hours" in quoted, "quoted from the sentence stating it"
    assert "A full charge" not in result.answer, "the quote is evidence, not the answer"
    # a negation flip across languages
    _, shown = check_reply(
        "潮湿时能充电吗？", [MANUAL], "潮湿时可以给音箱充电。", [3], small_kb_settings, similarity
    )
    assert "可以给音箱充电" not in shown


SHUTTLE = "班车每个工作日早上 7:30 从地铁站发车。员工凭工牌乘车，乘车免费。"
PRICES = "An annual membership costs 2,400 yuan. A monthly membership costs 300 yuan."


def test_a_made_up_figure_is_not_supported_by_another_documents_sentence_in_another_language(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    # units: [1] the departure, [2] free rides, [3] the annual fee, [4] the monthly fee
    similarity = similarity_with(embedder)
    result, shown = check_reply(
        "坐班车要花多少钱？",
        [SHUTTLE, PRICES],
        "坐班车要花 300 元。",
        [1, 2],
        small_kb_settings,
        similarity,
    )
    assert "300 元" not in shown, "a gym's monthly fee is no bus fare"
    assert not any("300 yuan" in c.quote for c in result.citations)
    # within the document the model chose, a restatement of another of its sentences stands
    result, shown = check_reply(
        "月卡多少钱？", [SHUTTLE, PRICES], "月卡 300 元。", [3], small_kb_settings, similarity
    )
    assert shown.startswith("月卡 300 元。[1]")
    assert result.citations[0].quote.startswith("A monthly membership costs 300 yuan")


SPEC_TABLE = """路由器规格：
| 型号 | 重量 | 无线速率 |
| --- | --- | --- |
| RX10 | 350 g | 1800 Mbps |
| RX20 | - | 3000 Mbps |
两款均支持 Mesh 组网。"""


def test_a_row_of_another_model_is_no_answer(small_kb_settings: Settings) -> None:
    # units: [1] the lead-in, [2] RX10's row, [3] RX20's row, [4] the closing sentence
    question = "RX20 有多重？"
    result, shown = check_reply(question, [SPEC_TABLE], "重量为 350 g。", [2], small_kb_settings)
    assert result.refused and result.refusal_reason == "not_answered"
    assert "350 g" not in shown.split("相关内容")[0], "the other model's weight is no answer"
    [event] = [g for g in result.guards if g.name == "other_row"]
    assert event.before_answer is not None and "350 g" in event.before_answer
    assert result.related and "RX10" in result.related[0].quote  # shown as related only
    # its own row, empty in that column, does not answer either
    result, _ = check_reply(
        "RX20 的重量是多少？", [SPEC_TABLE], "RX20 的无线速率为 3000 Mbps。", [3], small_kb_settings
    )
    assert result.refused and any(g.name == "other_row" for g in result.guards)
    # without the check, the neighbour's row was the answer
    off = small_kb_settings.model_copy(update={"guard_other_row": False})
    result, shown = check_reply(question, [SPEC_TABLE], "重量为 350 g。", [2], off)
    assert not result.refused and "350 g" in shown


KETTLE = (
    "K 系列电水壶有 K3 和 K5 两款。K5 在 K3 的基础上增加了 4G 远程控制功能。"
    "K3 的整机重量为 1.1 kg。"
)


def test_a_sentence_stating_no_quantity_of_the_kind_asked_is_no_answer(
    small_kb_settings: Settings,
) -> None:
    # units: [1] the range, [2] K5's introduction, [3] K3's weight
    question = "K5 有多重？"
    reply = "K5 在 K3 的基础上增加了 4G 远程控制功能。"
    result, shown = check_reply(question, [KETTLE], reply, [2], small_kb_settings)
    assert result.refused and result.refusal_reason == "not_answered"
    assert "4G" not in shown.split("相关内容")[0], "an introduction is no weight"
    [event] = [g for g in result.guards if g.name == "measure"]
    assert event.before_answer is not None and "4G" in event.before_answer
    assert result.related and "K5" in result.related[0].quote  # shown as related only
    # a sentence stating a weight answers
    result, shown = check_reply(
        "K3 有多重？", [KETTLE], "K3 的整机重量为 1.1 kg。", [3], small_kb_settings
    )
    assert not result.refused and "1.1 kg" in shown
    # without the check, the introduction was the answer
    off = small_kb_settings.model_copy(update={"guard_measure": False})
    result, shown = check_reply(question, [KETTLE], reply, [2], off)
    assert not result.refused and "4G" in shown


def test_the_row_asked_about_stays_the_answer(small_kb_settings: Settings) -> None:
    result, shown = check_reply(
        "RX10 有多重？", [SPEC_TABLE], "RX10 的重量为 350 g。", [2], small_kb_settings
    )
    assert not result.refused and "350 g" in shown
    assert not [g for g in result.guards if g.name == "other_row"]
    # a comparison names both rows
    result, shown = check_reply(
        "RX10 和 RX20 哪个无线速率更高？",
        [SPEC_TABLE],
        "RX20 的无线速率为 3000 Mbps，高于 RX10 的 1800 Mbps。",
        [2, 3],
        small_kb_settings,
    )
    assert not result.refused and "3000 Mbps" in shown


def test_an_answer_held_back_by_a_row_and_then_kept_is_shown_whole(
    small_kb_settings: Settings,
) -> None:
    # the first sentence rests on the other model's row (held back), the second on prose: the
    # answer is not refused, so what was held is shown at the end
    result, shown = check_reply(
        "RX20 有多重？",
        [SPEC_TABLE],
        "RX10 的重量为 350 g。两款均支持 Mesh 组网。",
        [2, 4],
        small_kb_settings,
    )
    assert not result.refused
    assert shown == result.answer and "Mesh" in shown


ROUTE_NOTICE = [
    "自 5 月 6 日起，一号线班车的发车时间由 7:30 提前到 7:10，发车地点不变。",
    "如需改签线路，请联系行政部王芳（分机 6102）。",
    "班车卡遗失请到前台补办。",
]


def test_a_fact_in_other_words_is_given_as_the_document_states_it(
    small_kb_settings: Settings,
) -> None:
    question = "一号线班车现在几点发车？改签线路找谁？"
    reply = "班车现在 7:10 出发。改签线路请联系行政部王芳。"
    result, shown = check_reply(question, ROUTE_NOTICE, reply, [1, 2], small_kb_settings)
    assert "班车现在 7:10 出发。" in result.dropped, "the paraphrase itself is not supported"
    # the sentence it restates is shown whole, after the supported one, and cited
    assert result.answer == shown
    assert shown.startswith("如需改签线路，请联系行政部王芳（分机 6102）。[1]")
    assert shown.endswith("由 7:30 提前到 7:10，发车地点不变。[2]")
    [event] = [g for g in result.guards if g.name == "restated"]
    assert event.before_answer is not None and "7:10" not in event.before_answer
    off = small_kb_settings.model_copy(update={"restate_unsupported": False})
    result, shown = check_reply(question, ROUTE_NOTICE, reply, [1, 2], off)
    assert "7:10" not in shown and "王芳" in shown


def test_nothing_is_restated_for_a_sentence_about_no_part_of_the_question(
    small_kb_settings: Settings,
) -> None:
    # the unsupported sentence shares none of the question's words with an unshown evidence
    # sentence: it is dropped and nothing is given in its place
    question = "改签线路找谁？"
    reply = "改签线路请联系行政部王芳。另外记得带好工牌。"
    result, shown = check_reply(question, ROUTE_NOTICE, reply, [2, 3], small_kb_settings)
    assert shown == result.answer == "如需改签线路，请联系行政部王芳（分机 6102）。[1]"
    assert not [g for g in result.guards if g.name == "restated"]


def test_a_yes_no_answer_is_not_restated(small_kb_settings: Settings) -> None:
    question = "一号线班车改时间了吗？"
    reply = "改了，班车现在 7:10 出发。改签线路请联系行政部王芳。"
    result, _ = check_reply(question, ROUTE_NOTICE, reply, [1, 2], small_kb_settings)
    assert not [g for g in result.guards if g.name == "restated"]
