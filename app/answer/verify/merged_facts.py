"""`merged_facts` (GUARD_MERGED_FACTS): a fact of one thing given as a fact of another.
`swapped_name(claim, evidence, question)`: the claim puts a name or number of the question where
the evidence has another one ("A 公司由王五创立" over "B 公司由王五创立"). The check also keeps
sentences of two passages from supporting one answer sentence together (`app.answer.check`).
"""

from __future__ import annotations

import re
import unicodedata

from ingest.text import CJK, strip_markers

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
