"""The responsiveness scorer's training pairs: the neighbour's question made from a real
question and the sentence that answers it."""

from __future__ import annotations

import random

from bench.train_responsive import Unit, corpus_vocabulary, neighbour_question


def _vocabulary() -> dict[str, list[str]]:
    units = {
        "d1": [
            Unit("d1", s, s, "")
            for s in ("派驻北京的员工每月补贴 3000 元。", "深圳分公司于 2019 年成立。")
        ],
        "d2": [Unit("d2", s, s, "") for s in ("上海和广州的补贴相同。", "型号 K2 重 120 克。")],
    }
    return corpus_vocabulary(units)


def test_a_place_the_sentence_names_is_swapped_for_one_the_document_never_mentions() -> None:
    vocabulary = _vocabulary()
    document = "派驻北京的员工每月补贴 3000 元。深圳分公司于 2019 年成立。"
    for seed in range(5):
        asked = neighbour_question(
            "派驻北京的员工每月补贴多少？",
            "派驻北京的员工每月补贴 3000 元。",
            document,
            vocabulary,
            random.Random(seed),
        )
        assert asked is not None and asked.startswith("派驻") and "的员工每月补贴多少" in asked
        place = asked[2 : asked.index("的")]
        assert place not in document and place in vocabulary["ns"]


def test_a_year_becomes_a_nearby_year_the_document_does_not_give() -> None:
    asked = neighbour_question(
        "公司哪年在2019年扩招？", "2019 年扩招", "2019 年扩招。", {}, random.Random(0)
    )
    assert asked is not None and "2019" not in asked
    year = int("".join(c for c in asked if c.isdigit()))
    assert 2016 <= year <= 2022


def test_nothing_to_swap_gives_no_question() -> None:
    # the question's name is not in the answer sentence: swapping it would not make a neighbour
    assert (
        neighbour_question(
            "员工每月补贴多少？",
            "每月补贴 3000 元。",
            "每月补贴 3000 元。",
            _vocabulary(),
            random.Random(0),
        )
        is None
    )


def test_the_threshold_keeps_the_share_of_questions_not_of_sentences() -> None:
    import numpy as np

    from bench.train_responsive import QUESTIONS_KEPT, question_threshold

    # 100 questions, each with a strong and a weak positive: the weak ones do not matter
    scores, labels, groups = [], [], []
    for q in range(100):
        scores += [0.5 + q / 200, 0.01, 0.9]
        labels += [1, 1, 0]
        groups += [f"q{q}"] * 3
    threshold = question_threshold(np.array(scores), np.array(labels), groups)
    kept = sum(1 for q in range(100) if 0.5 + q / 200 >= threshold) / 100
    assert kept >= QUESTIONS_KEPT
    assert threshold > 0.5  # not pulled down by the weak second positives
