"""`missing_names` (GUARD_MISSING_NAMES): refuse when a name in the question is in no retrieved
passage, nowhere in the knowledge base (full-text search) and has no alias, abbreviation, near
spelling or other-language passage that could stand for it. `could_name` (a spelling that may
stand for a name) is read by `off_topic` and `responsive` too."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol

from ingest.text import CJK, has_cjk, language


class KeywordIndex(Protocol):
    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]: ...


# jieba's part-of-speech tags for names: people, places, organisations, other proper nouns.
_NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz"})
_CJK_NAME = re.compile(r"^[\u3400-\u9fff·]{3,}$")


def question_names(question: str) -> list[str]:
    """Chinese names of three characters or more in the question (jieba's name tags): two
    characters are too often common nouns jieba tags as names."""
    from jieba import posseg  # loads jieba's tagging model on first use, off the import path

    question = unicodedata.normalize("NFKC", question)
    return list(
        dict.fromkeys(
            pair.word
            for pair in posseg.lcut(question)
            if pair.flag in _NAME_TAGS and _CJK_NAME.match(pair.word)
        )
    )


def _is_name(word: str) -> bool:
    """jieba reads `word` by itself as one name or abbreviation ("北大", "阿里", "诸葛亮")."""
    from jieba import posseg

    pairs = posseg.lcut(word)
    return len(pairs) == 1 and (pairs[0].flag in _NAME_TAGS or pairs[0].flag == "j")


def could_name(name: str, text: str) -> bool:
    """Whether `text` may speak of `name` under another spelling: the name itself, its stem
    (jieba cut it one character long: "呋塞米会"), or a word that is itself a name and is an
    abbreviation of it (two of its characters in order from its first: "北大" for 北京大学,
    "阿里" for 阿里巴巴) or one character off it (a typo: 诸葛量 / 诸葛亮). "世界" is no
    abbreviation of 世界杯, nor "世界上" a typo of it: neither is a name."""
    if name in text or (len(name) >= 4 and name[:-1] in text):
        return True
    for later in name[1:]:
        short = name[0] + later
        if short in text and _is_name(short):
            return True
    n = len(name)
    seen: set[str] = set()
    for i in range(len(text) - n + 1):
        window = text[i : i + n]
        if window in seen or not CJK.match(window[0]):
            continue
        seen.add(window)
        if sum(a != b for a, b in zip(window, name, strict=True)) == 1 and _is_name(window):
            return True
    return False


def missing_names(question: str, texts: Sequence[str], kb: KeywordIndex | None) -> list[str]:
    """The question's names that nothing in the knowledge base can stand for. Never on spelling
    alone: a name another spelling in the passages may stand for is present, a passage in
    another language (微软公司 / "Microsoft") may name it, and the whole knowledge base is
    searched for it (retrieval may have missed the passage that has it)."""
    if not has_cjk(question):
        return []
    if any(language(t) == "en" for t in texts):
        return []  # a passage in another language: its names are spelled otherwise
    seen = unicodedata.normalize("NFKC", "\n".join(texts))
    missing = [n for n in question_names(question) if not could_name(n, seen)]
    if missing and kb is not None:
        from ingest import keyword_expression, tokens

        missing = [
            n
            for n in missing
            if not kb.keyword_search(keyword_expression([" ".join(tokens(n))]), 1)
        ]
    return missing
