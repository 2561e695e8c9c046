"""Evaluation cases from feedback (`app/_evalset.py`): written in the `zhiku eval` format (the
command's own loader reads them), replaced by question, and run against the knowledge base."""

from __future__ import annotations

import json
from pathlib import Path

from support import SMALL_CORPUS, build_kb, make_settings

from app._eval import load_dataset
from app._evalset import evalset_dir, load_cases, make_case, remove_case, run_cases, save_case
from app._llm import BackendInfo, ResolvedBackend
from ingest._embed import Embedder
from ingest._store import KnowledgeBase


def test_cases_are_saved_in_the_eval_format_and_run(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path / "home")
    build_kb(settings, embedder, SMALL_CORPUS, name="default")
    with KnowledgeBase.open(settings) as kb:
        city = next(d for d in kb.documents() if d.source.endswith("city.txt"))
        assert save_case(settings, kb, make_case("杭州的市花是什么?", "桂花", [city.doc_id]))
        assert save_case(settings, kb, make_case("明天的足球比赛几点开始?", None, []))
        # the same question again replaces its case
        assert not save_case(
            settings, kb, make_case("杭州的市花是什么?", "桂花", [city.doc_id], "复核")
        )
        dataset = load_dataset(evalset_dir(settings, "default"))
        assert [q.question for q in dataset.questions] == [
            "明天的足球比赛几点开始?",
            "杭州的市花是什么?",
        ]
        flower = dataset.questions[1]
        assert flower.answerable and flower.gold_ids == (city.doc_id,)
        assert flower.answer_groups == (("桂花",),)
        assert not dataset.questions[0].answerable
        corpus = [json.loads(line) for line in dataset.corpus.read_text().splitlines()]
        assert {r["id"] for r in corpus} == {d.doc_id for d in kb.documents()}
        assert load_cases(settings, "default")[1].note == "复核"

        steps: list[int] = []
        run = run_cases(
            settings,
            kb,
            embedder,
            ResolvedBackend(None, BackendInfo("none", "")),  # retrieval only: no LLM here
            lambda done, total, question: steps.append(done),
        )
        assert steps == [1, 2, 3, 4]
        assert run.retrieval["recall@1"] == 1.0
        assert run.answers is None  # no model answered
        assert run.failures() == []  # found the flower, refused the football

    remove_case(settings, "default", flower.qid)
    assert [c.question for c in load_cases(settings, "default")] == ["明天的足球比赛几点开始?"]
