"""Off question: the passage sentence clearly matching the question is given instead of an
answer drawing on neither, and never a question line or a sentence without the question's
numbers."""

from __future__ import annotations

from app.answer.verify.off_question import matching_sentence, off_question

FAQ = [
    "问：快递可以寄到公司吗？",
    "答：可以，由前台代收，请在工作日 9:00-18:00 到前台领取。",
    "问：公司几点上班？",
    "答：上午 9 点上班，弹性半小时。",
]


def test_off_question_never_gives_a_question_line() -> None:
    # the model's right answer over the FAQ stays; the question line is never given instead
    assert off_question("可以，由前台代收。", "快递可以寄到公司吗？", FAQ) is None
    assert matching_sentence("快递可以寄到公司吗？", FAQ) != 0


def test_off_question_gives_the_matching_sentence_for_an_answer_from_another_line() -> None:
    lines = [
        "数学推理:Minerva 模型解决竞赛级数学题。",
        "蛋白质结构:AlphaFold2 革新生物医药研究。",
        "代码生成:Codex 根据注释写出函数。",
    ]
    assert off_question("AlphaFold2 革新生物医药研究。", "哪个模型能解决竞赛级数学题？", lines) == 0
    assert off_question("Minerva。", "哪个模型能解决竞赛级数学题？", lines) is None


def test_a_sentence_without_the_question_s_numbers_does_not_match_it() -> None:
    lines = [
        "杭州地铁 1 号线于 2012 年开通，全长 53.6 公里；",
        "2 号线于 2014 年开通，全长 43.3 公里。",
        "杭州的市花是桂花。",
    ]
    assert matching_sentence("杭州地铁 2 号线有多长？", lines, 0.3, 0.1) != 0
    assert matching_sentence("杭州地铁 1 号线有多长？", lines, 0.3, 0.1) == 0
