"""Which evidence sentences are quoted word for word under an answer, so the reader checks the
answer against the source's own words: the sentences the model named as evidence and those the
answer cites, save those it shows whole or gives as an extract of their own words (a paraphrase
can change a date, a condition, the source's terms; the model often names the right sentence
and then copies its neighbour), and the sentence clearly matching the question's words.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from app.answer.results import Citation, EvidenceQuote
from app.answer.verify.off_question import matching_sentence
from app.answer.verify.reading import can_stand_as_answer, question_grams
from ingest.text import CJK, ngrams

QUOTED_SENTENCES = 3  # evidence sentences quoted after an answer, at most
# a sentence quoted as matching the question holds this share of the question's words, by this
# margin over any other sentence (tuned on cmrc2018_trial)
QUOTE_MATCH = 0.5
QUOTE_MATCH_MARGIN = 0.2


def quoted_lines(
    question: str,
    sentences: Sequence[str],
    passage_of: Sequence[int],
    quotable: Sequence[bool],
    evidence: Sequence[int],
    cited: Sequence[int],
    whole: Collection[int],
    reworded: Collection[int],
    answer: str,
    matching: bool,
) -> list[list[int]]:
    """The sentences to quote (indexes into `sentences`, each in the passage `passage_of` says),
    in order, as lines: sentences next to each other in one passage make one line.

    `quotable`: a sentence of running text (not a table row) of a passage on the question's
    topic; `evidence`: the sentences the model named; `cited`: those the answer cites, in
    marker order; `whole`: those it shows whole; `reworded`: those it cites in other words;
    `answer`: its text without markers; `matching`: also quote the sentence clearly matching
    the question (QUOTE_MATCHING_SENTENCE)."""
    wanted = question_grams(question)
    shown = ngrams(answer)
    names = {g for g in wanted if not CJK.match(g)}  # "2" of "2 号线", "GPT-4"

    def adds(unit: int) -> bool:
        if unit in whole or not quotable[unit]:
            return False
        if not can_stand_as_answer(sentences[unit]):
            return False  # a heading, a question line, a lead-in
        if unit in cited:
            return unit in reworded
        return keeps_names(unit)

    def keeps_names(unit: int) -> bool:
        # not one that lacks a number or Latin name of the question the answer has ("2" of
        # "2 号线"): the model named the wrong line, the answer found the right one
        return not (names & shown) - ngrams(sentences[unit])

    named = list(dict.fromkeys([*evidence, *cited]))  # evidence, then the rest
    units = [u for u in named if adds(u)][:QUOTED_SENTENCES]
    if matching:
        # the sentence holding clearly the most of the question's words: the model, asked
        # where an attribute of X is, often names the sentence that introduces X instead
        best = matching_sentence(question, sentences, QUOTE_MATCH, QUOTE_MATCH_MARGIN)
        if (
            best is not None
            and best not in units
            and best not in cited
            and quotable[best]
            and keeps_names(best)
        ):
            units.append(best)
    units.sort()
    lines: list[list[int]] = []
    for unit in units:
        last = lines[-1][-1] if lines else None
        if last is not None and unit == last + 1 and passage_of[unit] == passage_of[last]:
            lines[-1].append(unit)
        else:
            lines.append([unit])
    return lines


def evidence_quote(citation: Citation, text: str, group: int) -> EvidenceQuote:
    """The quote of the sentence `citation` points at, as `text`, in line `group`."""
    passage = citation.passage
    return EvidenceQuote(
        citation.number,
        text,
        passage.number,
        passage.doc_id,
        passage.title,
        passage.page,
        citation.span_start,
        citation.span_end,
        group,
    )
