"""What the checks read of a question and of a sentence: the question's own words (without its
question words), whether a sentence can be given as an answer by itself, and Latin-script terms
("Claude", "GPT-4")."""

from __future__ import annotations

import re
import unicodedata

from ingest.text import ngrams, strip_markers

_LEAD_IN = re.compile(r"(?:[:：]|如下)\W*$")
_QUESTION_LINE = re.compile(r"(?:[?？]\W*$)|^\W*(?:问|问题|Q|提问)\s*\d*\s*[:：.、]", re.IGNORECASE)
_SENTENCE_CLOSE = re.compile(r"[。！!；;.]\W*$")
LATIN_TERM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+][A-Za-z0-9]+)*")


# words that point at a thing named elsewhere instead of naming it: demonstratives ("该市",
# "此剧", "这家公司") and pronouns ("它们", "其")
DEMONSTRATIVES = "此该这那本其"
PRONOUNS = "它牠他她其之"
POINTING = frozenset(DEMONSTRATIVES + PRONOUNS)
# a word a demonstrative begins: the thing is named elsewhere in the conversation, not here
DEMONSTRATIVE = re.compile(rf"^(?:[{DEMONSTRATIVES}]|上述)")
_CLAUSE_PRONOUN = re.compile(r"(?:^|[，。；,;])\s*[它牠他她其]")
# a demonstrative with its measure word alone ("这套" of 这套房子, "该款"): it points, it names
# nothing (narrower than DEMONSTRATIVE: 本地 and 其他 stay words a passage may have to hold)
_DEICTIC = re.compile(r"[这那该此本][个套款家位种项条台部辆件份次张间所]")
# a question word with its measure word ("哪家", "几点", "第几届", "哪一年") or a "how" of
# size ("多高", "有多远", "多长时间"): it asks, it names nothing a passage holds
_MEASURE = "个家所间座位种类条件本部台辆张只份次项届年月日天号周点层岁国名批"
_ASKING_WORD = re.compile(
    rf"第?几[{_MEASURE}]|哪一?[{_MEASURE}]|有?多[大重高远宽深厚长久](?:时间)?"
)
_HOW = frozenset("大重高远宽深厚长久")  # jieba cuts "有多高" as 有 | 多 | 高
# what follows "多重" asking how heavy (the question's end), not naming a kind ("多重网络")
_ENDS = re.compile(r"|[?？。!！,，]|[呢吗啊呀的]")


def question_grams(question: str) -> set[str]:
    """The question's n-grams without its question words, particles and demonstratives ("哪个",
    "哪家", "几点", "多高", "是什么", "这套")."""
    import jieba  # loaded by retrieval already; kept off this module's import path

    from ingest import QUERY_STOPWORDS

    cut = jieba.lcut(unicodedata.normalize("NFKC", question).lower())
    words = [w.strip() for w in cut]

    def word(at: int) -> str:
        return words[at] if 0 <= at < len(words) else ""

    def asking(at: int) -> bool:
        here = words[at]
        if here in QUERY_STOPWORDS or _DEICTIC.fullmatch(here):
            return True
        if _ASKING_WORD.fullmatch(here):
            return here[0] != "多" or bool(_ENDS.fullmatch(word(at + 1)))
        if here == "多":  # "有多高" cut 有 | 多 | 高
            return word(at + 1) in _HOW and bool(_ENDS.fullmatch(word(at + 2)))
        return word(at - 1) == "多" and here in _HOW and bool(_ENDS.fullmatch(word(at + 1)))

    kept = [" " if asking(at) else cut[at] for at in range(len(words))]
    return ngrams("".join(kept))


def can_stand_as_answer(sentence: str) -> bool:
    """A sentence that can be given as an answer by itself: not a question line ("问：…？"),
    not a heading (a short line without a closing full stop), not a lead-in ("…如下："), not a
    table row (it means nothing without its header)."""
    text = strip_markers(sentence).strip()
    if not text or _QUESTION_LINE.search(text) or _LEAD_IN.search(text):
        return False
    if text.startswith("|") or text.count("|") >= 2:
        return False
    return bool(_SENTENCE_CLOSE.search(text)) or len(text) > 30


def points_at(word: str, sentence: str) -> bool:
    """Whether `sentence` points at `word` without naming it: a demonstrative before the word's
    head ("该市" for 宜州市), or a pronoun opening one of its clauses (它们, 其)."""
    if re.search(rf"[{DEMONSTRATIVES}]{re.escape(word[-1])}", sentence):
        return True
    return bool(_CLAUSE_PRONOUN.search(sentence))
