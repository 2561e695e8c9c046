"""Is this text readable or extraction garbage? Decides which PDF pages keep their text layer,
which need OCR, and which OCR results are noise."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

CID = re.compile(r"\(cid:\d+\)")
# characters that carry no text: replacement char, private use (BMP and planes 15/16)
PDF_JUNK = re.compile(r"[\ufffd\ue000-\uf8ff\U000f0000-\U0010ffff]")
_GOOD_PAGE = 0.8  # share of good characters a page needs to be kept
# A document is rejected when garbage pages outnumber good ones AND hold most of its characters:
# either measure alone is fooled by one huge junk table or by many small junk figure pages.
GOOD_DOC = 0.5
_MIN_WORDLIKE = 0.3  # letters and digits among the non-space characters of a page
_HAN = "HAN"
_LATIN = "LATIN"
_RARE_HAN = "RARE_HAN"


@dataclass
class Quality:
    """Counts of a page's characters: readable text versus extraction garbage."""

    good: int = 0
    bad: int = 0
    wordlike: int = 0

    @property
    def total(self) -> int:
        return self.good + self.bad

    @property
    def score(self) -> float:
        return self.good / self.total if self.total else 0.0

    def is_text(self) -> bool:
        return (
            self.wordlike > 0
            and self.score >= _GOOD_PAGE
            and self.wordlike >= _MIN_WORDLIKE * self.total
        )


def text_quality(text: str) -> Quality:
    """Score NFKC text extracted from a PDF page.

    Fonts without a usable ToUnicode map come out as `(cid:N)`, U+FFFD, private-use or control
    characters, or as letters of random scripts (Cyrillic, Arabic, Syriac, NKo ... in one word).
    Garbage: those characters, CJK extension characters (almost never in real text but frequent
    in such junk) and every character of a word mixing three scripts or two non-Latin, non-Han
    scripts. Good: everything else except spaces. Runs of one repeated punctuation mark (dot
    leaders) count once so a table of contents is not mistaken for junk.
    """
    quality = Quality(bad=len(CID.findall(text)))
    for word in CID.sub(" ", text).split():
        word = _squeeze_punctuation(word)
        junk = _mixes_scripts(word)
        for ch in word:
            category = unicodedata.category(ch)
            if junk or category in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
                quality.bad += 1
            elif category == "Cf":
                continue  # soft hyphens, zero-width joiners: harmless
            elif category[0] == "L" and _script(ch) == _RARE_HAN:
                quality.bad += 1
            else:
                quality.good += 1
                quality.wordlike += category[0] in "LN"
    return quality


_PUNCT_RUN = re.compile(r"([^\w\s])\1+")


def _squeeze_punctuation(word: str) -> str:
    return _PUNCT_RUN.sub(r"\1", word)


def _mixes_scripts(word: str) -> bool:
    scripts = {_script(ch) for ch in word if ch.isalpha()}
    return len(scripts) >= 3 or len(scripts - {_LATIN, _HAN}) >= 2


@lru_cache(maxsize=65536)
def _script(ch: str) -> str:
    code = ord(ch)
    if 0x4E00 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x3005 <= code <= 0x3007:
        return _HAN
    if 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x3FFFF:
        return _RARE_HAN
    name = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
    # Chinese, Japanese and Korean mix these inside one word
    return _HAN if name in {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"} else name
