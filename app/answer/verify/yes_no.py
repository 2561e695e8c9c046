"""`yes_no` (GUARD_YES_NO): the verdict of an answer to a yes/no question ("可以。", "No, …")
differs from the evidence clause about the question's subject ("正式员工可凭工牌申请班车卡；实习生
和外包人员不在发放范围内。": for 实习生 the second clause decides, not the one the model cited).
`yes_no_conflict(question, answer, cited, passage)` tells it; the negations are `polarity`'s.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from app.answer.verify.polarity import bigram_share, clauses, is_chinese, negated
from ingest.text import char_bigrams, strip_markers

_ASKS_WHAT = re.compile(
    r"什么|哪|谁|几|多少|多久|多长|怎么|怎样|为什么|为何|如何|何时|何地|啥"
    r"|\b(?:what|which|who|whom|whose|when|where|how|why)\b",
    re.IGNORECASE,
)
_YES_NO_ZH = re.compile(
    r"[吗么嘛][\s?？。!！]*$|是否|能否|可否|有无"
    r"|(.)不\1|(..)不\2|可不可|能不能|会不会|是不是|有没有|要不要|需不需|用不用|对不对|行不行"
)
_YES_NO_EN = re.compile(
    r"^\s*(?:can|could|may|might|is|are|was|were|am|does|do|did|will|would|should|shall"
    r"|must|has|have|had)\b",
    re.IGNORECASE,
)
# where the subject of a Chinese yes/no question ends: its first modal or yes/no word (a
# jieba word, so 会 of 会议 or 有 of 所有 ends nothing)
_MODAL_ZH = re.compile(
    r"^(?:是否|能否|可否|可以|可不可以?|可|能够|能不能|能|会不会|会|是不是|是|有没有|有|要不要|要"
    r"|需不需要|需要|需|必须|应该|应当|允许|得|在|也|还|都|不|不能|不可以|不会|不是|没有|没"
    r"|不用|不需要|不得|不必|不准)$"
)
_ASKING = re.compile(r"^(?:请问|想问一下|想问|问一下|那么|那)\s*")
_USER = re.compile(r"^(?:我们|我|咱们|你们|你|您|大家)$")
_EN_SKIP = frozenset(
    [
        "i",
        "we",
        "you",
        "they",
        "it",
        "he",
        "she",
        "the",
        "a",
        "an",
        "my",
        "our",
        "your",
        "this",
        "that",
        "these",
        "those",
        "there",
        "any",
        "some",
    ]
)
# a bare verdict: agreeing with the question ("是的", "yes") or denying it ("不是", "no")
_AGREE = re.compile(r"^(?:是的?|对的?|没错|正确|yes|correct|right|true)$", re.IGNORECASE)
_DENY = re.compile(r"^(?:不是|不对|否|错|no|false|incorrect)$", re.IGNORECASE)


def is_yes_no(question: str) -> bool:
    """Whether `question` asks yes or no ("可以…吗？", "是否…", "能不能…", "Can/Is/Does …?"),
    not what, who, when, how many."""
    text = unicodedata.normalize("NFKC", question).strip()
    if not text or _ASKS_WHAT.search(text):
        return False
    if is_chinese(text):
        return _YES_NO_ZH.search(text) is not None
    return _YES_NO_EN.search(text) is not None and text.rstrip().endswith("?")


def question_subject(question: str) -> str:
    """What a yes/no question asks about: the words before its first modal ("实习生" of
    "实习生可以申请班车卡吗？"), or the word after an English auxiliary ("interns" of "Can
    interns apply …?"); "" when it is the asker ("我可以…吗").

    >>> question_subject("试用期员工可以请婚假吗？")
    '试用期员工'
    """
    text = _ASKING.sub("", unicodedata.normalize("NFKC", question).strip())
    if is_chinese(text):
        import jieba  # loaded by retrieval already; kept off this module's import path

        words = jieba.lcut(text)
        end = next((i for i, w in enumerate(words) if _MODAL_ZH.match(w)), 0)
        head = re.sub(r"[\W_]", "", "".join(words[:end]))
        return "" if _USER.match(head) else head
    words = re.findall(r"[A-Za-z][A-Za-z0-9-]*", text)
    rest = [w for w in words[1:] if w.lower() not in _EN_SKIP]
    return rest[0].lower() if rest else ""


def about_subject(subject: str, clause: str) -> bool:
    if not subject:
        return False
    if not is_chinese(subject):
        return subject.lower() in clause.lower()  # "K1" of a Chinese question, "k1" of a clause
    share, _ = bigram_share(subject, clause)
    return share >= 0.5


_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")


def _about_clauses(subject: str, texts: Sequence[str]) -> list[str]:
    """The clauses of `texts` about `subject`: those naming it, and those after them in the
    same sentence, which speak of it without naming it again ("试用期员工不享受年假，但可以请
    病假和婚假": the second clause is about 试用期员工 too)."""
    found = []
    for text in texts:
        for sentence in _SENTENCE_END.split(strip_markers(text)):
            named = False
            for clause in clauses(sentence):
                named = named or about_subject(subject, clause)
                if named:
                    found.append(clause)
    return found


def decisive(question: str, pool: Sequence[str]) -> int:
    """The index of the clause of `pool` that answers the question: the one sharing most of
    what the question asks beyond its subject (all of `pool` is about the subject already)."""
    subject = question_subject(question)
    asked = question.replace(subject, " ") if subject else question
    if not char_bigrams(asked):
        asked = question
    return max(range(len(pool)), key=lambda at: bigram_share(asked, pool[at]))


def evidence_verdict(question: str, cited: Sequence[str], passage: str = "") -> bool | None:
    """Whether the evidence denies what a yes/no question asks (True: a negation, False: an
    affirmation, None: it cannot be told). A clause about the question's subject decides,
    first among the cited sentences, then in the rest of their passage; among several, the one
    sharing most of what the question asks of it."""
    subject = question_subject(question)
    pool = _about_clauses(subject, cited)
    if not pool and passage:
        pool = _about_clauses(subject, [passage])
    if not pool:
        pool = [c for text in cited for c in clauses(text)]
    if not pool:
        return None
    best = pool[decisive(question, pool)]
    if is_chinese(best) != is_chinese(question):
        return negated(" ".join(cited)) if cited else None
    return negated(best)


def answer_verdict(question: str, sentence: str) -> bool | None:
    """Whether an answer sentence to a yes/no question says no (True) or yes (False). A bare
    "是的" agrees with the question, negated or not ("不能请婚假吗？" "是的" is a no); else the
    clause that answers the question decides, as in the evidence."""
    parts = clauses(sentence)
    if not parts:
        return None
    first = re.sub(r"[\W_]", "", parts[0])
    asked_negated = negated(question)
    if _AGREE.match(first):
        return asked_negated
    if _DENY.match(first):
        return not asked_negated
    pool = _about_clauses(question_subject(question), [sentence]) or parts
    return negated(pool[decisive(question, pool)])


def yes_no_conflict(question: str, sentence: str, cited: Sequence[str], passage: str = "") -> bool:
    """Whether the answer to a yes/no question says yes where its evidence says no, or the
    reverse."""
    if not is_yes_no(question):
        return False
    said = answer_verdict(question, sentence)
    source = evidence_verdict(question, cited, passage)
    return said is not None and source is not None and said != source
