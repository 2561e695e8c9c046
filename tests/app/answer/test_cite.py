"""Reading the evidence-first reply as it streams, and checking answer sentences against the
sentences they cite (the claim-support metric has its own definition, in `app/_eval.py`)."""

from __future__ import annotations

import json

from app.answer.cite import (
    ReplyReader,
    complete_sentences,
    cut_quote,
    first_repeat,
    insert_marker,
    quotes,
    restated_unit,
    supported_by,
    supporting,
    without_answer_label,
)


def stream(text: str, size: int) -> ReplyReader:
    reader = ReplyReader()
    for i in range(0, len(text), size):
        reader.feed(text[i : i + size])
    return reader


def test_the_answer_text_grows_as_the_json_streams_whatever_the_cuts() -> None:
    reply = {"evidence": [3, 1], "answer": '地址是 "192.168.1.1"\n，见\\手册 é 😀。'}
    text = json.dumps(reply)  # ASCII escapes, a surrogate pair, quotes and backslashes
    for size in (1, 2, 3, 5, 7):
        reader = ReplyReader()
        pieces = [reader.feed(text[i : i + size]) for i in range(0, len(text), size)]
        assert reader.evidence == [3, 1] and reader.done
        assert "".join(pieces) == reader.answer == reply["answer"]


def test_evidence_is_known_before_the_answer_starts() -> None:
    reader = ReplyReader()
    reader.feed('{"evidence": [2], "ans')
    assert reader.evidence == [2] and reader.answer == ""
    assert reader.feed('wer": "可以') == "可以"


def test_a_plain_text_reply_is_all_answer() -> None:
    reader = stream("杭州的市花是桂花。[1]", 3)
    assert reader.plain and reader.evidence is None and reader.answer == "杭州的市花是桂花。[1]"


EVIDENCE = "管理页面的地址是 192.168.1.1,默认账号为 admin。"


def test_a_sentence_is_supported_by_evidence_holding_its_numbers_names_and_words() -> None:
    assert supported_by("管理页面的地址是 192.168.1.1。", EVIDENCE)
    assert not supported_by("管理页面的地址是 192.168.1.2。", EVIDENCE), "a number not there"
    assert not supported_by("默认账号为 root。", EVIDENCE), "a name not there"
    assert not supported_by("请联系管理员重置密码后再登录系统。", EVIDENCE), "other words"
    # the question's own words may frame the evidence
    assert supported_by(
        "稠密模型的参数全部激活。",
        "稠密模型:所有参数全部激活",
        question="稠密模型和稀疏模型在参数激活上有什么区别?",
    )
    assert supported_by("可以。", "答:可以,由前台代收。"), "a short answer, all of it there"


def test_the_fewest_sentences_that_together_support_a_sentence_are_cited() -> None:
    texts = ["1 号线全长 53.6 公里。", "2 号线于 2014 年开通。", "2 号线全长 43.3 公里。"]
    assert supporting("2 号线全长 43.3 公里。", [0, 1, 2], texts) == [2]
    assert supporting("2 号线于 2014 年开通，全长 43.3 公里。", [0, 1, 2], texts) == [1, 2]
    assert supporting("3 号线全长 60 公里。", [0, 1, 2], texts) == []


def test_finished_sentences_are_told_from_the_one_being_written() -> None:
    assert complete_sentences("第一句。第二") == (["第一句。"], "第二")
    assert complete_sentences("第一句。") == (["第一句。"], "")
    assert complete_sentences("参数 1.") == ([], "参数 1."), "a decimal point still being written"
    assert complete_sentences("It is 1.5 GB. Then") == (["It is 1.5 GB."], " Then")


def test_markers_go_before_the_closing_punctuation() -> None:
    assert insert_marker("杭州的市花是桂花。", "[1]") == "杭州的市花是桂花。[1]"
    assert insert_marker("无标点", "[2]") == "无标点[2]"


def test_repeats_are_whole_sentences_said_again() -> None:
    sentence = "杭州的市花是桂花。"
    assert first_repeat(sentence * 3) == len(sentence)
    assert first_repeat("是的。是的。") is None, "short sentences may repeat"
    assert first_repeat(sentence + "杭州的市花") is None, "the sentence being written"


def test_a_quote_cut_short_is_told_from_a_whole_one_and_from_a_paraphrase() -> None:
    source = "1978年在美国宾州州立大学工业职业教育研究所取得博士学位，回国任教。"
    assert cut_quote("美国宾州州立大学工业职业教育研究所取得博士学位。[1]", source)
    assert cut_quote("1978 年在美国宾州州立大学工业职业教育研究所取得博士学位", source)
    assert not cut_quote(source, source), "a whole quote is not cut"
    assert not cut_quote("他在宾州州立大学读的博士。", source), "a paraphrase is no quote"
    assert not cut_quote("取得博士学位", source), "a short piece is an answer, not a quote"


def test_a_quote_may_start_by_restating_the_question() -> None:
    source = "全株具有毒性,尤其乳液,误食可引致呕吐、腹泻、发烧,影响心脏和呼吸系统。"
    question = "误食黄蝉有什么危害？"
    answer = "误食黄蝉可引致呕吐、腹泻、发烧,影响心脏和呼吸系统。"
    assert quotes(answer, source, question) and cut_quote(answer, source, question)
    assert not quotes(answer, source), "without the question the lead-in is no quote"
    assert not quotes("误食黄蝉会导致心脏和呼吸系统衰竭。", source, question)


def test_an_answer_line_given_as_the_answer_loses_its_label() -> None:
    assert without_answer_label("答：可以，由前台代收。") == "可以，由前台代收。"
    assert without_answer_label("A: Yes, reception keeps it.") == "Yes, reception keeps it."
    assert without_answer_label("答案在第三章。") == "答案在第三章。", "no label, no change"
    assert without_answer_label("Amazon: 48 h.") == "Amazon: 48 h."


def test_the_sentence_an_unsupported_answer_sentence_restates() -> None:
    texts = [
        "员工餐厅午餐标准套餐价格由 15 元调整为 18 元。",
        "早餐和晚餐价格保持不变。",
        "如有疑问，请联系行政部刘敏。",
    ]
    wanted = {"午餐", "餐调", "调价", "疑问"}
    # the part of the question it answers: lunch's price, held by the first sentence only
    assert restated_unit("午餐调价后为 18 元。", wanted, "", [0, 1, 2], texts) == 0
    # a part the answer shown already holds is no reason to give a sentence
    shown = "如有疑问，请联系刘敏。"
    assert restated_unit("有疑问找刘敏。", wanted, shown, [0, 1, 2], texts) is None
    # no question word in common with any of them
    assert restated_unit("请带好工牌。", wanted, "", [0, 1, 2], texts) is None
