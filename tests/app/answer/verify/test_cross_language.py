"""Support across languages: numbers, units and names compared literally, the rest by the
multilingual embedding (the bundled e5 model, real). The sentences are a speaker manual, a
router manual and a leave policy written for this project."""

from __future__ import annotations

import pytest

from app.answer.verify.cross_language import (
    Similarity,
    across_languages,
    best_cross_supporting,
    cross_supported,
    literals_agree,
    quantities,
    similarity_with,
)
from ingest._embed import Embedder
from ingest.settings import Settings


@pytest.fixture(scope="module")
def similarity(embedder: Embedder) -> Similarity:
    return similarity_with(embedder)


FLOOR = Settings.model_fields["cross_language_support"].default


def test_languages_are_told_apart() -> None:
    assert across_languages("电池最长可用 12 小时。", "The battery lasts up to 12 hours.")
    assert across_languages("The battery lasts 12 hours.", "电池最长可用 12 小时。")
    assert not across_languages("电池最长可用 12 小时。", "电池续航 12 小时。")
    assert not across_languages("The battery lasts 12 hours.", "Battery: up to 12 hours.")


def test_numbers_keep_their_units_across_languages() -> None:
    assert quantities("最长可用 12 小时，重 540 克") == [("12", "hour"), ("540", "gram")]
    assert literals_agree("电池最长可用 12 小时。", "The battery lasts up to 12 hours.")
    assert not literals_agree("电池最长可用 10 小时。", "The battery lasts up to 12 hours.")
    assert not literals_agree("电池最长可用 12 天。", "The battery lasts up to 12 hours.")
    assert not literals_agree("用 USB-A 线充电。", "Charge it with the USB-C cable.")
    assert literals_agree("用 USB-C 线充电。", "Charge it with the USB-C cable.")


def test_a_restatement_in_the_other_language_is_supported(similarity: Similarity) -> None:
    pairs = [
        ("电池最长可用 12 小时。", "The battery lasts up to 12 hours on a full charge."),
        ("音箱潮湿时不要充电。", "Do not charge the speaker while it is wet."),
        ("按住复位键 10 秒即可重置路由器。", "To reset, hold the reset button for 10 seconds."),
        ("Sick leave requires a certificate from a hospital.", "病假须提供医院开具的证明。"),
    ]
    for claim, evidence in pairs:
        assert cross_supported(claim, evidence, similarity, FLOOR), claim


def test_another_fact_of_the_same_document_is_not_support(similarity: Similarity) -> None:
    # what a broken check passes: the same manual, the same words' topic, another fact
    assert not cross_supported(
        "电池最长可用 12 小时。", "A full charge takes about 3 hours.", similarity, FLOOR
    )
    assert not cross_supported(
        "默认管理员密码印在路由器底部的标签上。",
        "The guest network is turned off by default.",
        similarity,
        FLOOR,
    )
    # close vectors, a different number: never supported
    assert not cross_supported(
        "电池最长可用 10 小时。", "The battery lasts up to 12 hours.", similarity, FLOOR
    )


def test_the_closest_sentence_in_the_other_language_is_the_one_cited(
    similarity: Similarity,
) -> None:
    texts = [
        "A full charge takes about 3 hours.",
        "The battery lasts up to 12 hours.",
        "The speaker weighs 540 grams.",
        "电池最长可用 12 小时。",  # the same language as the claim: not this reading's
    ]
    found = best_cross_supporting("电池最长可用 12 小时。", range(4), texts, similarity, FLOOR)
    assert found == [1]
    assert best_cross_supporting("音箱重 600 克。", range(4), texts, similarity, FLOOR) == []
