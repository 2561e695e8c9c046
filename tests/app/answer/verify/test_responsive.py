"""The responsiveness scorer: what a question asks for, what a sentence holds, and the learned
score of real sentences with the real embedding model (the shipped weights, not a mock)."""

from __future__ import annotations

import pytest

from app.answer.verify.responsive import (
    FEATURES,
    Candidate,
    Judge,
    Pair,
    asked_type,
    features,
    holds_type,
    load_model,
    own_label,
)
from ingest._embed import Embedder


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("新规定从哪天起执行？", "date"),
        ("When does the store open?", "date"),
        ("这款手机的电池容量是多少？", "number"),
        ("How many seats does the hall have?", "number"),
        ("会议由谁主持？", "person"),
        ("总部在哪里？", "place"),
        ("员工可以带宠物上班吗？", None),
        ("怎样重置密码？", None),
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question: str, kind: str | None) -> None:
    assert asked_type(question) == kind


def test_what_a_sentence_holds() -> None:
    assert holds_type("date", "新价格自 2025 年 5 月 1 日起执行。")
    assert not holds_type("date", "请联系行政部咨询。")
    assert holds_type("number", "电池容量为 5000 mAh。")
    assert holds_type("person", "会议由张伟主持。")
    assert not holds_type("person", "会议在二楼举行。")


def test_a_faq_answer_line_is_read_with_its_question_line() -> None:
    label = own_label("员工手册", ("考勤",), "问：可以远程办公吗？", "答：每周可远程办公一天。")
    assert "可以远程办公吗" in label and "员工手册" in label
    assert "上一句" not in own_label("手册", (), "上一句。", "这一句。")


def test_a_number_of_the_question_missing_from_the_sentence_is_seen() -> None:
    def pair(sentence: str) -> Pair:
        return Pair("2022 年的营业收入是多少？", sentence, "年报", 0.9, 0.9, 0.8)

    assert features(pair("2023 年营业收入 5 亿元。"))["number_missing"] == 1.0
    assert features(pair("2022 年营业收入 4 亿元。"))["number_missing"] == 0.0


def test_the_shipped_weights_cover_every_feature() -> None:
    model = load_model()
    assert model.names == FEATURES
    assert 0.0 < model.threshold < 1.0


def test_the_neighbours_row_scores_below_the_row_asked_about(embedder: Embedder) -> None:
    judge = Judge(embedder)
    rows = (
        "型号=T100，屏幕尺寸=6.1 英寸，电池容量=4000 mAh",
        "型号=T200，屏幕尺寸=6.7 英寸，电池容量=5000 mAh",
    )
    label = "T 系列手机规格"
    asked, neighbour = judge.scores(
        "T200 的电池容量有多大？",
        [Candidate(rows[1], label, (rows[0],)), Candidate(rows[0], label, (rows[1],))],
    )
    assert asked > neighbour


def test_a_sentence_about_another_attribute_scores_below_the_one_asked(
    embedder: Embedder,
) -> None:
    judge = Judge(embedder)
    answers, other = judge.scores(
        "这家公司的总部设在哪里？",
        [
            Candidate("公司总部设在苏州工业园区。", "公司简介", ("公司成立于 2010 年。",)),
            Candidate("公司成立于 2010 年。", "公司简介", ("公司总部设在苏州工业园区。",)),
        ],
    )
    assert answers >= judge.threshold > other


def test_evidence_in_another_language_is_not_judged(embedder: Embedder) -> None:
    # no pair across languages was learned from: the check stands aside, it never refuses
    judge = Judge(embedder)
    [score] = judge.scores(
        "How many staff does the company have?",
        [Candidate("公司目前有员工约 300 人。", "公司简介", ())],
    )
    assert score >= judge.threshold
