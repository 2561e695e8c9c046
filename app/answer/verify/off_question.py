"""`off_question` (GUARD_OFF_QUESTION): give the passage sentence that clearly matches the
question when the model's answer draws on neither it nor the question; never a question line, a
heading or a table row."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from app.answer.verify.reading import LATIN_TERM, can_stand_as_answer, question_grams
from ingest.text import NUMBER, ngrams, strip_markers

# One passage sentence holds at least QUESTION_MATCH of the question's n-grams, by a margin
# of QUESTION_MATCH_MARGIN over any other sentence, yet the answer shares less than
# OFF_QUESTION of its n-grams with it and of the question's with the question.
QUESTION_MATCH = 0.6
QUESTION_MATCH_MARGIN = 0.3
OFF_QUESTION = 0.2
NEW_GRAMS = 3  # a sentence that only restates the question holds no answer


def matching_sentence(
    question: str,
    sentences: Sequence[str],
    share: float = QUESTION_MATCH,
    margin: float = QUESTION_MATCH_MARGIN,
) -> int | None:
    """The index of the one sentence that clearly matches the question: it holds `share` of the
    question's words or more (and all of its Latin-script names), `margin` more than any other,
    adds something to them, and can stand as an answer by itself."""
    wanted = question_grams(question)
    if not wanted:
        return None
    terms = [t.lower() for t in LATIN_TERM.findall(question) if len(t) >= 2]
    numbers = set(NUMBER.findall(unicodedata.normalize("NFKC", question)))
    scored = []
    for index, sentence in enumerate(sentences):
        grams = ngrams(sentence)
        if len(grams - wanted) < NEW_GRAMS or not can_stand_as_answer(sentence):
            continue
        if any(t not in sentence.lower() for t in terms):
            continue  # a sentence without the question's subject ("Claude 4") does not match
        if numbers - set(NUMBER.findall(unicodedata.normalize("NFKC", sentence))):
            continue  # nor one without its numbers: "2 号线" is not "1 号线 … 2012 年"
        scored.append((len(grams & wanted) / len(wanted), index))
    scored.sort(key=lambda item: -item[0])
    if not scored or scored[0][0] < share:
        return None
    if len(scored) > 1 and scored[0][0] - scored[1][0] < margin:
        return None
    return scored[0][1]


def off_question(answer: str, question: str, sentences: Sequence[str]) -> int | None:
    """The index of the sentence to give instead of `answer`, when the answer misread the
    passages: it neither restates the question nor draws on the sentence matching it."""
    found = matching_sentence(question, sentences)
    said = ngrams(strip_markers(answer))
    if found is None or not said:
        return None
    wanted = question_grams(question)
    if len(said & wanted) / len(wanted) >= OFF_QUESTION:
        return None
    if len(said & ngrams(sentences[found])) / len(said) >= OFF_QUESTION:
        return None
    return found
