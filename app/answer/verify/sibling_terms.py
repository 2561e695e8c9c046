"""`sibling_terms` (GUARD_SIBLING_TERMS): refuse before the model is asked when a thing the
question names is in none of the passages the model would read and those passages speak of a
sibling of it instead: the lunch price for a question about dinner, the mainland cities for a
question about Hong Kong, annual leave for bereavement leave, revenue for profit.

A word of the question (a noun, a name, a time word, a Latin word) is missing when no passage
holds it in its title, headings or text. Its counterparts are the passages' words of the same
kinds nearest it by the embedding model's cosine (at least `sibling_floor`, two at most).
Whether a counterpart is the same thing in other words (断电 for 停电) or another thing of the
same kind (早餐 for 午餐) is world knowledge that neither shared characters nor the embedding
tell apart (the cosine ranks synonyms above siblings with an AUC of 0.64 on our word pairs), so
the model is asked "Is A a synonym of B?" in both orders; only two "no"s make a sibling, and a
missing word all of whose counterparts are siblings is what the passages do not cover
(`bench/synonym_bench.py` measures the question on word pairs written for it).

The words come from jieba; the cosine and the model's yes/no are passed in as functions, so
the rule is a pure function of its inputs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ingest.text import has_cjk, language, sentences

# jieba's tags of nouns, names, places, organisations, time words and Latin-script words; not
# verbs or adjectives: "报到" for "入职" is a way of saying, not a different thing asked about
_THING_TAG = re.compile(r"^(?:n|t|eng)")
_DEMONSTRATIVE = re.compile(r"^(?:此|该|这|那|本|其|上述)")
_INTERROGATIVE = re.compile(r"什么|什么样|哪些|哪个|哪种|哪类|哪|多少|几|何|啥|怎样|怎么样")
# nouns that name the slot a question asks to fill rather than a thing it is about ("…的名称是什么",
# "编制日期是？"): documents state the name or the date without the word, so its absence says
# nothing, and whatever word sits nearest it is no sibling
_ANSWER_KINDS = frozenset(
    "名称 名字 全称 称号 日期 时间 时候 年份 年代 地点 地方 位置 地址 数量 人数 原因 理由 方法 "  # noqa: SIM905
    "方式 办法 作用 用途 意思 含义 意义 区别 差别 不同 内容 类型 种类 特点 特征 结果 情况".split()
)
MAX_COUNTERPARTS = 2

Embed = Callable[[Sequence[str]], np.ndarray]  # words → unit vectors, one row each
Synonym = Callable[[str, str], bool | None]  # the model's "is A a synonym of B?" (None: unsure)

SYNONYM_QUESTION = 'Is "{a}" a synonym of "{b}"? Answer yes or no.'


@dataclass(frozen=True)
class Sibling:
    """A word of the question the passages lack, and the words they have in its place."""

    missing: str
    instead: tuple[str, ...]


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def thing_words(text: str, question: bool = False) -> list[str]:
    """The nouns, names, time words and Latin words of `text` (two characters or more for
    Chinese, three letters or more for Latin words), in order, once each. In a `question`, a
    noun an interrogative modifies ("什么区别", "哪些内容", "什么时候") or one of the slot nouns
    (名称, 日期, 原因 …) names the kind of answer wanted, not a thing asked about, and is left
    out; so is a plain noun jieba's dictionary lacks (its model guessed the word)."""
    from jieba import dt as dictionary
    from jieba import posseg  # loaded by retrieval already; kept off this module's import path

    from ingest import QUERY_STOPWORDS

    words = []
    previous: list[str] = []
    for pair in posseg.lcut(_nfkc(text)):
        word = pair.word.strip()
        # "什么区别", "哪些内容", "什么样的方法"
        before = previous[-2:] if previous[-1:] == ["的"] else previous[-1:]
        modified = bool(before) and bool(_INTERROGATIVE.fullmatch(before[0]))
        if word:
            previous.append(word)
        if not _THING_TAG.match(pair.flag) or word.lower() in QUERY_STOPWORDS:
            continue
        if question and (modified or word in _ANSWER_KINDS):
            continue
        if question and has_cjk(word) and not dictionary.FREQ.get(word) and pair.flag[:2] == "n":
            # a word jieba's model made up from characters it could not place ("花是"): a
            # question's name nobody listed is `missing_names`'s to judge, not this check's
            continue
        if _DEMONSTRATIVE.match(word) or len(word) < (2 if has_cjk(word) else 3):
            continue
        words.append(word)
    return list(dict.fromkeys(words))


def missing_words(question: str, sources: Sequence[str]) -> list[str]:
    """The question's thing words that none of `sources` holds (case and width folded)."""
    held = "\n".join(_nfkc(s).lower() for s in sources)
    return [w for w in thing_words(question, question=True) if w.lower() not in held]


def sibling_term(
    question: str,
    sources: Sequence[str],
    embed: Embed,
    synonym: Synonym,
    floor: float,
) -> Sibling | None:
    """The first word of `question` that `sources` (the passages with their titles and
    headings) lack and whose nearest words there are all other things of its kind; None when
    every word is there, stands there in other words, or has nothing near it. Sources in
    another language than the question are not read (words cannot be compared)."""
    if not sources or not has_cjk(question):
        return None
    if any(language(s) not in ("", "zh") for s in sources):
        return None
    missing = missing_words(question, sources)
    if not missing:
        return None
    asked = {w.lower() for w in thing_words(question)}
    said = dict.fromkeys(w for s in sources for w in thing_words(s))
    present = [w for w in said if w.lower() not in asked]
    if not present:
        return None
    vectors = np.asarray(embed([*missing, *present]))
    cosines = vectors[: len(missing)] @ vectors[len(missing) :].T
    for word, scores in zip(missing, cosines, strict=True):
        near = sorted(
            ((float(c), w) for c, w in zip(scores, present, strict=True) if c >= floor),
            reverse=True,
        )[:MAX_COUNTERPARTS]
        if not near:
            continue  # nothing in the passages stands where this word would: not decided here
        instead = tuple(w for _, w in near)
        if all(_different(word, other, synonym) for other in instead):
            return Sibling(word, instead)
    return None


def _different(word: str, other: str, synonym: Synonym) -> bool:
    """Two "no"s (both orders) make another thing; a "yes" or an unsure reply does not."""
    return synonym(word, other) is False and synonym(other, word) is False


def sentence_with(
    word: str, texts: Sequence[str], titles: Sequence[str] = ()
) -> tuple[int, int, int] | None:
    """(text index, start, end) of the first sentence of `texts` holding `word`; a sentence
    that only repeats its text's title (`titles`, one per text) when there is no other."""
    wanted = _nfkc(word).lower()
    found: list[tuple[bool, int, int, int]] = []
    for index, text in enumerate(texts):
        title = _nfkc(titles[index]).strip() if index < len(titles) else ""
        for sentence in sentences(text):
            said = _nfkc(sentence.text)
            if wanted in said.lower():
                found.append((said.strip() == title, index, sentence.start, sentence.end))
    if not found:
        return None
    _, index, start, end = min(found, key=lambda f: f[0])  # stable: the first of its kind
    return index, start, end


def read_yes_no(reply: str) -> bool | None:
    """The model's yes or no at the start of `reply`; None for anything else."""
    head = reply.strip().lstrip("\"'“”「」*").lower()
    if head.startswith(("yes", "是")):
        return True
    if head.startswith(("no", "否", "不")):
        return False
    return None
