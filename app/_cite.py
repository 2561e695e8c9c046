"""Citation verification and repair.

Small local models cite badly: numbers that point at no passage, sentences without a citation,
now and then the wrong passage. Code, not the model, has the last word: markers are checked
against the passages actually given, unsupported claims get the passage that clearly supports
them (overlap of Chinese character bigrams and Latin words), and markers are renumbered in
order of appearance. The same overlap catches an answer taken from the wrong sentence
(`off_question`) and an answer that starts repeating itself (`first_repeat`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# [1] [1,2] [1、2] 【1】 [^1] [资料1] — all mean "passage 1"
_MARKER = re.compile(r"[\[【]\s*(?:\^|资料\s*)?(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]】]")
_SENTENCE_END = re.compile(r"[。！？!?；;]|\.(?=\s|$)|\n")
# small models often write "…能力。 [1]" or put the marker on the next line: it still closes the
# sentence before it
_TRAILING_MARKER = re.compile(r"\s*" + _MARKER.pattern)
_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")

ADD_THRESHOLD = 0.5  # share of a sentence's n-grams a passage must contain to be cited for it
ADD_MARGIN = 0.1  # ...and by how much it must beat the runner-up, or the choice is not clear
WRONG_THRESHOLD = 0.15  # a cited passage supporting less than this is treated as a wrong pick
# An answer that misread the passage: one passage sentence holds at least QUESTION_MATCH of the
# question's n-grams, QUESTION_MATCH_MARGIN more than any other sentence, yet the answer shares
# less than OFF_QUESTION of its n-grams with it and of the question's with the question.
QUESTION_MATCH = 0.6
QUESTION_MATCH_MARGIN = 0.3
OFF_QUESTION = 0.2
NEW_GRAMS = 3  # a sentence that only restates the question (a heading) holds no answer


@dataclass
class Repaired:
    text: str  # the answer with canonical, renumbered markers
    cited: list[int]  # original passage numbers, in order of their new numbers (1, 2, ...)
    spans: dict[int, tuple[int, int]]  # original number -> supporting span inside that passage
    changes: list[str] = field(default_factory=list)  # what was repaired, for logs and eval


def ngrams(text: str) -> set[str]:
    """Chinese character bigrams and lower-cased Latin/number words ("1.5b", "gpt-1")."""
    text = unicodedata.normalize("NFKC", text).lower()
    grams: set[str] = set()
    for run in re.findall(r"[\u3400-\u9fff]+", text):
        if len(run) == 1:
            grams.add(run)
        else:
            grams.update(run[i : i + 2] for i in range(len(run) - 1))
    grams.update(_WORD.findall(text))
    return grams


def support(claim: str, passage: str) -> float:
    """Share of the claim's character bigrams and words that occur in the passage."""
    claim_grams = ngrams(claim)
    if not claim_grams:
        return 0.0
    return len(claim_grams & ngrams(passage)) / len(claim_grams)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans; markers right after a sentence end belong to that sentence."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        while True:
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


def _content(sentence: str) -> str:
    return _MARKER.sub("", sentence).strip()


MIN_REPEAT_CHARS = 8  # shorter sentences ("是的。") may well be said twice


def first_repeat(answer: str) -> int | None:
    """Where `answer` starts a sentence it has already said, if it does (the sentence still
    being written does not count). Greedy decoding makes a small model loop on a sentence until
    the token limit: seen on cmrc2018, one sentence written three times, 384 tokens and 50 s."""
    seen: set[str] = set()
    for start, end in _sentence_spans(answer):
        if not _SENTENCE_END.search(answer, start, end):
            break
        said = re.sub(r"\s", "", _content(answer[start:end]))
        if len(said) >= MIN_REPEAT_CHARS and said in seen:
            return start
        seen.add(said)
    return None


_LEAD_IN = re.compile(r"(?:[:：]|如下)\W*$")
# list bullets, and closing quotes left over from the sentence before ("。」此外，…")
_LEADING_JUNK = re.compile(r"^[\s」』”’)）\]】,，、;；:：]*(?:(?:[-*•·]|\d{1,2}[.、)）])\s*)?")


def question_grams(question: str) -> set[str]:
    """The question's n-grams without its question words and particles ("哪个", "是什么")."""
    import jieba  # loaded by retrieval already; kept off this module's import path

    from ingest._tokenize import QUERY_STOPWORDS

    words = jieba.lcut(unicodedata.normalize("NFKC", question).lower())
    return ngrams("".join(" " if w.strip() in QUERY_STOPWORDS else w for w in words))


def matching_sentence(question: str, passages: list[str]) -> tuple[int, int, int] | None:
    """(passage index, start, end) of the one passage sentence that clearly matches the
    question: it holds most of the question's words and clearly more than any other sentence.
    Lead-ins ("…如:") and sentences that add nothing to the question's words (headings) are
    not candidates: the answer is in what follows them. Nor are table rows: a row means
    nothing without its header."""
    return _matching_sentence(question_grams(question), passages)


def _matching_sentence(wanted: set[str], passages: list[str]) -> tuple[int, int, int] | None:
    if not wanted:
        return None
    scored: list[tuple[float, int, int, int]] = []
    for index, passage in enumerate(passages):
        for start, end in _sentence_spans(passage):
            content = _content(passage[start:end])
            grams = ngrams(content)
            if (
                _LEAD_IN.search(content)
                or content.startswith("|")
                or len(grams - wanted) < NEW_GRAMS
            ):
                continue
            scored.append((len(grams & wanted) / len(wanted), index, start, end))
    scored.sort(key=lambda item: -item[0])
    if not scored or scored[0][0] < QUESTION_MATCH:
        return None
    if len(scored) > 1 and scored[0][0] - scored[1][0] < QUESTION_MATCH_MARGIN:
        return None
    return scored[0][1:]


def off_question(answer: str, question: str, passages: list[str]) -> str | None:
    """The passage sentence to give instead of `answer` when the answer misread the passages:
    one sentence clearly matches the question ("数学推理:Minerva模型解决竞赛级数学题"), and the
    answer neither restates the question nor draws on that sentence (it copied the list line
    above it, "AlphaFold2革新生物医药研究"). The sentence comes back with its marker."""
    wanted = question_grams(question)
    found = _matching_sentence(wanted, passages)
    said = ngrams(_MARKER.sub("", answer))
    if found is None or not said:
        return None
    index, start, end = found
    sentence = _content(passages[index][start:end])
    if len(said & wanted) / len(wanted) >= OFF_QUESTION:
        return None
    if len(said & ngrams(sentence)) / len(said) >= OFF_QUESTION:
        return None
    quoted = _LEADING_JUNK.sub("", sentence).rstrip("；;，,、 ")
    end_mark = quoted[-1] if quoted and quoted[-1] in "。！？!?." else ""
    return f"{quoted.removesuffix(end_mark)}[{index + 1}]{end_mark}"


def _insert_marker(sentence: str, marker: str) -> str:
    """Put the marker before the sentence's closing punctuation, where readers expect it."""
    stripped = sentence.rstrip()
    tail = sentence[len(stripped) :]
    if stripped and stripped[-1] in "。！？!?；;.":
        return stripped[:-1] + marker + stripped[-1] + tail
    return stripped + marker + tail


def best_span(passage: str, claims: list[str]) -> tuple[int, int]:
    """The passage sentence that best supports the claims (offsets into the passage)."""
    best, best_score = (0, len(passage)), -1.0
    joined = " ".join(claims)
    for start, end in _sentence_spans(passage):
        piece = passage[start:end]
        if len(piece.strip()) < 2:
            continue
        score = support(piece, joined) if joined else 0.0
        if score > best_score:
            lead = len(piece) - len(piece.lstrip())
            best, best_score = (start + lead, end), score
    return best


def repair(answer: str, passages: list[str], refusals: tuple[str, ...] = ()) -> Repaired:
    """Verify and repair the citation markers of `answer` against `passages` ([1] = passages[0])."""
    count = len(passages)
    changes: list[str] = []

    def canonical(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,，、]\s*", match.group(1))]
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= count]
        for n in numbers:
            if not 1 <= n <= count:
                changes.append(f"removed [{n}]: no such passage")
        return "".join(f"[{n}]" for n in valid)

    text = _MARKER.sub(canonical, answer)
    refusal_keys = {re.sub(r"\W", "", r) for r in refusals}
    pieces: list[str] = []
    claims_by_passage: dict[int, list[str]] = {}
    for start, end in _sentence_spans(text):
        sentence = text[start:end]
        content = _content(sentence)
        if len(re.sub(r"\W", "", content)) < 4 or re.sub(r"\W", "", content) in refusal_keys:
            pieces.append(sentence)
            continue
        cited = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        scores = [support(content, p) for p in passages]
        ranked = sorted(range(count), key=lambda i: -scores[i])
        best = ranked[0] if ranked else None
        runner_up = scores[ranked[1]] if count > 1 else 0.0
        clear = (
            best is not None
            and scores[best] >= ADD_THRESHOLD
            and scores[best] - runner_up >= ADD_MARGIN
        )
        if not cited and clear:
            sentence = _insert_marker(sentence, f"[{best + 1}]")
            cited = [best + 1]
            changes.append(f"added [{best + 1}] to an uncited sentence")
        elif cited and clear and max(scores[n - 1] for n in cited) < WRONG_THRESHOLD:
            sentence = _insert_marker(_MARKER.sub("", sentence), f"[{best + 1}]")
            changes.append(
                f"replaced {cited} by [{best + 1}]: the cited passage does not support it"
            )
            cited = [best + 1]
        for n in cited:
            claims_by_passage.setdefault(n, []).append(content)
        pieces.append(sentence)
    text = "".join(pieces)

    order: list[int] = []
    for n in re.findall(r"\[(\d+)\]", text):
        if int(n) not in order:
            order.append(int(n))
    renumber = {old: new for new, old in enumerate(order, start=1)}
    text = re.sub(r"\[(\d+)\]", lambda m: f"[{renumber[int(m.group(1))]}]", text)
    text = re.sub(r"(\[\d+\])\1+", r"\1", text)  # "[1][1]" after repairs reads as one
    spans = {n: best_span(passages[n - 1], claims_by_passage.get(n, [])) for n in order}
    return Repaired(text, order, spans, changes)
