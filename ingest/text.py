"""The text toolkit shared by chunking, passages, prompts and citations: sentence splitting with
offsets, CJK detection, character n-grams, numbers, and Markdown table rows.

One place for these rules, so a sentence the prompt numbers is the sentence a citation points
at and the sentence the evidence check reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Chinese characters: the CJK Unified Ideographs, extension A and the compatibility block.
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
LATIN = re.compile(r"[A-Za-z]")
# Latin and number words kept whole: "1.5b", "gpt-1", "192.168.1.1", "qwen2.5"
WORD = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")
# A number as the claim-support metric reads it: digits with their decimal point, thousands
# separators and a percent sign ("1,252", "43.3", "15%").
NUMBER = re.compile(r"\d+(?:[.,]\d+)*%?")

# Where chunks may end a sentence (ingest/_chunk.py): full stops with closing quotes after them.
SENTENCE_END = re.compile(r"[。！？；!?;…]+[”’\"')）」』]*|\.(?=\s)")
# clause marks; an ASCII comma or colon between digits is part of a number ("2,800", "9:30")
CLAUSE_END = re.compile(r"[，、：]|(?<!\d)[,:]|[,:](?!\d)")
# Where an answer or passage sentence ends for citing and checking: the metric's 。！？!?；
# and line ends, plus ";" and an English full stop before a space.
# An English full stop ends a sentence before a capital, a digit or the end, not after an
# initial or in an abbreviation ("B. laciniata", "var. megacephala", "J. Smith").
_CITE_END = re.compile(r"[。！？!?；;]+[”’\"')）」』]*|(?<!\b[A-Za-z])\.(?=\s*$|\s+[^a-z\s])|\n")
# [1] [1,2] [1、2] 【1】 [^1] [资料1]: all mean "item 1"
MARKER = re.compile(r"[\[【]\s*(?:\^|资料\s*)?(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]】]")
_TRAILING_MARKER = re.compile(r"\s*" + MARKER.pattern)
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def has_cjk(text: str) -> bool:
    return CJK.search(text) is not None


def mostly_chinese(text: str) -> bool:
    """At least 30% of the letters are Chinese characters."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(1 for c in letters if CJK.match(c)) / len(letters) >= 0.3


_LATIN_WORD = re.compile(r"[A-Za-z]+")


def language(text: str) -> str:
    """ "zh" when the text has a Chinese character for every twenty Latin-script words or more
    (a Chinese document about software is full of English terms, URLs and code: counting
    letters would call it English), "en" for English prose, "" for neither (code, numbers)."""
    cjk = len(CJK.findall(text))
    words = len(_LATIN_WORD.findall(text))
    if cjk and 20 * cjk >= words:
        return "zh"
    if not words:
        return ""
    # English prose, not code: code ("qkv = self.proj(x).chunk(3, dim=-1)") is in no language
    plain = sum(1 for c in text if c.isalnum() or c.isspace() or c in ",.;:'\"!?-%")
    return "en" if plain >= 0.9 * len(text) else ""


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def strip_markers(text: str) -> str:
    return MARKER.sub("", text)


def ngrams(text: str) -> set[str]:
    """Chinese character bigrams (a lone character as itself) and lower-cased Latin/number
    words ("1.5b", "gpt-1")."""
    text = normalize(text)
    grams: set[str] = set()
    for run in CJK_RUN.findall(text):
        if len(run) == 1:
            grams.add(run)
        else:
            grams.update(run[i : i + 2] for i in range(len(run) - 1))
    grams.update(WORD.findall(text))
    return grams


def singular(word: str) -> str:
    """An English plural's singular by its spelling ("lockers" → "locker", "fees" → "fee",
    "batteries" → "battery"); other words as they are. Both sides of a comparison are folded
    alike, so an odd result ("series" → "sery") still matches itself."""
    if len(word) <= 3 or not word.isalpha() or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def shared_weight(wanted: set[str], text: str, fold: Callable[[str], str] | None = None) -> int:
    """What `text` shares with the n-grams `wanted` (a question's): a Chinese bigram counts 1,
    a Latin or number word ("1.5b") 2. With `fold`, the text's n-grams are folded first (as
    `wanted` was: `singular`)."""
    grams = ngrams(text)
    if fold is not None:
        grams = {fold(g) for g in grams}
    return sum(1 if CJK_RUN.fullmatch(g) else 2 for g in wanted & grams)


def char_bigrams(text: str) -> set[str]:
    """The claim-support metric's bigrams: NFKC, lower case, markers, punctuation and
    whitespace removed, then every pair of neighbouring characters."""
    squashed = "".join(c for c in normalize(strip_markers(text)) if c.isalnum())
    if len(squashed) == 1:
        return {squashed}
    return {squashed[i : i + 2] for i in range(len(squashed) - 1)}


def letters(text: str) -> int:
    """Letters or CJK characters once markers and punctuation are removed."""
    return sum(1 for c in strip_markers(text) if c.isalpha())


def numbers(text: str) -> list[str]:
    return NUMBER.findall(unicodedata.normalize("NFKC", text))


def is_table_row(line: str) -> bool:
    return line.count("|") >= 2 and not line.lstrip().startswith("#")


def table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@dataclass(frozen=True)
class Sentence:
    start: int  # offsets into the text it was cut from; text[start:end] == sentence.text
    end: int
    text: str


def sentence_spans(
    text: str, *, keep_markers: bool = True, ends: re.Pattern[str] = _CITE_END
) -> list[tuple[int, int]]:
    """Spans of the sentences of `text`, cut after 。！？!?；; and line ends (an English "."
    before a space too), or wherever `ends` matches. With `keep_markers`, citation markers right
    after a sentence end stay with that sentence ("…能力。 [1]")."""
    spans, start = [], 0
    for match in ends.finditer(text):
        end = match.end()
        while keep_markers:
            trailing = _TRAILING_MARKER.match(text, end)
            if not trailing:
                break
            end = trailing.end()
        if end > start:
            spans.append((start, end))
        start = end
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def sentences(text: str) -> list[Sentence]:
    """The non-blank sentences of `text`, each without its surrounding whitespace."""
    out = []
    for start, end in sentence_spans(text):
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if piece.strip():
            out.append(Sentence(start + lead, end - trail, piece.strip()))
    return out


def evidence_units(text: str, max_chars: int = 160) -> Iterator[Sentence]:
    """Sentences for numbering in a prompt: table rows and lines stay whole, a long sentence is
    cut at clause marks into pieces of at most about `max_chars` (a sentence the model can cite
    should be short enough to check)."""
    for sentence in sentences(text):
        if len(sentence.text) <= max_chars or is_table_row(sentence.text):
            yield sentence
            continue
        piece_start = sentence.start
        last_cut = None
        for match in CLAUSE_END.finditer(text, sentence.start, sentence.end):
            if match.end() - piece_start > max_chars and last_cut is not None:
                yield _trimmed(text, piece_start, last_cut)
                piece_start = last_cut
            last_cut = match.end()
        if piece_start < sentence.end:
            yield _trimmed(text, piece_start, sentence.end)


def _trimmed(text: str, start: int, end: int) -> Sentence:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    return Sentence(start + lead, end - (len(piece) - len(piece.rstrip())), piece.strip())
