"""`Responsiveness`: whether the sentences an answer rests on answer the question asked, over a
spec table and a warranty line written here (the checks that need no model: `other_row`,
`measure`; the model's and the embedding's are in tests/app/answer/test_check.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.answer.passages import Passage
from app.answer.responds import Responsiveness, Sentences
from ingest.settings import Settings
from tests.support import make_settings

SPEC = """产品规格如下：
| 型号 | 重量 | 续航 |
| --- | --- | --- |
| AX3000 | 1.2 kg | 10 小时 |
| AX5400 | - | 12 小时 |
保修期为两年。"""
LINES = SPEC.split("\n")
ROW_A, ROW_B, WARRANTY = 3, 4, 5  # unit indexes: the sentences are the passage's lines


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def responsiveness(question: str, settings: Settings) -> Responsiveness:
    passage = Passage(1, (0,), "d", "规格", "d.md", "md", None, 0, (), 0, len(SPEC), SPEC, 1.0, 0.9)
    sentences = Sentences(LINES, [SPEC] * len(LINES), LINES, [0] * len(LINES))
    return Responsiveness(question, [passage], sentences, settings)


def test_another_models_row_is_not_the_answer(settings: Settings) -> None:
    check = responsiveness("AX5400 的重量是多少？", settings)
    assert check.doubtful([ROW_A], LINES[ROW_A], [ROW_A]), "the stream is held back"
    found = check.not_answered([ROW_A], LINES[ROW_A], [ROW_A])
    assert found is not None and found.guard == "other_row"
    assert found.related == [ROW_A], "the row is shown as related, not as the answer"


def test_the_asked_models_row_answers(settings: Settings) -> None:
    check = responsiveness("AX3000 的重量是多少？", settings)
    assert not check.doubtful([ROW_A], LINES[ROW_A], [ROW_A])
    assert check.not_answered([ROW_A], LINES[ROW_A], [ROW_A]) is None


def test_a_sentence_without_the_quantity_asked_is_not_the_answer(settings: Settings) -> None:
    check = responsiveness("AX3000 有多重？", settings)
    assert check.not_answered([ROW_A], LINES[ROW_A], [ROW_A]) is None
    found = check.not_answered([WARRANTY], LINES[WARRANTY], [WARRANTY])
    assert found is not None and found.guard == "measure" and found.related == [WARRANTY]


def test_switched_off_guards_decide_nothing(settings: Settings) -> None:
    off = settings.model_copy(update={"guard_other_row": False, "guard_measure": False})
    assert responsiveness("AX5400 的重量是多少？", off).not_answered([ROW_A], "", [ROW_A]) is None
    assert responsiveness("AX3000 有多重？", off).not_answered([WARRANTY], "", [WARRANTY]) is None
