"""`polarity` (GUARD_POLARITY): an answer sentence that says the opposite of the sentence it
cites.

Character bigrams cannot see a negation: "试用期员工可以请婚假" shares most of its bigrams with
"试用期员工不可以请婚假". `polarity_conflict(claim, evidence)` reads polarity at the clause level:
a clause of the claim and the evidence clause it restates (the one sharing most of its bigrams)
differ in negation. `negated` and `clauses` are read by the `yes_no` check too.

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


def bigram_share(part: str, whole: str) -> tuple[float, int]:
    """The share of `part`'s character bigrams that `whole` holds, and how many it holds."""
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
        score = bigram_share(clause, other)
        if score > best_score:
            best, best_score = other, score
    if best is None or best_score[0] < ALIGN or best_score[1] < MIN_ALIGN_GRAMS:
        return None
    return best


def is_chinese(text: str) -> bool:
    """Whether `text` holds a CJK character."""
    return CJK.search(text) is not None


def polarity_conflict(claim: str, evidence: str) -> bool:
    """Whether a clause of `claim` and the clause of `evidence` it restates differ in negation.
    Across languages (no bigram to align by) the whole claim is weighed against the evidence:
    a negated claim over evidence without any negation, or the reverse over one-clause
    evidence."""
    if is_chinese(claim) != is_chinese(evidence):
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
