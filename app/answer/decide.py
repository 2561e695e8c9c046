"""Decide: which retrieved passages the model sees, or a refusal before it is asked (small
talk, nothing relevant, or the `coverage` and `missing_names` guards, and `sibling_terms`,
which asks the model a yes/no question of its own); and what the model reads of the passages
it sees (`prompt_context`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.answer.passages import Passage, fit_context, numbered
from app.answer.prompt import NumberedContext, PromptPassage, number_sentences
from app.answer.results import Citation
from app.answer.retrieve import Retrieval, close_to_best, relevance_floor
from app.answer.verify import GuardEvent
from app.answer.verify.coverage import coverage
from app.answer.verify.missing_names import missing_names
from app.answer.verify.sibling_terms import Embed, Synonym, sentence_with, sibling_term
from app.answer.verify.small_talk import is_small_talk
from ingest.settings import Settings
from ingest.store import KnowledgeBase


@dataclass(frozen=True)
class Decision:
    passages: tuple[Passage, ...]  # numbered: those in the prompt first, then the others
    context: tuple[Passage, ...]  # the prompt's passages (their first len(context))
    refusal_reason: str | None  # a refusal before the model is asked
    missing_names: tuple[str, ...] = ()
    guards: tuple[GuardEvent, ...] = ()
    related: tuple[Citation, ...] = ()  # what the documents do say, shown apart from a refusal


def labelled(passage: Passage) -> str:
    """A passage with its title and headings: what it is about ("年卡会员价格" under
    "健身会员说明")."""
    return "\n".join((passage.title, *passage.headings, passage.text))


def decide(retrieval: Retrieval, kb: KnowledgeBase | None, settings: Settings) -> Decision:
    question = retrieval.standalone
    passages = retrieval.passages
    relevant = [p for p in passages if p.dense >= relevance_floor(question, p.text, settings)]
    context = close_to_best(relevant, settings.context_score_ratio)[: settings.context_passages]
    ordered = numbered([*context, *(p for p in passages if p not in context)])
    context = ordered[: len(context)]
    if settings.guard_small_talk and is_small_talk(question, [p.text for p in passages]):
        event = GuardEvent("small_talk", question)
        return Decision(tuple(ordered), tuple(context), "small_talk", (), (event,))
    if not context:
        return Decision(tuple(ordered), (), "no_relevant_passage")
    if settings.guard_coverage:
        share = coverage(question, [labelled(p) for p in context])
        if share is not None and share < settings.question_coverage:
            event = GuardEvent("coverage", f"{share:.2f}")
            return Decision(tuple(ordered), tuple(context), "question_not_covered", (), (event,))
    if settings.guard_missing_names:
        missing = missing_names(question, [p.text for p in ordered], kb)
        if missing:
            event = GuardEvent("missing_names", "、".join(missing))
            return Decision(
                tuple(ordered), tuple(context), "name_not_found", tuple(missing), (event,)
            )
    return Decision(tuple(ordered), tuple(context), None)


def sibling_refusal(
    decision: Decision,
    question: str,
    embed: Embed,
    synonym: Synonym,
    settings: Settings,
) -> Decision:
    """`decision`, or a refusal when a thing the question names is in none of its passages
    and they speak of a sibling of it instead (`verify/sibling_terms.py`): the sentence saying
    the sibling is shown as related."""
    if decision.refusal_reason or not decision.context or not settings.guard_sibling_terms:
        return decision
    texts = [labelled(p) for p in decision.context]
    found = sibling_term(question, texts, embed, synonym, settings.sibling_floor)
    if found is None:
        return decision
    related: list[Citation] = []
    where = sentence_with(
        found.instead[0], [p.text for p in decision.context], [p.title for p in decision.context]
    )
    if where is not None:
        index, lo, hi = where
        p = decision.context[index]
        related.append(Citation(1, p, p.page_offset(lo), p.page_offset(hi), p.text[lo:hi]))
    event = GuardEvent("sibling_terms", f"{found.missing} → {'、'.join(found.instead)}")
    return replace(
        decision,
        refusal_reason="not_answered",
        guards=(*decision.guards, event),
        related=tuple(related),
    )


def prompt_context(
    decision: Decision, question: str, settings: Settings
) -> tuple[list[Passage], list[PromptPassage], NumberedContext]:
    """What the model reads of the decided passages: those that fit the prompt, as prompt
    passages, and their numbered sentences (the ids its evidence names)."""
    context = fit_context(decision.context, settings.context_chars, question)
    passages = [
        PromptPassage(p.number, p.title, p.page, p.headings, p.prompt_text) for p in context
    ]
    numbered_context = number_sentences(
        passages,
        settings.guard_instructions,
        question,
        settings.prompt_near_sentences,
        settings.prompt_table_header_once,
    )
    return context, passages, numbered_context
