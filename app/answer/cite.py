"""Reading the model's evidence-first reply and checking its answer against its evidence.

The reply is JSON, `{"evidence": [ids], "answer": "…"}`, streamed token by token; `ReplyReader`
gives the evidence as soon as its list closes and the answer text as it grows. Each answer
sentence is then checked against the sentences it may cite (`supporting`): its numbers and
Latin-script names must occur there, and most of its character bigrams. Only a supported
sentence is shown, with the marker of the sentence that supports it, so nothing shown is
later taken back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from ingest.text import (
    char_bigrams,
    letters,
    ngrams,
    normalize,
    numbers,
    sentence_spans,
    strip_markers,
)

SUPPORT = 0.6  # share of a sentence's character bigrams its evidence must hold
QUOTE_CHARS = 8  # letters and digits from which a verbatim piece of a sentence is a quote
# from which a piece of the chosen evidence is a quote in the answer to a yes/no question: there
# a name or a phrase is no answer in its own right ("李强(出差)" of "缺席：李强(出差)")
VERDICT_PIECE_CHARS = 4
MIN_LETTERS = 4  # shorter sentences ("是的。") carry no claim of their own
_LATIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+][A-Za-z0-9]+)*")
_EVIDENCE = re.compile(r'"evidence"\s*:\s*\[([^\]]*)\]')
_ANSWER_KEY = re.compile(r'"answer"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class ReplyReader:
    """An incremental reader of `{"evidence": [...], "answer": "..."}`: feed it the streamed
    text, read `evidence` (None until the list closes) and the answer text decoded so far.
    A reply that does not start with "{" is plain text (a backend that ignored the schema):
    all of it is the answer and `evidence` stays None."""

    def __init__(self) -> None:
        self.raw = ""
        self.evidence: list[int] | None = None
        self.answer = ""
        self.plain: bool | None = None
        self.done = False  # the answer string closed
        self._at: int | None = None  # where the undecoded rest of the answer string starts

    def feed(self, piece: str) -> str:
        """Add streamed text; returns the answer text it added."""
        self.raw += piece
        if self.plain is None and self.raw.strip():
            self.plain = not self.raw.lstrip().startswith("{")
        if self.plain:
            self.answer += piece
            return piece
        if self.evidence is None:
            found = _EVIDENCE.search(self.raw)
            if found:
                self.evidence = [int(n) for n in re.findall(r"\d+", found.group(1))]
        if self._at is None:
            key = _ANSWER_KEY.search(self.raw)
            if not key:
                return ""
            self._at = key.end()
        return self._decode()

    def _decode(self) -> str:
        assert self._at is not None
        out, i, raw = [], self._at, self.raw
        while i < len(raw) and not self.done:
            c = raw[i]
            if c == '"':
                self.done = True
                i += 1
                break
            if c != "\\":
                out.append(c)
                i += 1
                continue
            if i + 1 >= len(raw):
                break  # an escape cut in two: wait for the rest
            e = raw[i + 1]
            if e == "u":
                if i + 6 > len(raw):
                    break
                code = int(raw[i + 2 : i + 6], 16)
                if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                    if i + 12 > len(raw):
                        break
                    low = int(raw[i + 8 : i + 12], 16)
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 12
                    continue
                out.append(chr(code))
                i += 6
                continue
            out.append(_ESCAPES.get(e, e))
            i += 2
        self._at = i
        text = "".join(out)
        self.answer += text
        return text

    def finish(self) -> None:
        """The stream ended: read what a complete JSON reply says, if it is one."""
        if self.plain:
            return
        try:
            data = json.loads(self.raw)
        except ValueError:
            return
        if isinstance(data, dict):
            if isinstance(data.get("evidence"), list):
                self.evidence = [n for n in data["evidence"] if isinstance(n, int)]
            if isinstance(data.get("answer"), str):
                self.answer = data["answer"]
                self.done = True


def counts_as_claim(sentence: str) -> bool:
    return letters(sentence) >= MIN_LETTERS


def supported_by(sentence: str, evidence: str, question: str = "", passage: str = "") -> bool:
    """Whether `evidence` supports an answer sentence: its numbers and Latin-script names occur
    in the evidence (or the question), and at least SUPPORT of its character bigrams occur in
    the evidence or the question, and as many in the evidence's passage (`passage`, the
    evidence itself when not given), so the sentence restates its evidence in the question's
    terms at most. A short sentence ("可以。", "桂花") needs all of its bigrams there."""
    claim = strip_markers(sentence)
    source = normalize(evidence)
    asked = normalize(question)
    if any(n not in source and n not in asked for n in numbers(claim)):
        return False
    for name in _LATIN_NAME.findall(claim):
        if name.lower() not in source and name.lower() not in asked:
            return False
    grams = char_bigrams(claim)
    if not grams:
        return False
    need = SUPPORT if counts_as_claim(claim) else 1.0
    near = char_bigrams(source) | char_bigrams(asked)
    if len(grams & near) / len(grams) < need:
        return False
    around = char_bigrams(normalize(passage)) if passage else char_bigrams(source)
    return len(grams & around) / len(grams) >= need


SupportTest = Callable[[str, str, str, str], bool]


def supporting(
    sentence: str,
    candidates: Sequence[int],
    texts: Sequence[str],
    question: str = "",
    passages: Sequence[str] = (),
    test: SupportTest = supported_by,
    groups: Sequence[int] | None = None,
) -> list[int]:
    """The candidate ids (indexes into `texts`; `passages[i]` the text of the passage holding
    `texts[i]`, if given) that support `sentence` by `test` (sentence, evidence, question,
    passage): the best single one when one suffices, else the fewest together, best first;
    [] when even all of them fail. With `groups` (the passage of each id), the ones together
    are of one passage: pieces of several passages put together state a fact none of them
    does ("A 公司由（B 的创始人）创立")."""
    if not candidates:
        return []

    def around(ids: Sequence[int]) -> str:
        return "\n".join(dict.fromkeys(passages[i] for i in ids)) if passages else ""

    scored = sorted(candidates, key=lambda i: -_overlap(sentence, texts[i]))
    for i in scored:
        if test(sentence, texts[i], question, around([i])):
            return [i]
    pools = [scored]
    if groups is not None:
        passages_in_order = dict.fromkeys(groups[i] for i in scored)
        pools = [[i for i in scored if groups[i] == g] for g in passages_in_order]
    found: list[list[int]] = []
    for pool in pools:
        for count in range(2, len(pool) + 1):
            chosen = pool[:count]
            joined = "\n".join(texts[i] for i in chosen)
            if test(sentence, joined, question, around(chosen)):
                found.append(sorted(chosen))
                break
    return min(found, key=len) if found else []


def restated_unit(
    sentence: str, wanted: set[str], shown: str, units: Sequence[int], texts: Sequence[str]
) -> int | None:
    """Of `units` (indexes into `texts`), the sentence an answer sentence no passage sentence
    supports says in other words ("午餐调价后为 18 元。" for "午餐标准套餐价格由 15 元调整为 18
    元"): the one sharing most of the question's own words (`wanted`, n-grams) with it, of
    those the answer shown so far (`shown`) does not hold: the part of the question the
    sentence answers. None when no unit shares one; the first of equals."""
    asked = (ngrams(sentence) & wanted) - ngrams(shown)
    best, most = None, 0
    for unit in units:
        shared = len(asked & ngrams(texts[unit]))
        if shared > most:
            best, most = unit, shared
    return best


def _overlap(sentence: str, text: str) -> float:
    grams = char_bigrams(sentence)
    return len(grams & char_bigrams(text)) / len(grams) if grams else 0.0


def _core(text: str) -> str:
    return re.sub(r"[\W_]", "", normalize(strip_markers(text)))


def _quoted(sentence: str, question: str, shortest: int = QUOTE_CHARS) -> list[str]:
    """What of `sentence` may be a quote: all of it, and what follows a lead-in that restates
    the question's words ("误食黄蝉" + "可引致…", "木咀C" + "自小被溺爱…")."""
    core, asked = _core(sentence), _core(question)
    forms = [core]
    lead = next((k for k in range(len(core), 1, -1) if core[:k] in asked), 0)
    if lead:
        forms.append(core[lead:])
    return [f for f in forms if len(f) >= shortest]


def quotes(sentence: str, source: str, question: str = "", shortest: int = QUOTE_CHARS) -> bool:
    """Whether `sentence` quotes `source` word for word (punctuation, width and case aside),
    all of it or a piece, maybe after restating the question's words. A short piece (a name,
    a number with its unit: fewer than `shortest` letters and digits) is an answer in its own
    right, not a quote."""
    whole = _core(source)
    return any(form in whole for form in _quoted(sentence, question, shortest))


def cut_quote(sentence: str, source: str, question: str = "", shortest: int = QUOTE_CHARS) -> bool:
    """A quote of `source` cut short, which can lose what qualifies it (a date, a condition, a
    "不"), so it is shown whole."""
    whole = _core(source)
    return any(form in whole and form != whole for form in _quoted(sentence, question, shortest))


_ANSWER_LABEL = re.compile(r"^\s*(?:答|回答|解答|A)\s*\d*\s*[:：]\s*", re.IGNORECASE)


def without_answer_label(sentence: str) -> str:
    """A FAQ's answer line without its "答：" / "A:" label, as it reads given as an answer."""
    return _ANSWER_LABEL.sub("", sentence, count=1)


def insert_marker(sentence: str, marker: str) -> str:
    """Put the marker right after the sentence's closing punctuation ("…桂花。[1]"): the
    sentence stays the passage's own text, word for word, up to its full stop."""
    stripped = sentence.rstrip()
    return stripped + marker + sentence[len(stripped) :]


def complete_sentences(text: str) -> tuple[list[str], str]:
    """The finished sentences of streamed text, and the unfinished rest."""
    spans = sentence_spans(text, keep_markers=False)
    if not spans:
        return [], text
    if text.endswith("."):  # "1." may be "1.5" once the next token comes
        last_start = spans[-1][0]
        return [text[s:e] for s, e in spans[:-1]], text[last_start:]
    last_start, last_end = spans[-1]
    closed = re.search(r"(?:[。！？!?；;]+[”’\"')）」』]*|\.|\n)\s*$", text[last_start:last_end])
    if closed:
        return [text[s:e] for s, e in spans], ""
    return [text[s:e] for s, e in spans[:-1]], text[last_start:]


MIN_REPEAT_CHARS = 8  # shorter sentences ("是的。") may well be said twice


def first_repeat(answer: str) -> int | None:
    """Where `answer` starts a sentence it has already said, if it does (the sentence still
    being written does not count). Greedy decoding makes a small model loop on a sentence until
    the token limit."""
    seen: set[str] = set()
    sentences, _ = complete_sentences(answer)
    pos = 0
    for sentence in sentences:
        said = re.sub(r"\s", "", strip_markers(sentence))
        if len(said) >= MIN_REPEAT_CHARS and said in seen:
            return answer.index(sentence, pos)
        seen.add(said)
        pos = answer.index(sentence, pos) + len(sentence)
    return None
