"""Answering, evidence first: retrieve → decide → generate → check.

- `retrieve` (`app.answer.retrieve`): the standalone question and the retrieved passages;
- `decide` (`app.answer.decide`): which passages the model sees, numbered, or a refusal before it
  is asked (small talk, nothing relevant, the `coverage` and `missing_names` guards);
- `generate` (`app.answer.generate`): the passages as numbered sentences; the model names the
  sentences that answer the question (none is the refusal), then writes the answer, held to a
  JSON schema;
- `check` (`app.answer.check.AnswerCheck`, with the checks of `app.answer.verify`): every answer
  sentence must be supported by a sentence it may cite, or it is dropped before the user sees
  it; an answer left with nothing supported gives its evidence sentence instead (the model's
  text kept beside it) or becomes a refusal.

The result keeps the answer and its evidence apart: `answer` is what zhiku asserts (sentences
with `[n]` markers), `evidence_quotes` the source sentences quoted word for word under it, as
data (`EvidenceQuote`), never pasted into the answer text.

`answer()` runs the steps as an iterator of events, so a UI can show the passages as soon as
retrieval is done and the answer sentence by sentence, only ever what the check let through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from app._llm import BackendInfo, LlmError, ResolvedBackend, current, resolve_backend
from app.answer.check import AnswerCheck
from app.answer.decide import decide, prompt_context, sibling_refusal
from app.answer.generate import generate, synonym_judge
from app.answer.prompt import answer_schema, build_messages, refusal_sentence
from app.answer.results import (
    AnswerResult,
    Citation,
    Event,
    Evidence,
    Final,
    Notice,
    Retrieved,
    Token,
    related_note,
)
from app.answer.retrieve import condense, retrieve
from app.answer.verify import GuardEvent
from app.answer.verify.cross_language import similarity_with
from app.answer.verify.responsive import Judge
from app.answer.verify.sibling_terms import remembering
from app.answer.verify.small_talk import small_talk_reply
from ingest import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase


def answer(
    question: str,
    history: Sequence[tuple[str, str]],
    kb: KnowledgeBase,
    settings: Settings,
    embedder: Embedder,
    backend: ResolvedBackend | None = None,
    progress: Callable[[str], None] = lambda message: None,
    shadow_guards: bool = False,
) -> Iterator[Event]:
    """Answer `question` from `kb`; `history` holds the earlier (question, answer) turns.
    `shadow_guards` (for `zhiku eval`): a guard that would refuse before the model is asked
    lets the model answer first, so what it changed can be measured; the result is the same."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if backend is None:
        try:
            backend = resolve_backend(settings, progress=progress)
        except LlmError as exc:
            yield Notice(exc.en, exc.zh)
            backend = ResolvedBackend(None, BackendInfo("none", ""))
    backend = current(backend)
    if backend.notice is not None:
        yield Notice(backend.notice.en, backend.notice.zh)
    info = backend.info

    def final(**values: object) -> Final:
        timings["total_s"] = time.perf_counter() - started
        fields: dict[str, object] = {
            "question": question,
            "standalone_question": question,
            "answer": "",
            "citations": [],
            "passages": [],
            "refused": False,
            "refusal_reason": None,
            "backend": info,
            "timings": timings,
        }
        fields.update(values)
        return Final(AnswerResult(**fields))  # type: ignore[arg-type]

    if not question.strip():
        yield final(refused=True, refusal_reason="empty_question", answer=refusal_sentence("?"))
        return

    standalone = condense(question.strip(), history, backend)
    timings["condense_s"] = time.perf_counter() - started
    retrieval = retrieve(standalone, kb, settings, embedder)
    decision = decide(retrieval, kb, settings)
    passages = list(decision.passages)
    timings["retrieval_s"] = retrieval.seconds
    yield Retrieved(standalone, passages, retrieval.seconds, info)
    base = {"standalone_question": standalone, "passages": passages}

    def refuse(reason: str, guards: Sequence[GuardEvent] = (), **more: object) -> Final:
        # small talk is answered with what zhiku is for, kept apart as its own refusal reason
        said = small_talk_reply(question) if reason == "small_talk" else refusal_sentence(question)
        said += related_note(decision.related)
        return final(
            **base,
            refused=True,
            refusal_reason=reason,
            answer=said,
            missing_names=list(decision.missing_names),
            guards=list(guards),
            related=list(decision.related),
            **more,
        )

    synonym = synonym_judge(backend.chat) if backend.chat is not None else None
    embed_words = remembering(embedder.encode_queries)
    if synonym is not None:
        decision = sibling_refusal(decision, standalone, embed_words, synonym, settings)
    guard_refusal = (
        decision.refusal_reason in {"name_not_found", "question_not_covered"}
        or (decision.refusal_reason == "small_talk" and bool(decision.context))
        or any(g.name == "sibling_terms" for g in decision.guards)
    )
    if decision.refusal_reason and not (guard_refusal and shadow_guards and backend.chat):
        yield refuse(decision.refusal_reason, decision.guards)
        return
    if backend.chat is None:
        # retrieval only: the best passages are the result, each its own source
        citations = [Citation(p.number, p, p.start, p.end, p.text) for p in decision.context]
        yield final(**base, citations=citations)
        return

    context, prompt_passages, numbered_context = prompt_context(decision, standalone, settings)
    messages = build_messages(
        standalone, numbered_context, prompt_passages, settings.guard_absent_terms
    )
    schema = answer_schema(len(numbered_context.units))
    similarity = similarity_with(embedder) if settings.guard_cross_language else None
    judge = Judge(embedder) if settings.check_responsive else None
    check = AnswerCheck(
        standalone,
        context,
        numbered_context,
        settings,
        similarity,
        judge=judge,
        synonym=synonym,
        embed=embed_words,
    )
    generation = yield from generate(
        backend.chat, messages, schema, check, settings, timings, started
    )
    reader, looping, error = generation.reader, generation.looping, generation.error
    failure = {"error_en": error.en, "error_zh": error.zh} if error else {}
    if error is not None and not check.kept:
        yield final(**base, **failure)
        return
    checked, late = check.finish(reader.evidence == [] and not reader.plain)
    if late:
        timings.setdefault("first_token_s", time.perf_counter() - started)
        yield Token(late)
    if checked.evidence_quotes and not decision.refusal_reason:
        yield Evidence(tuple(checked.evidence_quotes))
    repairs = list(checked.repairs)
    if numbered_context.withheld:
        repairs.append(f"left {numbered_context.withheld} instruction(s) of the documents out")
    if looping:
        repairs.append("stopped the answer where it began repeating itself")
    guards = list(decision.guards) + checked.guards
    if numbered_context.withheld:
        guards.append(GuardEvent("instructions", f"{numbered_context.withheld} left out"))
    fields = {
        **base,
        "answer": checked.answer,
        "citations": checked.citations,
        "refused": checked.refused,
        "refusal_reason": checked.refusal_reason,
        "model_answer": checked.model_answer,
        "repairs": repairs,
        "dropped": checked.dropped,
        "evidence": [i + 1 for i in (check.evidence or [])],
        "evidence_quotes": checked.evidence_quotes,
        "raw_answer": reader.answer,
        "related": checked.related,
        "partial": error is not None,
        **failure,
    }
    if decision.refusal_reason:  # a shadowed guard: what it changed is recorded, then it acts
        shadowed = [
            GuardEvent(g.name, g.detail, checked.answer, checked.refused) for g in decision.guards
        ]
        yield refuse(
            decision.refusal_reason,
            shadowed + guards[len(decision.guards) :],
            evidence=fields["evidence"],
            raw_answer=reader.answer,
        )
        return
    yield final(**fields, guards=guards)
