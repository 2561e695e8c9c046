"""Polarity: whether an answer sentence says the opposite of the sentence it cites.

Character bigrams cannot see a negation: "试用期员工可以请婚假" shares most of its bigrams with
"试用期员工不可以请婚假". Three pure checks read polarity at the clause level:

- `polarity_conflict(claim, evidence)`: a clause of the claim and the evidence clause it restates
  (the one sharing most of its bigrams) differ in negation;
- `yes_no_conflict(question, answer, cited, passage)`: the verdict of an answer to a yes/no
  question ("可以。", "No, …") differs from the evidence clause about the question's subject
  ("正式员工可凭工牌申请班车卡；实习生和外包人员不在发放范围内。": for 实习生 the second
  clause decides, not the one the model cited);
- `swapped_name(claim, evidence, question)`: the claim puts a name or number of the question
  where the evidence has another one ("A 公司由王五创立" over "B 公司由王五创立"): a fact of
  one thing given as a fact of another.

A negation here is a word that denies the clause (不, 没, 未, 无, 非, 别, 勿, 禁止, 不得, not, no,
never, cannot …); words that merely contain such a character (不仅, 无论, 非常, 未来, 不断) and
bounds (不超过, 不少于, no more than) are not, and a double negation (不得不, 无不, 非…不可)
affirms.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from ingest.text import CJK, char_bigrams, strip_markers

# Words whose 不/无/非/未/没 denies nothing, masked before negations are looked for: connectives
# (不仅, 无论, 除非), lexical words (非常, 未来, 不断, 不同, 不错), bounds ("不超过 3 天" is "at
# most 3 days": restating it as "最多 3 天" keeps its sense), and double negations, which affirm.
_NOT_NEGATION_ZH = (
    "不得不|不能不|不可不|不会不|没有不|无不|不无|非得|并非不|未尝不|莫不"
    "|不仅|不但|不只|不光|不单|不管|不论|无论|除非|要不然|不然|不过|不如|不久|不断|不少"
    "|不错|不同|不一样|不一而足|差不多|了不起|不好意思|非常|非洲|无线|无锡|无人机|未来|没收"
    "|无非|是非|不超过|不少于|不低于|不高于|不大于|不小于|不多于|不晚于|不早于|不足"
    "|不迟于|无需赘述|是否|能否|可否|与否|否则|要不要|是不是|能不能|可不可以|会不会|有没有"
)
_NEGATION_ZH = "不|没|未|无|非|别|勿|莫|禁止|严禁|否"
_NOT_NEGATION_EN = (
    r"\bnot only\b|\bno (?:more|less|later|earlier|fewer|greater) than\b"
    r"|\bnot (?:more|less|later|earlier|fewer) than\b|\bnot exceed(?:ing)?\b"
    r"|\bwhether or not\b|\bno doubt\b|\bnone the less\b|\bnonetheless\b"
)
_NEGATION_EN = (
    r"\b(?:not|no|never|cannot|none|nobody|nothing|neither|nor|without|unable"
    r"|prohibited|forbidden)\b|n't\b"
)
_MASK_ZH = re.compile(_NOT_NEGATION_ZH)
_MASK_EN = re.compile(_NOT_NEGATION_EN, re.IGNORECASE)
_NEGATION = re.compile(f"{_NEGATION_ZH}|{_NEGATION_EN}", re.IGNORECASE)
# "非…不可": must
_MUST = re.compile(r"非[^，。；,;]{1,8}不可")

_CLAUSE = re.compile(r"[，,；;：:。！？!?\n]+")
# a clause shares at least this share of its bigrams with the evidence clause it restates
ALIGN = 0.5
MIN_ALIGN_GRAMS = 2


def negated(text: str) -> bool:
    """Whether `text` (a clause) holds a negation that denies it."""
    text = unicodedata.normalize("NFKC", strip_markers(text))
    text = _MUST.sub("必须", text)
    text = _MASK_EN.sub(" ", _MASK_ZH.sub("", text))
    return _NEGATION.search(text) is not None


def clauses(text: str) -> list[str]:
    """The clauses of `text`, cut at commas, semicolons, colons and full stops."""
    return [c.strip() for c in _CLAUSE.split(strip_markers(text)) if c.strip()]


def _share(part: str, whole: str) -> tuple[float, int]:
    grams = char_bigrams(part)
    if not grams:
        return 0.0, 0
    shared = len(grams & char_bigrams(whole))
    return shared / len(grams), shared


def _aligned(clause: str, others: Sequence[str]) -> str | None:
    """The clause of `others` that `clause` restates: the one sharing most of its bigrams,
    at least ALIGN of them."""
    best, best_score = None, (0.0, 0)
    for other in others:
        score = _share(clause, other)
        if score > best_score:
            best, best_score = other, score
    if best is None or best_score[0] < ALIGN or best_score[1] < MIN_ALIGN_GRAMS:
        return None
    return best


def _is_chinese(text: str) -> bool:
    return CJK.search(text) is not None


def polarity_conflict(claim: str, evidence: str) -> bool:
    """Whether a clause of `claim` and the clause of `evidence` it restates differ in negation.
    Across languages (no bigram to align by) the whole claim is weighed against the evidence:
    a negated claim over evidence without any negation, or the reverse over one-clause
    evidence."""
    if _is_chinese(claim) != _is_chinese(evidence):
        said, source = negated(claim), negated(evidence)
        if said and not source:
            return True
        return not said and source and len(clauses(evidence)) == 1
    others = clauses(evidence)
    for clause in clauses(claim):
        match = _aligned(clause, others)
        if match is not None and negated(clause) != negated(match):
            return True
    return False


# --- yes / no -----------------------------------------------------------------------------

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
    if _is_chinese(text):
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
    if _is_chinese(text):
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
    if not _is_chinese(subject):
        return subject in clause.lower()
    share, _ = _share(subject, clause)
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


def _decisive(question: str, pool: Sequence[str]) -> str:
    """The clause of `pool` that answers the question: the one sharing most of what the
    question asks beyond its subject (all of `pool` is about the subject already)."""
    subject = question_subject(question)
    asked = question.replace(subject, " ") if subject else question
    if not char_bigrams(asked):
        asked = question
    return max(pool, key=lambda c: _share(asked, c))


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
    best = _decisive(question, pool)
    if _is_chinese(best) != _is_chinese(question):
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
    return negated(_decisive(question, pool))


def yes_no_conflict(question: str, sentence: str, cited: Sequence[str], passage: str = "") -> bool:
    """Whether the answer to a yes/no question says yes where its evidence says no, or the
    reverse."""
    if not is_yes_no(question):
        return False
    said = answer_verdict(question, sentence)
    source = evidence_verdict(question, cited, passage)
    return said is not None and source is not None and said != source


# --- swapped names ------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*|[\u3400-\u9fff]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", strip_markers(text)).lower())


def _is_name_token(token: str) -> bool:
    return not CJK.match(token)


def swapped_name(claim: str, evidence: str, question: str = "") -> bool:
    """Whether the claim puts a Latin-script name or a number of the question ("A", "B2",
    "2023") where its evidence has a different one ("B", "A1", "2022"): the evidence states
    the fact of another thing. Aligned as token sequences (CJK characters, Latin words and
    numbers); a replaced name the evidence does not have and the question does."""
    from difflib import SequenceMatcher

    said, source = _tokens(claim), _tokens(evidence)
    asked = set(_tokens(question))
    matcher = SequenceMatcher(a=said, b=source, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "replace":
            continue
        new = [t for t in said[a0:a1] if _is_name_token(t)]
        old = [t for t in source[b0:b1] if _is_name_token(t)]
        if not new or not old:
            continue
        if any(t in asked and t not in source for t in new) and any(t not in said for t in old):
            return True
    return False
