"""Support across languages: an answer sentence in one language over evidence in another.

"电池最长可用 12 小时" shares no character bigram with "The battery lasts up to 12 hours", yet
restates it. Across languages an answer sentence is supported when what can be compared
literally agrees (its numbers with their units, its Latin-script names) and the multilingual
embedding places the two close (`CROSS_LANGUAGE_SUPPORT`, measured by `bench/cross_language.py`
on restatement pairs against same-document sentences). A number that differs ("10 小时") is
never supported, however close the vectors.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from ingest.text import CJK, language, strip_markers

Similarity = Callable[[str, str], float]

# Units with their spellings in Chinese and English; a number's unit in the answer must be one
# of the same kind in the evidence, when the evidence gives that number a unit at all.
_UNITS: dict[str, tuple[str, ...]] = {
    "hour": ("小时", "个小时", "钟头", "hours", "hour", "hrs", "hr", "h"),
    "minute": ("分钟", "minutes", "minute", "mins", "min"),
    "second": ("秒钟", "秒", "seconds", "second", "secs", "sec", "s"),
    "day": ("天", "日", "days", "day", "working days"),
    "week": ("周", "星期", "weeks", "week"),
    "month": ("个月", "月", "months", "month"),
    "year": ("年", "years", "year"),
    "meter": ("米", "meters", "metres", "meter", "metre", "m"),
    "centimeter": ("厘米", "cm"),
    "millimeter": ("毫米", "mm"),
    "kilometer": ("公里", "千米", "km", "kilometers", "kilometres"),
    "gram": ("克", "grams", "gram", "g"),
    "kilogram": ("千克", "公斤", "kg", "kilograms", "kilogram"),
    "percent": ("%", "％", "percent", "百分之"),
    "yuan": ("元", "块", "yuan", "rmb", "cny"),
    "dollar": ("美元", "美金", "dollars", "dollar", "usd", "$"),
    "device": ("台", "个设备", "devices", "device"),
    "person": ("人", "名", "people", "persons", "employees"),
    "mah": ("毫安时", "mah"),
    "watt": ("瓦", "w", "watts"),
    "volt": ("伏", "v", "volts"),
    "gb": ("gb", "g"),
    "ghz": ("ghz",),
}
_SPELLINGS = sorted(
    ((spelling, kind) for kind, spellings in _UNITS.items() for spelling in spellings),
    key=lambda item: -len(item[0]),
)
_NUMBER_UNIT = re.compile(r"(\d+(?:[.,]\d+)*)\s*(%|[a-z$]+|[\u3400-\u9fff]{1,3})?")
_LATIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+][A-Za-z0-9]+)*")
_MAX_NAME_LEN = 12  # longer Latin words in a Chinese answer are words of the source, not names


def across_languages(claim: str, evidence: str) -> bool:
    """Whether the answer sentence and its evidence are in different languages (Chinese and
    English prose)."""
    said = "zh" if CJK.search(claim) else language(claim)
    source = "zh" if CJK.search(evidence) else language(evidence)
    return {said, source} == {"zh", "en"}


def _unit(text: str) -> str | None:
    text = text.lower()
    for spelling, kind in _SPELLINGS:
        if text.startswith(spelling):
            return kind
    return None


def quantities(text: str) -> list[tuple[str, str | None]]:
    """Each number of `text` with the kind of unit right after it, if a known one."""
    text = unicodedata.normalize("NFKC", strip_markers(text))
    return [
        (number.replace(",", ""), _unit(after or ""))
        for number, after in _NUMBER_UNIT.findall(text)
    ]


def literals_agree(claim: str, evidence: str, question: str = "") -> bool:
    """What can be compared across languages agrees: every number of the claim is in the
    evidence (or the question), with a unit of the same kind where both give one, and every
    Latin-script name of a Chinese claim is in the evidence (or the question)."""
    source = quantities(evidence)
    asked = {number for number, _ in quantities(question)}
    for number, unit in quantities(claim):
        units = {u for n, u in source if n == number}
        if not units:
            if number in asked:
                continue
            return False
        if unit is not None and None not in units and unit not in units:
            return False
    if CJK.search(claim):
        seen = (evidence + " " + question).lower()
        for name in _LATIN_NAME.findall(strip_markers(claim)):
            if len(name) <= _MAX_NAME_LEN and name.lower() not in seen:
                return False
    return True


def cross_supported(
    claim: str, evidence: str, similarity: Similarity, threshold: float, question: str = ""
) -> bool:
    """Whether `evidence` in one language supports `claim` in another."""
    if not literals_agree(claim, evidence, question):
        return False
    return similarity(strip_markers(claim), evidence) >= threshold


def similarity_with(embedder: object) -> Similarity:
    """The cosine of two sentences under the embedding model (both embedded as queries, the
    symmetric use of e5), each sentence encoded once."""

    @lru_cache(maxsize=512)
    def vector(text: str) -> np.ndarray:
        return embedder.encode_queries([text])[0]  # type: ignore[attr-defined]

    def similarity(a: str, b: str) -> float:
        return float(np.dot(vector(a.strip()), vector(b.strip())))

    return similarity


def best_cross_supporting(
    claim: str,
    candidates: Sequence[int],
    texts: Sequence[str],
    similarity: Similarity,
    threshold: float,
    question: str = "",
) -> list[int]:
    """The one candidate in another language that supports `claim` best, or []."""
    scored = [
        (similarity(strip_markers(claim), texts[i]), i)
        for i in candidates
        if across_languages(claim, texts[i]) and literals_agree(claim, texts[i], question)
    ]
    scored = [(s, i) for s, i in scored if s >= threshold]
    return [max(scored)[1]] if scored else []
