"""Checking a run's stored replies again with other settings (`bench/recheck.py`): real
retrieval over a small dataset; the replies are written here, as `zhiku eval --json` keeps
them, since the check step never asks the model."""

from __future__ import annotations

import json
from pathlib import Path

from support import CITY_DOC, GPT_DOC

from app._eval import load_dataset
from app.answer.decide import decide, prompt_context
from app.answer.retrieve import retrieve
from bench.recheck import recheck, summary
from ingest._embed import Embedder
from ingest.settings import Settings

QUESTION = "杭州地铁 2 号线有多长？"


def dataset(folder: Path) -> Path:
    folder.mkdir()
    docs = [("city", "杭州概况", CITY_DOC), ("gpt", "GPT", GPT_DOC)]
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for doc_id, title, text in docs:
            out.write(json.dumps({"id": doc_id, "title": title, "text": text}) + "\n")
    question = {
        "qid": "q1",
        "question": QUESTION,
        "answerable": True,
        "gold_ids": ["city"],
        "answer_groups": [["2 号线于 2014 年开通，全长 43.3 公里"]],
    }
    (folder / "questions.jsonl").write_text(json.dumps(question) + "\n", encoding="utf-8")
    return folder


def sentence_id(settings: Settings, embedder: Embedder, folder: Path, fragment: str) -> int:
    """The prompt id of the sentence holding `fragment`, as the model saw it."""
    from app._eval import build_eval_kb

    kb, _, _ = build_eval_kb(settings, load_dataset(folder), embedder, lambda message: None)
    try:
        decision = decide(retrieve(QUESTION, kb, settings, embedder), kb, settings)
    finally:
        kb.close()
    _, _, numbered = prompt_context(decision, QUESTION, settings)
    units = numbered.units
    return next(i + 1 for i, u in enumerate(units) if fragment in u.shown)


def test_a_setting_is_measured_on_the_stored_replies(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    folder = dataset(tmp_path / "set")
    evidence = sentence_id(settings, embedder, folder, "2 号线于 2014")
    reply = "杭州地铁二号线长 43.3 公里。"  # right, in the model's words: no gold span in it
    row = {
        "qid": "q1",
        "answer": reply + "[1]",
        "refused": False,
        "refusal_reason": None,
        "correct": False,
        "evidence": [evidence],
        "raw_answer": reply,
    }
    run = {"dataset": str(folder), "per_question": {"answers": [row]}}
    [quoted] = recheck(run, settings, embedder)
    plain = settings.model_copy(update={"quote_evidence": False})
    [unquoted] = recheck(run, plain, embedder)
    # the answer alone is scored: the quote under it does not make it right, it rescues it
    assert quoted.answer == unquoted.answer == reply + "[1]"
    assert not quoted.right and not unquoted.right
    assert quoted.evidence.replace("，", ",").startswith("2 号线于 2014 年开通,全长 43.3 公里")
    assert quoted.rescued and not unquoted.rescued and unquoted.evidence == ""
    assert quoted.claims == quoted.claims_supported == 1 and quoted.markers_valid
    figures = summary([quoted])
    assert figures["answer_accuracy"] == 0 and figures["evidence_rescue"] == 1
    assert figures["changed"] == 0 and summary([unquoted])["evidence_rescue"] == 0


def test_a_run_scored_with_its_quote_is_scored_again_on_the_answer_alone(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    """A run from before the evidence was kept apart: its answer held the quote, `correct`
    counted it; checked again, the answer alone is scored."""
    folder = dataset(tmp_path / "set")
    evidence = sentence_id(settings, embedder, folder, "2 号线于 2014")
    reply = "杭州地铁二号线长 43.3 公里。"
    row = {
        "qid": "q1",
        "answer": reply + "[1]\n\n原文：\n\n> 2 号线于 2014 年开通，全长 43.3 公里。[1]",
        "refused": False,
        "refusal_reason": None,
        "correct": True,
        "evidence": [evidence],
        "raw_answer": reply,
        "cited": {"1": "…"},
    }
    run = {"dataset": str(folder), "per_question": {"answers": [row]}}
    [again] = recheck(run, settings, embedder)
    assert not again.right and again.was_right and again.rescued
    assert summary([again])["changed"] == 1
