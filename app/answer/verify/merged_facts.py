"""`merged_facts` (GUARD_MERGED_FACTS): a fact of one thing given as a fact of another.
`swapped_name(claim, evidence, question)`: the claim puts a name or number of the question where
the evidence has another one ("A 公司由王五创立" over "B 公司由王五创立"). `split_value(claim,
evidence, question)`: sentences that support a claim only together give it the thing asked about
from one and a value from another ("上海 2000 元" over "北京、上海 3000 元" and "其他城市 2000
元"). The check also keeps sentences of two passages from supporting one answer sentence
together (`app.answer.check`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from app.answer.verify.reading import POINTING
from ingest.text import CJK, strip_markers

_TOKEN = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*|[\u3400-\u9fff]")
_NUMBER_TOKEN = re.compile(r"\d+(?:[.\-]\d+)*")
_NAME_TAGS = ("ns", "nr", "nt")  # jieba: places, people (nrfg, nrt too), organisations


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", strip_markers(text)).lower())


def _is_name_token(token: str) -> bool:
    return not CJK.match(token)


@lru_cache(maxsize=64)
def _chinese_names(question: str) -> tuple[str, ...]:
    """The names jieba tags in the question (places, people, organisations), two characters or
    more, lowercased as `_tokens` reads them."""
    if not question:
        return ()
    from jieba import posseg  # loaded by retrieval already; kept off this module's import path

    text = unicodedata.normalize("NFKC", question).lower()
    return tuple(
        dict.fromkeys(
            p.word
            for p in posseg.lcut(text)
            if p.flag.startswith(_NAME_TAGS) and len(p.word) >= 2 and CJK.match(p.word)
        )
    )


def _name_spans(tokens: list[str], names: list[str]) -> list[tuple[int, int]]:
    """Where each of `names` (CJK words: one token per character) stands in `tokens`."""
    spans = []
    for name in names:
        chars, size = list(name), len(name)
        spans += [
            (i, i + size) for i in range(len(tokens) - size + 1) if tokens[i : i + size] == chars
        ]
    return spans


def swapped_name(claim: str, evidence: str, question: str = "") -> bool:
    """Whether the claim puts a Latin-script name or a number of the question ("A", "B2",
    "2023") where its evidence has a different one ("B", "A1", "2022"), or a Chinese name of
    the question (a place, person or organisation: 上海) where it has other words (其他省会城市):
    the evidence states the fact of another thing. Aligned as token sequences (CJK characters,
    Latin words and numbers); a replaced name the evidence does not have and the question
    does. A pronoun in the name's place ("该市") is the same thing, not another."""
    from difflib import SequenceMatcher

    said, source = _tokens(claim), _tokens(evidence)
    asked = set(_tokens(question))
    held = "".join(source)
    spans = _name_spans(said, [n for n in _chinese_names(question) if n not in held])
    matcher = SequenceMatcher(a=said, b=source, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "replace":
            continue
        if any(a0 < end and start < a1 for start, end in spans) and any(
            CJK.match(t) and t not in POINTING and t not in said for t in source[b0:b1]
        ):
            return True
        new = [t for t in said[a0:a1] if _is_name_token(t)]
        old = [t for t in source[b0:b1] if _is_name_token(t)]
        if not new or not old:
            continue
        if any(t in asked and t not in source for t in new) and any(t not in said for t in old):
            return True
    return False


def split_value(claim: str, evidence: str, question: str = "") -> bool:
    """Whether the claim, supported only by sentences together (`evidence`: them joined by line
    breaks, as `app.answer.cite.supporting` tries them), takes the thing the question asks
    about from one sentence and its value from another: the one sentence that names a word of
    the question the claim holds (and another sentence lacks: 上海, not 员工) has a number of its
    own where the claim has one it does not state. Two sentences about one thing (its founding
    year in one, its size in the other) add to each other and stay a support."""
    from app.answer.verify.off_topic import topic_terms  # jieba: loaded only when needed

    pieces = [p for p in evidence.split("\n") if p.strip()]
    if len(pieces) < 2:
        return False
    said = unicodedata.normalize("NFKC", strip_markers(claim)).lower()
    lowered = [unicodedata.normalize("NFKC", p).lower() for p in pieces]
    terms = [t.lower() for t in topic_terms(question) if t.lower() in said]
    claimed = _tokens(claim)
    for index, piece in enumerate(lowered):
        others = lowered[:index] + lowered[index + 1 :]
        if not any(t in piece and any(t not in o for o in others) for t in terms):
            continue
        if _replaced_number(claimed, _tokens(pieces[index])):
            return True
    return False


def _replaced_number(said: list[str], source: list[str]) -> bool:
    """Whether, aligned, `said` has a number where `source` has another (and neither the
    other's)."""
    from difflib import SequenceMatcher

    matcher = SequenceMatcher(a=said, b=source, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "replace":
            continue
        new = [t for t in said[a0:a1] if _NUMBER_TOKEN.fullmatch(t) and t not in source]
        old = [t for t in source[b0:b1] if _NUMBER_TOKEN.fullmatch(t) and t not in said]
        if new and old:
            return True
    return False
