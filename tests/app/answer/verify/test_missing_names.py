"""Missing names: a name of the question nothing in the knowledge base can stand for, never one
an alias, an abbreviation, a typo or a passage in another language may name."""

from __future__ import annotations

import pytest

from app.answer.verify.missing_names import could_name, missing_names


class FakeIndex:
    """A keyword index holding the given words (the real one is tested in tests/ingest)."""

    def __init__(self, *words: str) -> None:
        self.words = words

    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        return [(1, 1.0)] if any(w in query for w in self.words) else []


def test_a_name_in_no_passage_and_nowhere_in_the_knowledge_base_is_missing() -> None:
    texts = ["杭州的市花是桂花。", "苏东坡任杭州知州时疏浚西湖，修筑了苏堤。"]
    assert missing_names("占旭刚在杭州参加过哪些比赛？", texts, FakeIndex()) == ["占旭刚"]
    assert missing_names("苏东坡在杭州修了什么？", texts, FakeIndex()) == []


@pytest.mark.parametrize(
    ("question", "passage"),
    [
        ("北京大学在哪一年创办？", "北大创办于 1898 年，初名京师大学堂。"),
        ("阿里巴巴集团的总部在哪里？", "阿里集团总部位于杭州余杭区。"),
        ("诸葛亮辅佐的是谁？", "诸葛亮，字孔明，辅佐刘备建立蜀汉。"),
        ("诸葛量辅佐的是谁？", "诸葛亮，字孔明，辅佐刘备建立蜀汉。"),  # a typo
        ("微软公司是哪一年成立的？", "Microsoft was founded in 1975 by Bill Gates."),
    ],
)
def test_aliases_typos_and_other_languages_are_never_missing(question: str, passage: str) -> None:
    assert missing_names(question, [passage], FakeIndex()) == []


def test_a_name_elsewhere_in_the_knowledge_base_is_not_missing() -> None:
    texts = ["杭州的市花是桂花。"]
    assert missing_names("占旭刚在杭州参加过哪些比赛？", texts, FakeIndex("占旭刚")) == []


def test_could_name_reads_abbreviations_and_one_character_typos() -> None:
    assert could_name("北京大学", "北大")
    assert could_name("呋塞米会", "呋塞米是一种利尿剂")
    assert not could_name("占旭刚", "杭州的市花是桂花")
