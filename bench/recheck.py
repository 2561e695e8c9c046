"""Check a `zhiku eval --json` run's replies again, with other settings, without the LLM.

The model's reply (its evidence ids and answer text, kept in `--json` as `evidence` and
`raw_answer`) does not depend on the check step, so what a check setting or guard changes
(`QUOTE_EVIDENCE`, `WHOLE_QUOTES`, `GUARD_OFF_TOPIC`, …) can be measured on the replies of one
run in about a minute instead of a new run of the LLM. The figures are `zhiku eval`'s: answer
accuracy on the answer text alone, evidence rescue apart, claim support as README.md defines it:

    .venv/bin/python -m bench.recheck RUN.json [--set quote_evidence=false ...] [--changed]
        [--synonyms]

`GUARD_OTHER_THING` and `GUARD_SIBLING_TERMS` (on the passages an answer rests on) ask the model
whether two words are synonyms: with `--synonyms` the LLM is loaded for those short questions
(the replies stay the run's); without it those checks of the answer are off.
Retrieval is run again (it is fast and deterministic); a question the run refused before the
model was asked, or whose generation failed, keeps its outcome.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app._eval import (
    answer_correct,
    build_eval_kb,
    cited_from_row,
    cited_sentences,
    claim_support,
    evidence_rescues,
    evidence_text,
    load_dataset,
)
from app._llm import resolve_backend
from app.answer.check import AnswerCheck
from app.answer.cite import first_repeat
from app.answer.decide import decide, prompt_context
from app.answer.generate import synonym_judge
from app.answer.retrieve import retrieve
from app.answer.verify.cross_language import similarity_with
from app.answer.verify.responsive import Judge
from app.answer.verify.sibling_terms import remembering
from ingest._embed import Embedder, load_embedder
from ingest.settings import Settings, get_settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

# refusals decided before the model is asked, even by `zhiku eval` (which lets the model answer
# past the refusing guards, to count what they change): the run has no reply for them
BEFORE_THE_MODEL = {"empty_question", "no_relevant_passage"}


@dataclass(frozen=True)
class Rechecked:
    qid: str
    answerable: bool
    answer: str  # the answer alone
    refused: bool
    right: bool  # a correct answer to an answerable question, a refusal of an unanswerable one
    was_right: bool  # as the run scored it
    claims: int
    claims_supported: int
    evidence: str = ""  # the evidence quoted under the answer, a sentence a line
    rescued: bool = False  # the evidence holds the gold answer the answer lacks
    markers_valid: bool = True  # every marker of the answer is one of its citations
    kind: str = ""
    fired: tuple[str, ...] = ()  # the checks that fired on the rechecked reply


def recheck(
    run: dict[str, Any],
    settings: Settings,
    embedder: Embedder,
    chat: BaseChatModel | None = None,
) -> list[Rechecked]:
    rows = run["per_question"]["answers"]
    dataset = load_dataset(Path(run["dataset"]))  # by qid: a run cut short has a part of it
    questions = {q.qid: q for q in dataset.questions}
    kb, _, _ = build_eval_kb(settings, dataset, embedder, lambda message: None)
    out = []
    try:
        for row in rows:
            question = questions[row["qid"]]
            answer, refused = row["answer"], row["refused"]
            cited = cited_from_row(row)
            evidence = evidence_text(_Quote(q["text"]) for q in row.get("evidence_quotes") or [])
            checked = None
            if row["refusal_reason"] not in BEFORE_THE_MODEL and not row.get("error"):
                decision = decide(retrieve(question.question, kb, settings, embedder), kb, settings)
                context, _, numbered = prompt_context(decision, question.question, settings)
                similarity = similarity_with(embedder) if settings.guard_cross_language else None
                judge = Judge(embedder) if settings.check_responsive else None
                synonym = synonym_judge(chat) if chat is not None else None
                check = AnswerCheck(
                    question.question,
                    context,
                    numbered,
                    settings,
                    similarity,
                    judge=judge,
                    synonym=synonym,
                    embed=remembering(embedder.encode_queries) if synonym is not None else None,
                )
                evidence = list(row.get("evidence") or [])
                check.set_evidence(evidence, False)
                text = row.get("raw_answer", "")
                cut = first_repeat(text)
                for char in text if cut is None else text[:cut]:
                    check.feed(char)  # as it streamed: a sentence is checked at its full stop
                if cut is None:
                    check.flush()
                checked, _ = check.finish(evidence == [])
                answer, refused = checked.answer, checked.refused
                evidence = evidence_text(checked.evidence_quotes)
                if decision.refusal_reason:  # a guard refusing before the model, shadowed
                    answer, refused, evidence = row["answer"], True, ""
                cited = cited_sentences(checked.citations)
            if question.answerable:
                right = not refused and answer_correct(question, answer)
                was_right = bool(row["correct"])
            else:
                right, was_right = refused, bool(row["refused"])
            fired = tuple(g.name for g in checked.guards) if checked is not None else ()
            claims, supported = (
                (0, 0) if refused else claim_support(answer, cited, question.question)
            )
            markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
            out.append(
                Rechecked(
                    question.qid,
                    question.answerable,
                    answer,
                    refused,
                    right,
                    was_right,
                    claims,
                    supported,
                    evidence,
                    evidence_rescues(question, answer, refused, evidence),
                    refused or all(str(n) in cited for n in markers),
                    question.kind,
                    fired,
                )
            )
    finally:
        kb.close()
    return out


@dataclass(frozen=True)
class _Quote:
    text: str


def summary(rows: list[Rechecked]) -> dict[str, float]:
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    answered = [r for r in rows if not r.refused and r.answer]
    claims = sum(r.claims for r in rows)
    return {
        "answer_accuracy": sum(r.right for r in answerable) / max(1, len(answerable)),
        "evidence_rescue": sum(r.rescued for r in answerable) / max(1, len(answerable)),
        "refusal_accuracy": sum(r.right for r in unanswerable) / max(1, len(unanswerable)),
        "false_refusals": sum(r.refused for r in answerable) / max(1, len(answerable)),
        "citation_validity": sum(r.markers_valid for r in answered) / max(1, len(answered)),
        "claim_support": sum(r.claims_supported for r in rows) / max(1, claims),
        "changed": float(sum(r.right != r.was_right for r in rows)),
    }


def _value(text: str) -> object:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a `zhiku eval --json` file")
    parser.add_argument("--set", action="append", default=[], help="SETTING=VALUE, repeatable")
    parser.add_argument("--changed", action="store_true", help="list the questions that changed")
    parser.add_argument(
        "--synonyms", action="store_true", help="load the LLM for the synonym questions"
    )
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = get_settings().model_copy(
        update={key.lower(): _value(value) for key, value in overrides.items()}
    )
    run = json.loads(args.run.read_text(encoding="utf-8"))
    chat = resolve_backend(settings).chat if args.synonyms else None
    rows = recheck(run, settings, load_embedder(settings), chat)
    print(json.dumps({"settings": overrides, **summary(rows)}, ensure_ascii=False))
    kinds = sorted({r.kind for r in rows if r.kind})
    if kinds:
        by_kind = {
            k: f"{sum(r.right for r in rows if r.kind == k)}/{sum(r.kind == k for r in rows)}"
            for k in kinds
        }
        print(json.dumps({"right_by_kind": by_kind}, ensure_ascii=False))
    fired = [r for r in rows if "responsive" in r.fired]
    print(
        json.dumps(
            {
                "responsive_fired": len(fired),
                "on_answerable": sum(r.answerable for r in fired),
                "on_unanswerable": sum(not r.answerable for r in fired),
                "qids": [r.qid for r in fired],
            }
        )
    )
    for row in rows:
        if args.changed and row.right != row.was_right:
            verdict = "now right" if row.right else "now wrong"
            print(f"{row.qid} {verdict}: {row.answer[:160]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
