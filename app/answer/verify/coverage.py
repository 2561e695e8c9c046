"""`coverage` (GUARD_COVERAGE): refuse before the model is asked when no passage holds even
QUESTION_COVERAGE of the question's words (the passages are about something else)."""

from __future__ import annotations

from collections.abc import Sequence

from app.answer.verify.reading import question_grams
from ingest.text import has_cjk, language, ngrams, singular


def coverage(question: str, texts: Sequence[str]) -> float | None:
    """The largest share of the question's words (its n-grams without question words) that one
    of `texts` holds; None when it cannot be told (no such words, or a text in another language,
    which shares no words with the question whatever it says)."""
    # "locker" is held by "Lockers are free"
    wanted = {singular(g) for g in question_grams(question)}
    if not wanted or not texts:
        return None
    asked = "zh" if has_cjk(question) else language(question)
    if any(language(t) not in ("", asked) for t in texts):
        return None
    return max(len(wanted & {singular(g) for g in ngrams(t)}) / len(wanted) for t in texts)
