"""`sibling_terms` (GUARD_SIBLING_TERMS): refuse before the model is asked when a thing the
question names is in none of the passages the model would read and those passages speak of a
sibling of it instead: the lunch price for a question about dinner, the mainland cities for a
question about Hong Kong, the ordinary and expert clinics' fees for the special clinic's.

A word of the question (a noun, a name, a time word, a Latin word; not the attribute it asks to
fill, "X 的作者是谁") is missing when no passage holds it in its title, headings or text. Its
counterparts are the passages' words of its kind nearest it by the embedding model's cosine (at
least `sibling_floor`, two at most), when the one nearest of all is of its kind (食堂's
nearest is 餐厅, the same place in other words, not 食材 of its first character). Of its kind
(`same_kind`): a Chinese compound names its kind
by its head, its last character (午餐 and 晚餐, 研发中心 and 销售中心), or sets itself apart in its
last part under a shared first one (周一 and 周五, 前端 and 后端); where jieba split a compound,
the words modify one head (特需|号, 专家|号); names of places, people and organisations are of a
kind by jieba's tag, and so are Latin-script words and time words. Without that, the cosine alone
pairs a word with whatever sits near it in the embedding (体重 with 哺乳动物, 出生地 with 侄子),
and the model rightly says neither is a synonym (`bench/sibling_fires.py` counts the fires).
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
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from app.answer.verify.reading import DEMONSTRATIVE
from ingest.text import has_cjk, language, sentences

if TYPE_CHECKING:
    from jieba.posseg import pair as Pair

# jieba's tags of nouns, names, places, organisations, time words and Latin-script words; not
# verbs or adjectives: "报到" for "入职" is a way of saying, not a different thing asked about
_THING_TAG = re.compile(r"^(?:n|t|eng)")
_INTERROGATIVE = re.compile(r"什么|什么样|哪些|哪个|哪种|哪类|哪|多少|几|何|啥|怎样|怎么样")
# nouns that name the slot a question asks to fill rather than a thing it is about ("…的名称是什么",
# "编制日期是？"): documents state the name or the date without the word, so its absence says
# nothing, and whatever word sits nearest it is no sibling
_ANSWER_KINDS = frozenset(
    "名称 名字 全称 称号 日期 时间 时候 年份 年代 地点 地方 位置 地址 数量 人数 原因 理由 方法 "  # noqa: SIM905
    "方式 办法 作用 用途 意思 含义 意义 区别 差别 不同 内容 类型 种类 特点 特征 结果 情况".split()
)
MAX_COUNTERPARTS = 2
_NAME_TAGS = frozenset({"ns", "nr", "nt"})  # jieba: place, person, organisation names
_ASKING = re.compile(f"谁|{_INTERROGATIVE.pattern}")
_COPULAS = frozenset({"是", "为", "在", "有"})
_ADVERBS = frozenset("大约 约 大概 一般 通常 主要 分别 都 究竟 到底 现在 目前 现今 还".split())  # noqa: SIM905
_SUFFIX_TAGS = frozenset({"m", "q", "k", "ng"})  # jieba: numeral/measure, suffix, noun morpheme

Embed = Callable[[Sequence[str]], np.ndarray]  # words → unit vectors, one row each
Synonym = Callable[[str, str], bool | None]  # the model's "is A a synonym of B?" (None: unsure)

SYNONYM_QUESTION = 'Is "{a}" a synonym of "{b}"? Answer yes or no.'


def remembering(embed: Embed) -> Embed:
    """`embed` embedding each word once: the guards before the answer, while it streams and at
    its end read the same question and passage words."""
    vectors: dict[str, np.ndarray] = {}

    def embed_once(words: Sequence[str]) -> np.ndarray:
        new = [w for w in dict.fromkeys(words) if w not in vectors]
        if new:
            vectors.update(zip(new, embed(new), strict=True))
        if not words:
            return embed(words)
        return np.stack([vectors[w] for w in words])

    return embed_once


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
    out, as is the attribute the question asks to fill ("X 的 Y 是谁", `_asked_attribute`); so
    is a plain noun jieba's dictionary lacks (its model guessed the word)."""
    return list(tagged_things(text, question))


@dataclass(frozen=True)
class Kind:
    """What a thing word's use tells of its kind: jieba's tag, and the noun right after it, the
    head it modifies when jieba split a compound (特需 in 特需号: 号)."""

    tag: str
    head: str = ""


def tagged_things(text: str, question: bool = False) -> dict[str, Kind]:
    """`thing_words` with the kind of each (its first use in `text`)."""
    from jieba import dt as dictionary

    from ingest import QUERY_STOPWORDS

    words: dict[str, Kind] = {}
    previous: list[str] = []
    pairs = _cut(_nfkc(text))
    for at, pair in enumerate(pairs):
        word = pair.word.strip()
        # "什么区别", "哪些内容", "什么样的方法"
        before = previous[-2:] if previous[-1:] == ["的"] else previous[-1:]
        modified = bool(before) and bool(_INTERROGATIVE.fullmatch(before[0]))
        if word:
            previous.append(word)
        if not _THING_TAG.match(pair.flag) or word.lower() in QUERY_STOPWORDS:
            continue
        if question and (modified or word in _ANSWER_KINDS or _asked_attribute(pairs, at)):
            continue
        if question and has_cjk(word) and not dictionary.FREQ.get(word) and pair.flag[:2] == "n":
            # a word jieba's model made up from characters it could not place ("花是"): a
            # question's name nobody listed is `missing_names`'s to judge, not this check's
            continue
        if DEMONSTRATIVE.match(word) or len(word) < (2 if has_cjk(word) else 3):
            continue
        after = pairs[at + 1] if at + 1 < len(pairs) else None
        head = after.word if after is not None and _is_head(after.word, after.flag) else ""
        words.setdefault(word, Kind(pair.flag, head))
    return words


@lru_cache(maxsize=256)
def _cut(text: str) -> tuple[Pair, ...]:
    """jieba's words of `text` with their tags; a question is read twice (its thing words with
    and without the question's filters), the passages once per question that reaches the check."""
    from jieba import posseg  # loaded by retrieval already; kept off this module's import path

    return tuple(posseg.lcut(text))


def _asked_attribute(pairs: Sequence[Pair], at: int) -> bool:
    """Whether the word at `at` is the attribute the question asks to fill: "X 的 Y 是什么",
    "X 的 Y 在哪里", "X 的 Y 有哪些", "X 的 Y 是谁". Documents state a birthplace, an author or
    a weight without naming it (生于…, …所著, 重 3 公斤), so its absence says nothing."""
    if at == 0 or pairs[at - 1].word != "的":
        return False
    rest = [p.word for p in pairs[at + 1 : at + 5] if p.word.strip()]
    while rest and rest[0] in _ADVERBS:
        rest.pop(0)
    return len(rest) >= 2 and rest[0] in _COPULAS and bool(_ASKING.match(rest[1]))


def _is_head(word: str, tag: str) -> bool:
    """A noun, or the one-character suffix jieba tags as a measure word or suffix (号 of
    特需号, 区 of 开发区), that a word before it modifies."""
    return tag.startswith("n") or (len(word) == 1 and has_cjk(word) and tag in _SUFFIX_TAGS)


def same_kind(word: str, kind: Kind, other: str, other_kind: Kind) -> bool:
    """Whether `other` may stand where `word` would as another thing of its kind: the two share
    their last character (the head of a Chinese compound: 午餐, 晚餐) or their first (周一,
    周五), or modify one head (特需号, 专家号), or are names of one kind (places, people,
    organisations), Latin-script words (product names: Linux, Windows) or time words."""
    a, b = _nfkc(word).lower(), _nfkc(other).lower()
    if a[-1] == b[-1] or a[0] == b[0] or (kind.head and kind.head == other_kind.head):
        return True
    tag, other_tag = kind.tag, other_kind.tag
    if tag[:2] in _NAME_TAGS and tag[:2] == other_tag[:2]:
        return True
    return (tag, other_tag) == ("eng", "eng") or (tag[0] == "t" and other_tag[0] == "t")


_DAYS = "一二三四五六日天"
_WEEKDAY = re.compile(rf"(周|星期|礼拜)([{_DAYS}])")
_DAY_RANGE = re.compile(
    rf"(?:周|星期|礼拜)([{_DAYS}])\s*(?:至|到|~|～|-|—)\s*(?:周|星期|礼拜)?([{_DAYS}])"
)


def _in_day_range(word: str, text: str) -> bool:
    """Whether a weekday ("周三") falls in a range the text gives ("周一至周五")."""
    day = _WEEKDAY.fullmatch(word)
    if not day:
        return False
    at = _DAYS.index(day.group(2)) if day.group(2) != "天" else 6
    for start, end in _DAY_RANGE.findall(text):
        lo, hi = _DAYS.index(start), min(_DAYS.index(end), 6)
        if lo <= at <= hi:
            return True
    return False


def missing_words(question: str, sources: Sequence[str]) -> dict[str, Kind]:
    """The question's thing words that none of `sources` holds (case and width folded; a
    weekday within a range they give, "周三" in "周一至周五", is held), with their kinds."""
    held = "\n".join(_nfkc(s).lower() for s in sources)
    return {
        w: k
        for w, k in tagged_things(question, question=True).items()
        if w.lower() not in held and not _in_day_range(w, held)
    }


def sibling_term(
    question: str,
    sources: Sequence[str],
    embed: Embed,
    synonym: Synonym,
    floor: float,
    lacking: Sequence[str] = (),
) -> Sibling | None:
    """The first word of `question` that `sources` (the passages with their titles and
    headings) lack and whose nearest words there are all other things of its kind; None when
    every word is there, stands there in other words, or has nothing near it. Sources in
    another language than the question are not read (words cannot be compared). With
    `lacking`, the word must be missing from those texts too (the other passages the model
    read, when `sources` are the ones its answer rests on)."""
    if not sources or not has_cjk(question):
        return None
    if any(language(s) not in ("", "zh") for s in sources):
        return None
    missing = missing_words(question, [*sources, *lacking])
    if not missing:
        return None
    asked = {w.lower() for w in thing_words(question)}
    said: dict[str, Kind] = {}
    for source in sources:
        for w, t in tagged_things(source).items():
            said.setdefault(w, t)
    present = [w for w in said if w.lower() not in asked]
    if not present:
        return None
    vectors = np.asarray(embed([*missing, *present]))
    cosines = vectors[: len(missing)] @ vectors[len(missing) :].T
    for (word, kind), scores in zip(missing.items(), cosines, strict=True):
        nearest = present[int(np.argmax(scores))]
        if not same_kind(word, kind, nearest, said[nearest]):
            # the word nearest it is of another make (餐厅 for 食堂, beside 食材): it may be the
            # thing in other words, and the kind rule cannot see it
            continue
        near = sorted(
            (
                (float(c), w)
                for c, w in zip(scores, present, strict=True)
                if c >= floor and same_kind(word, kind, w, said[w])
            ),
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
