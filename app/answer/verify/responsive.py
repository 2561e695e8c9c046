"""Responsiveness: does an evidence sentence answer THIS question, or something next to it?

A true sentence of the documents can answer another question: the other model's row of a spec
table, the mainland allowance for a question about Hong Kong, the financing round for a question
about profit. The check scores (question, sentence, the sentence's own context) with a small
logistic regression learned from question-sentence pairs (`bench/train_responsive.py`; weights
in `responsive.json` beside this module): the embedding model's cosine of the question with the
sentence and with the sentence in its context (title, headings, the FAQ question line it
answers), how much of the question's words and subject the sentence and its context hold, whether
the sentence holds the kind of thing asked for (a date for "when", a number for "how many", a
person for "who", a place for "where"), and whether the question's names and numbers are there.

Pure functions over plain inputs; the caller supplies the vectors (one embedding call).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.answer.verify.off_topic import topic_terms
from app.answer.verify.reading import can_stand_as_answer, question_grams
from ingest.text import NUMBER, WORD, language, ngrams, strip_markers

WEIGHTS_FILE = Path(__file__).with_name("responsive.json")

# What the question asks for, from its question words (Chinese, then English).
_ASKS = (
    (
        "date",
        re.compile(
            r"什么时候|何时|哪天|哪一天|哪日|哪年|哪一年|几月|几号|哪个月|日期|时间是|多少年|何年"
            r"|\bwhen\b|\bwhat (?:date|year|day|time)\b",
            re.IGNORECASE,
        ),
    ),
    ("person", re.compile(r"谁|哪位|何人|什么人|哪个人|\bwho(?:m|se)?\b", re.IGNORECASE)),
    (
        "place",
        re.compile(
            r"哪里|哪儿|何处|何地|什么地方|哪个(?:城市|国家|省|地区|地方)|在哪|位于|\bwhere\b",
            re.IGNORECASE,
        ),
    ),
    (
        "number",
        re.compile(
            r"多少|几[个天年次位种人名家项条岁月小号张台分]|几|多大|多长|多久|多重|多高|多远|多宽|多深"
            r"|\bhow (?:many|much|long|far|old|big|heavy|tall)\b",
            re.IGNORECASE,
        ),
    ),
)
_HOLDS = {
    "date": re.compile(
        r"\d+\s*(?:年|月|日|号)|[一二三四五六七八九十〇零]+\s*(?:年|月|日)|世纪|年代|朝|时期|期间"
        r"|\b(?:1[5-9]|20)\d{2}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b",
        re.IGNORECASE,
    ),
    "number": re.compile(r"\d|[一二两三四五六七八九十百千万亿半]", re.IGNORECASE),
    "place": re.compile(r"[省市县区镇村国州洲岛山河湖路街楼室]|\b(?:in|at)\s+[A-Z]"),
}
_PERSON_TAGS = frozenset({"nr", "nrfg", "nrt", "nt"})
_PLACE_TAGS = frozenset({"ns"})
_QUESTION_LINE = re.compile(r"(?:[?？]\W*$)|^\W*(?:问|问题|Q|提问)\s*\d*\s*[:：.、]", re.IGNORECASE)
_LEAD_IN = re.compile(r"(?:[:：]|如下)\W*$")  # "…公式如下：" introduces what follows
_ANSWER_LINE = re.compile(r"^\W*(?:答|回答|A)\s*[:：]", re.IGNORECASE)

FEATURES = (
    "cos_sentence",
    "cos_context",
    "cos_margin",  # cosine with the sentence minus the best cosine of its passage's other sentences
    "words_sentence",
    "words_context",
    "subject_sentence",
    "subject_context",
    "names_present",
    "number_missing",
    "type_known",
    "type_held",
    "adds_words",
    "stands_alone",
)
# lexical features that mean nothing across languages: replaced by their mean on the training
# pairs (the usual imputation of an unknown value), so only the embedding speaks
_LEXICAL = (
    "words_sentence",
    "words_context",
    "subject_sentence",
    "subject_context",
    "names_present",
    "number_missing",
    "adds_words",
)


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def asked_type(question: str) -> str | None:
    """The kind of answer the question asks for ("date", "person", "place", "number"), or None
    (what, how, whether: anything may answer)."""
    text = nfkc(question)
    for kind, pattern in _ASKS:
        if pattern.search(text):
            return kind
    return None


def holds_type(kind: str, sentence: str) -> bool:
    """Whether `sentence` holds something of `kind`."""
    text = nfkc(sentence)
    if kind in _HOLDS and _HOLDS[kind].search(text):
        return True
    if kind in ("person", "place") and language(text) == "zh":
        from jieba import posseg

        tags = _PERSON_TAGS if kind == "person" else _PLACE_TAGS
        return any(pair.flag in tags for pair in posseg.lcut(text))
    if kind == "person":
        return bool(re.search(r"\b[A-Z][a-z]+\s+[A-Z][a-z]+\b", text))
    return False


def _subject_terms(question: str) -> list[str]:
    return [t.lower() for t in topic_terms(question)]


def _share(wanted: set[str] | list[str], text: str, grams: set[str] | None = None) -> float:
    if not wanted:
        return 1.0
    if grams is not None:
        return len(set(wanted) & grams) / len(set(wanted))
    lowered = text.lower()
    return sum(1 for w in wanted if w in lowered) / len(wanted)


@dataclass(frozen=True)
class Pair:
    """One question with one candidate sentence and what surrounds it."""

    question: str
    sentence: str
    label: str  # the sentence's own context: title, headings, the FAQ question it answers
    cos_sentence: float
    cos_context: float
    cos_best_other: float  # best cosine of the question with another sentence of its passage


def features(pair: Pair) -> dict[str, float]:
    question = nfkc(pair.question)
    sentence = nfkc(strip_markers(pair.sentence))
    around = nfkc(pair.label) + "\n" + sentence
    wanted = question_grams(question)
    subject = _subject_terms(question)
    names = {w for w in WORD.findall(question.lower()) if len(w) >= 2 or w.isdigit()}
    numbers = set(NUMBER.findall(question))
    kind = asked_type(question)
    s_grams, c_grams = ngrams(sentence), ngrams(around)
    return {
        "cos_sentence": pair.cos_sentence,
        "cos_context": pair.cos_context,
        "cos_margin": pair.cos_sentence - pair.cos_best_other,
        "words_sentence": _share(wanted, sentence, s_grams),
        "words_context": _share(wanted, around, c_grams),
        "subject_sentence": _share(subject, sentence),
        "subject_context": _share(subject, around),
        "names_present": _share(sorted(names), around),
        "number_missing": float(bool(numbers - set(NUMBER.findall(around)))),
        "type_known": float(kind is not None),
        "type_held": float(kind is None or holds_type(kind, sentence)),
        "adds_words": min(len(s_grams - wanted) / 10, 1.0),
        "stands_alone": float(can_stand_as_answer(sentence)),
    }


def cross_language(question: str, sentence: str) -> bool:
    asked, said = language(nfkc(question)), language(nfkc(sentence))
    return bool(asked and said and asked != said)


@dataclass(frozen=True)
class Model:
    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float  # below it, the sentence does not answer the question

    def probability(self, pair: Pair) -> float:
        values = features(pair)
        foreign = cross_language(pair.question, pair.sentence)
        z = self.bias
        for name, mean, scale, weight in zip(
            self.names, self.mean, self.scale, self.weights, strict=True
        ):
            value = mean if foreign and name in _LEXICAL else values[name]
            z += weight * (value - mean) / scale
        return 1 / (1 + math.exp(-z))


@lru_cache(maxsize=1)
def load_model(path: Path = WEIGHTS_FILE) -> Model:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Model(
        tuple(data["features"]),
        tuple(data["mean"]),
        tuple(data["scale"]),
        tuple(data["weights"]),
        float(data["bias"]),
        float(data["threshold"]),
    )


def own_label(title: str, headings: Sequence[str], previous: str | None, sentence: str) -> str:
    """What a sentence is about besides its own words: the document title, its headings and,
    for the answer line of a FAQ, the question line it answers; for what follows a lead-in
    ("…如下："), that lead-in."""
    parts = [title, *headings]
    if previous is not None and (
        _QUESTION_LINE.search(previous.strip())
        or _ANSWER_LINE.match(sentence)
        or _LEAD_IN.search(previous.strip())
    ):
        parts.append(previous.strip())
    return " / ".join(p for p in parts if p)


@dataclass(frozen=True)
class Candidate:
    """A sentence an answer cites, with its context and the other sentences of its passage."""

    sentence: str
    label: str
    neighbours: tuple[str, ...]


def candidate(
    sentences: Sequence[str],
    passage_of: Sequence[int],
    unit: int,
    title: str,
    headings: Sequence[str],
) -> Candidate:
    """Sentence `unit` of `sentences` (each in the passage `passage_of` says; this one's titled
    `title` under `headings`) as the judge reads it: with its own label and the other sentences
    of its passage."""
    same = [i for i in range(len(sentences)) if passage_of[i] == passage_of[unit]]
    previous = sentences[unit - 1] if unit - 1 in same else None
    label = own_label(title, headings, previous, sentences[unit])
    return Candidate(sentences[unit], label, tuple(sentences[i] for i in same if i != unit))


class Judge:
    """Scores cited sentences against a question with the embedding model already loaded for
    retrieval: one query vector, and one batch for the sentences, their contexts and their
    passage neighbours."""

    def __init__(self, embedder: object, model: Model | None = None) -> None:
        self.embedder = embedder
        self.model = model or load_model()

    @property
    def threshold(self) -> float:
        return self.model.threshold

    def scores(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        if not candidates:
            return []
        texts: list[str] = []
        for c in candidates:
            texts += [c.sentence, f"{c.label}\n{c.sentence}", *c.neighbours]
        query = self.embedder.encode_queries([question])[0]  # type: ignore[attr-defined]
        vectors = self.embedder.encode_passages(texts)  # type: ignore[attr-defined]
        cosines = [float(v) for v in vectors @ query]
        out, at = [], 0
        for c in candidates:
            if cross_language(question, c.sentence):
                # no pairs across languages were learned from: such evidence is not judged
                out.append(1.0)
                at += 2 + len(c.neighbours)
                continue
            own, in_context = cosines[at], cosines[at + 1]
            others = cosines[at + 2 : at + 2 + len(c.neighbours)]
            at += 2 + len(c.neighbours)
            pair = Pair(question, c.sentence, c.label, own, in_context, max(others, default=0.0))
            out.append(self.model.probability(pair))
        return out
