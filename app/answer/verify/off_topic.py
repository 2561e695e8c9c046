"""`off_topic` (GUARD_OFF_TOPIC): drop an answer sentence whose cited passages (title, headings
and text) mention none of the things the question asks about: it answers about something else.
Near spellings count as mentions; a passage in another language is never off topic."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from app.answer.verify.missing_names import could_name
from app.answer.verify.reading import DEMONSTRATIVE
from ingest.text import language

# jieba's tags of nouns and names ("n", "nr", "ns", "nz", …), verbs ("v", "vn"), adjectives
# ("a", "an") and Latin-script words
_CONTENT_TAG = re.compile(r"^(?:n|v|a|eng)")
_QUOTED = re.compile(r"[“「《\"『]([^”」》\"』]{2,})[”」》\"』]")


def topic_terms(question: str) -> list[str]:
    """The words of what a question asks about: its nouns, names, verbs and adjectives of two
    characters or more and the titles it quotes ("《越南亡国史》"), not its question words and
    particles. Verbs count: "请假" in "员工请假需要提前几天申请？" tells the topic as much as
    "员工", and a passage about leave need not say "员工"."""
    from jieba import posseg  # loaded by retrieval already; kept off this module's import path

    from ingest import QUERY_STOPWORDS

    question = unicodedata.normalize("NFKC", question)
    words = [
        pair.word.strip()
        for pair in posseg.lcut(question)
        if _CONTENT_TAG.match(pair.flag) and len(pair.word.strip()) >= 2
    ]
    words += _QUOTED.findall(question)
    return list(
        dict.fromkeys(
            w for w in words if w.lower() not in QUERY_STOPWORDS and not DEMONSTRATIVE.match(w)
        )
    )


def mentions_topic(terms: Sequence[str], source: str, question: str) -> bool:
    """Whether `source` (a passage with its title and headings) speaks of any of the question's
    `terms`, under any spelling `could_name` allows; always when it is in another language
    than the question, or when the question names nothing."""
    if not terms or language(source) != language(question):
        return True
    seen = unicodedata.normalize("NFKC", source)
    lowered = seen.lower()
    return any(t.lower() in lowered or could_name(t, seen) for t in terms)
