"""From retrieved chunks to passages: neighbours merged, and the part of each passage that fits
the prompt budget chosen.

Prompt processing is what makes local answers slow (about 20 tokens/s for the bundled 1.5B model
on two cores, ~0.55 tokens per Chinese character), so the model sees only the best window of each
passage, while the user sees the whole passage with the supporting span highlighted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from app.answer.search import Hit
from ingest.store import KnowledgeBase
from ingest.text import TABLE_SEPARATOR, ngrams, sentence_spans, shared_weight


@dataclass(frozen=True)
class Passage:
    """A retrieved passage: one chunk, or touching chunks merged. Frozen: later steps make
    numbered or windowed copies (`dataclasses.replace`), never change it."""

    number: int
    chunk_ids: tuple[int, ...]
    doc_id: str
    title: str
    source: str
    doc_type: str
    page: int | None
    page_seq: int
    headings: tuple[str, ...]
    start: int  # text[header_len:] is page[start:end]
    end: int
    text: str  # the whole passage, as shown to the user
    score: float
    dense: float
    header_len: int = 0  # a table header repeated in front of a continued table
    window: tuple[int, int] = (0, 0)  # the part of `text` the model saw; (0, 0) means all
    window_header: tuple[int, int] = (0, 0)  # a table header shown in front of the window
    focus: tuple[int, int] = (0, 0)  # the best-scoring chunk inside `text`; (0, 0) means all
    ocr: bool = False  # read from a page image by OCR (its line boxes: KnowledgeBase.page_layout)

    @property
    def prompt_text(self) -> str:
        lo, hi = self.window if self.window != (0, 0) else (0, len(self.text))
        h_lo, h_hi = self.window_header
        header = self.text[h_lo:h_hi] + "\n" if h_hi > h_lo else ""
        return header + self.text[lo:hi]

    def text_index(self, prompt_index: int) -> int:
        """Where `prompt_text[prompt_index]` is in `text`."""
        lo, _ = self.window if self.window != (0, 0) else (0, len(self.text))
        h_lo, h_hi = self.window_header
        header = h_hi - h_lo + 1 if h_hi > h_lo else 0
        if prompt_index < header:
            return h_lo + min(prompt_index, h_hi - h_lo)
        return lo + prompt_index - header

    def page_offset(self, text_index: int) -> int:
        """Offset in the page of `text[text_index]`."""
        return self.start + max(0, text_index - self.header_len)


def build_passages(kb: KnowledgeBase, hits: Sequence[Hit], merge_neighbours: bool) -> list[Passage]:
    """Hits → passages: chunks of one page that touch or overlap become one passage, so no
    text appears twice in the prompt. Order follows the best hit of each passage."""
    groups: list[list[Hit]] = []
    for hit in hits:
        home = None
        if merge_neighbours:
            for group in groups:
                c, g = hit.chunk, group[0].chunk
                if (c.doc_id, c.page_seq) == (g.doc_id, g.page_seq) and any(
                    abs(c.ordinal - h.chunk.ordinal) <= 1 for h in group
                ):
                    home = group
                    break
        if home is None:
            groups.append([hit])
        else:
            home.append(hit)
    passages = []
    for number, group in enumerate(groups, start=1):
        group.sort(key=lambda h: h.chunk.ordinal)
        first = group[0].chunk
        # a table continued from an earlier chunk carries that table's header in front
        header_len = len(first.text) - (first.end - first.start)
        start, end, text = first.start, first.end, first.text
        focus = (0, 0)
        if len(group) > 1:
            page = kb.page_text(first.doc_id, first.page_seq) or ""
            end = max(h.chunk.end for h in group)
            text = first.text[:header_len] + page[start:end]
            best = max(group, key=lambda h: h.score).chunk
            focus = (header_len + best.start - start, header_len + best.end - start)
        passages.append(
            Passage(
                number=number,
                chunk_ids=tuple(h.chunk.id for h in group),
                doc_id=first.doc_id,
                title=first.title,
                source=first.source,
                doc_type=first.doc_type,
                page=first.page,
                page_seq=first.page_seq,
                headings=first.headings,
                start=start,
                end=end,
                text=text,
                score=max(h.score for h in group),
                dense=max(h.dense for h in group),
                header_len=header_len,
                focus=focus,
                ocr=first.kind == "ocr",
            )
        )
    return passages


def best_window(
    text: str, limit: int, question: str, within: tuple[int, int] = (0, 0)
) -> tuple[int, int]:
    """The span of at most `limit` characters inside `within` (all of `text` if empty), cut at
    line and sentence ends where possible, that best matches the question.

    Each sentence (or table row) scores the square of what it shares with the question
    (Chinese bigrams count 1, Latin and number words such as "1.5b" count 2): a sentence that
    matches several question words at once is where an answer usually is. A window scores the
    sum of its sentences; the earliest wins ties.
    """
    lo_bound, hi_bound = within if within != (0, 0) else (0, len(text))
    if hi_bound - lo_bound <= limit:
        return lo_bound, hi_bound
    inner = text[lo_bound:hi_bound]
    cuts = sorted(
        {lo_bound, hi_bound}
        | {lo_bound + end for _, end in sentence_spans(inner, keep_markers=False)}
    )
    wanted = ngrams(question)
    unit_scores = [shared_weight(wanted, text[lo:hi]) ** 2 for lo, hi in pairwise(cuts)]
    best, best_score = (lo_bound, lo_bound + limit), -1
    for i, lo in enumerate(cuts[:-1]):
        j = i + 1
        while j + 1 < len(cuts) and cuts[j + 1] - lo <= limit:
            j += 1
        hi = cuts[j] if cuts[j] - lo <= limit else lo + limit
        score = sum(unit_scores[i:j])
        if score > best_score:
            best, best_score = (lo, hi), score
    return best


def _table_header(text: str, before: int) -> tuple[int, int] | None:
    """The header rows (header and separator) of the table that `text[before]` is inside."""
    lines = text.split("\n")
    pos, header = 0, None
    for i, line in enumerate(lines):
        if pos >= before:
            return header
        if "|" not in line:
            header = None
        elif i + 1 < len(lines) and TABLE_SEPARATOR.match(lines[i + 1]):
            header = (pos, pos + len(line) + 1 + len(lines[i + 1]))
        pos += len(line) + 1
    return header


def numbered(passages: Sequence[Passage]) -> list[Passage]:
    """Copies numbered 1, 2, … in order."""
    return [replace(p, number=n) for n, p in enumerate(passages, start=1)]


def fit_context(passages: Sequence[Passage], budget: int, question: str) -> list[Passage]:
    """What the model sees of each passage within `budget` characters in all, as windowed
    copies: the first passage gets the most room, the others share the rest, and room a short
    passage leaves goes to the next one. A window inside a table keeps the table's header row
    in front."""
    if not passages:
        return []
    rest = len(passages) - 1
    shares = [1.0] if rest == 0 else [0.45] + [0.55 / rest] * rest
    spare = 0
    fitted = []
    for passage, share in zip(passages, shares, strict=True):
        limit = max(60, int(budget * share) + spare)
        lo, hi = best_window(passage.text, limit, question, passage.focus)
        header = _table_header(passage.text, lo) if lo > 0 else None
        window_header = header if header and header[1] < lo else (0, 0)
        copy = replace(passage, window=(lo, hi), window_header=window_header)
        fitted.append(copy)
        spare = max(0, limit - len(copy.prompt_text))
    return fitted
