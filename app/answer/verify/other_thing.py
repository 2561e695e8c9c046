"""`other_thing` (GUARD_OTHER_THING): a sentence given for a question about one thing that speaks
of another thing of its kind, where its own document tells the two apart.

A canteen notice says "午餐标准套餐价格由 15 元调整为 18 元" and, a line below, "早餐和晚餐价格保持
不变". Asked what dinner costs, the model gives the lunch sentence: every word of it is in the
document. The document itself shows that lunch is not dinner: it names both. So an answer
sentence is about another thing when a thing the question names (a noun, a name, a time word)
is missing from it, the sentence's passage names that thing elsewhere, and the sentence holds
another word of its kind in its place (`sibling_terms.same_kind`: 午餐 for 晚餐, 周五 for 周一,
not names by their tags alone, too loosely a kind: 北海道 for 日本 is a part of it). A
document naming both mostly means two things, but not always (办公室 and 办公区 in one FAQ), so,
as `sibling_terms` does, the model is asked "Is A a synonym of B?" in both orders, after the
answer is written; only two "no"s decide. A sentence that speaks of the question's thing
without naming it ("牠们的天敌有虎及云豹") names nothing of its kind in its place and passes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from app.answer.verify.reading import points_at
from app.answer.verify.sibling_terms import Embed, Kind, Synonym, same_kind, tagged_things
from ingest.text import has_cjk, strip_markers

# a model name of a series: letters, then a number ("K2", "ZK-300", "V2.4", "X200e")
_MODEL = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,6})[-\s]?\d+(?:\.\d+)*[A-Za-z]?(?![A-Za-z0-9])")


@dataclass(frozen=True)
class OtherThing:
    """The question's word the sentence lacks, and the word of its kind it says instead."""

    asked: str
    said: str


def _unnamed(kind: Kind) -> Kind:
    """jieba's name tags without their say. It tags many a plant, animal and title as a person
    (云豹, 马来); and a sentence naming a place other than the asked one mostly names a part of
    it or a place beside it (北海道 for 日本, 北欧 for 欧洲), not the asked one's sibling: names
    are of a kind here only by their characters (香港 and 北京 are `sibling_terms`' to judge,
    with the embedding's nearest words)."""
    return Kind("n", kind.head) if kind.tag[:2] in ("nr", "ns", "nt") else kind


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", strip_markers(text)).lower()


def candidates(
    question: str, sentence: str, passage: str, embed: Embed, floor: float
) -> list[OtherThing]:
    """The things the question names that `sentence` (of `passage`, its document's text with
    title and headings) lacks while the passage names them elsewhere, each with the word of its
    kind the sentence says in its place: of its kind and, by the embedding's cosine, at least
    `floor` near it and the nearest (a sentence naming places names many; 楚国 is not what
    stands for 云南省 there). Chinese questions only: jieba gives every English word one tag, so
    any two would be of a kind; Latin script counts as model names of one series only ("K1" and
    "K2", not "PTQ" and "QAT"), which need no embedding."""
    if not has_cjk(question):
        return []
    from jieba import dt as dictionary  # loaded by retrieval already

    said_text, elsewhere = _fold(sentence), _fold(passage)
    asked_text = _fold(question)

    def absent(word: str) -> bool:
        folded = word.lower()
        if folded in said_text or folded not in elsewhere:
            return False
        # "该市古称龙州" for 宜州市, "它们的天敌…": the sentence points at the thing asked about
        return not points_at(folded, said_text)

    def apart(word: str, other: str) -> bool:
        a, b = word.lower(), other.lower()
        return b not in asked_text and a not in b and b not in a

    found: list[OtherThing] = []
    # words of the sentence jieba knows, or names it tags (not its guesses: "使球" of 使|球)
    said = {
        w: k
        for w, k in tagged_things(sentence).items()
        if k.tag != "eng" and (dictionary.FREQ.get(w) or k.tag[:2] in ("ns", "nt"))
    }
    asked = {
        w: k
        for w, k in tagged_things(question, question=True).items()
        if k.tag != "eng" and absent(w)
    }
    for word, kind in asked.items():
        kin = [
            o
            for o, k in said.items()
            if apart(word, o) and same_kind(word, _unnamed(kind), o, _unnamed(k))
        ]
        if not kin:
            continue
        vectors = np.asarray(embed([word, *kin]))
        cosines = vectors[1:] @ vectors[0]
        best = int(np.argmax(cosines))
        if cosines[best] >= floor:
            found.append(OtherThing(word, kin[best]))
    models = {m.group(0): m.group(1).lower() for m in _MODEL.finditer(_fold(sentence))}
    for model in _MODEL.finditer(asked_text):
        if absent(model.group(0)):
            series = model.group(1).lower()
            found += [
                OtherThing(model.group(0), m)
                for m, theirs in models.items()
                if theirs == series and apart(model.group(0), m)
            ][:1]
    return found


def other_thing(
    question: str, sentence: str, passage: str, synonym: Synonym, embed: Embed, floor: float
) -> OtherThing | None:
    """The first of `candidates` that the model calls no synonym in both orders ("Is 晚餐 a
    synonym of 午餐?" no, and the reverse): a document may name one thing in two ways (办公室,
    办公区), which neither shared characters nor the document's usage tell apart."""
    for found in candidates(question, sentence, passage, embed, floor):
        if synonym(found.asked, found.said) is False and synonym(found.said, found.asked) is False:
            return found
    return None
