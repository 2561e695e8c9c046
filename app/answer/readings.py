"""The answer check's readings beyond shared words, as they bear on support: an evidence sentence
supports an answer sentence only if no reading switched on (`polarity`, `yes_no`,
`merged_facts`, `cross_language`; the checks of `app.answer.verify`) objects; across languages
the candidates are tried by embedding similarity; and a sentence given as the answer to a yes/no
question must not say the opposite of its evidence.

Pure functions of plain inputs: `AnswerCheck` calls them with the readings switched on, and
again without one of them to count what it changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.answer.cite import SupportTest, supported_by
from app.answer.verify.cross_language import Similarity, across_languages, cross_supported
from app.answer.verify.merged_facts import split_value, swapped_name
from app.answer.verify.polarity import polarity_conflict
from app.answer.verify.reading import can_stand_as_answer
from app.answer.verify.yes_no import (
    about_subject,
    decisive,
    is_yes_no,
    question_subject,
    yes_no_conflict,
)

READINGS = ("polarity", "yes_no", "merged_facts", "cross_language")


@dataclass(frozen=True)
class Asked:
    """What the readings read of the question, once: whether it asks yes or no, and about
    what ("" when it is no yes/no question, or asks about the asker)."""

    question: str
    yes_no: bool
    subject: str

    @classmethod
    def read(cls, question: str) -> Asked:
        yes_no = is_yes_no(question)
        return cls(question, yes_no, question_subject(question) if yes_no else "")


def support_test(
    readings: frozenset[str],
    asked: Asked,
    first: bool,
    similarity: Similarity | None,
    cross_floor: float,
) -> SupportTest:
    """Whether an evidence text supports an answer sentence, under `readings`; `first`: the
    sentence is the answer's first (its verdict, for a yes/no question)."""

    def test(sentence: str, evidence: str, question: str, passage: str) -> bool:
        if (
            "cross_language" in readings
            and similarity is not None
            and across_languages(sentence, evidence)
        ):
            supported = cross_supported(sentence, evidence, similarity, cross_floor, question)
        else:
            supported = supported_by(sentence, evidence, question, passage)
        if not supported:
            return False
        if "polarity" in readings and polarity_conflict(sentence, evidence):
            return False
        if "merged_facts" in readings and (
            swapped_name(sentence, evidence, question) or split_value(sentence, evidence, question)
        ):
            return False
        about = first or about_subject(asked.subject, sentence)
        if "yes_no" in readings and asked.yes_no and about:
            return not yes_no_conflict(asked.question, sentence, [evidence], passage)
        return True

    return test


def by_similarity(
    text: str,
    candidates: Sequence[int],
    sentences: Sequence[str],
    readings: frozenset[str],
    similarity: Similarity | None,
) -> list[int]:
    """The candidates (indexes into `sentences`), those in another language than `text` last,
    by embedding similarity (the order `supporting` keeps among sentences sharing no bigram
    with it)."""
    candidates = list(candidates)
    if "cross_language" not in readings or similarity is None:
        return candidates
    other = {i for i in candidates if across_languages(text, sentences[i])}
    if not other:
        return candidates
    ranked = sorted(other, key=lambda i: -similarity(text, sentences[i]))
    return [i for i in candidates if i not in other] + ranked


def denies_verdict(asked: Asked, sentence: str, evidence: str, passage: str, first: bool) -> bool:
    """A sentence given as the answer to a yes/no question says yes where the evidence about
    the question's subject says no, or the reverse."""
    if not asked.yes_no or not (first or about_subject(asked.subject, sentence)):
        return False
    return yes_no_conflict(asked.question, sentence, [evidence], passage)


def verdict_units(
    asked: Asked,
    units: Sequence[int],
    sentences: Sequence[str],
    around: Sequence[str],
    passage_of: Sequence[int],
) -> tuple[list[int], list[int]]:
    """Of the sentences to give as the answer to a yes/no question (`units`, indexes into
    `sentences`, each in the passage text `around` it and the passage `passage_of` says), those
    whose yes or no is the evidence's about the question's subject; when none is, the sentence
    of their passages about the subject that shares most of what the question asks of it
    ("实习生和外包人员不在发放范围内。" beside the sentence about 正式员工 the model named).
    Second, the units left out for their verdict."""

    def agrees(unit: int) -> bool:
        return not denies_verdict(asked, sentences[unit], sentences[unit], around[unit], True)

    agreeing = [u for u in units if agrees(u)]
    if len(agreeing) == len(units):
        return list(units), []
    left = [u for u in units if u not in agreeing]
    if agreeing:
        return agreeing, left
    passages = {passage_of[u] for u in units}
    about = [
        u
        for u in range(len(sentences))
        if passage_of[u] in passages
        and about_subject(asked.subject, sentences[u])
        and can_stand_as_answer(sentences[u])
        and agrees(u)
    ]
    if not about:
        return [], left
    # the one that answers what is asked of the subject, not the first naming it ("K1 不支持停车
    # 监控。", not the product introduction "有 K1 和 K2 两款")
    return [about[decisive(asked.question, [sentences[u] for u in about])]], left
