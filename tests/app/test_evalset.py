"""Evaluation cases from feedback (`app/_evalset.py`): kept in the state database (on SQLite and
on PostgreSQL), exported in the `zhiku eval` format (the command's own loader reads them),
replaced by question, run against the knowledge base; an earlier version's file is imported; a
case is its author's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import SMALL_CORPUS, build_kb, make_settings

from app._eval import load_dataset
from app._evalset import (
    delete_kb_evalset,
    evalset_dir,
    kb_has_evalset,
    load_cases,
    make_case,
    remove_case,
    run_cases,
    save_case,
)
from app._llm import BackendInfo, ResolvedBackend
from app.state import evalcases, open_state
from app.state.accounts import Accounts
from app.state.owners import Owner
from ingest._embed import Embedder
from ingest._store import KnowledgeBase
from ingest.settings import Settings


def test_cases_are_saved_in_the_eval_format_and_run(
    state_settings: Settings, embedder: Embedder
) -> None:
    settings = state_settings
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


def test_an_earlier_versions_file_is_imported(state_settings: Settings) -> None:
    folder = evalset_dir(state_settings, "default")
    folder.mkdir(parents=True)
    cases = [make_case("杭州的市花是什么?", "桂花", ["d1"]), make_case("足球几点?", None, [])]
    lines = [json.dumps(c.as_json(), ensure_ascii=False) for c in cases] + ["not json"]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert load_cases(state_settings, "default") == cases
    remove_case(state_settings, "default", cases[0].qid)
    assert load_cases(state_settings, "default") == cases[1:]  # not imported a second time
    assert kb_has_evalset(state_settings, "default")
    delete_kb_evalset(state_settings, "default")
    assert not kb_has_evalset(state_settings, "default") and not folder.exists()
    assert load_cases(state_settings, "default") == []


def test_servers_sharing_postgresql_share_the_cases(
    tmp_path: Path, postgres_settings: Settings, embedder: Embedder
) -> None:
    other = make_settings(tmp_path / "other", state_url=postgres_settings.state_url)
    build_kb(postgres_settings, embedder, SMALL_CORPUS, name="default")
    with KnowledgeBase.open(postgres_settings) as kb:
        save_case(postgres_settings, kb, make_case("杭州的市花是什么?", "桂花", []))
    assert [c.question for c in load_cases(other, "default")] == ["杭州的市花是什么?"]
    remove_case(other, "default", make_case("杭州的市花是什么?", "桂花", []).qid)
    assert load_cases(postgres_settings, "default") == []


def test_a_case_is_its_authors(state_settings: Settings) -> None:
    """Listed and removed only through its author (the admins' when nobody's); the same
    question keeps a case per person; a case of a qid another holds is never replaced."""
    accounts = Accounts(state_settings)
    ed, rita = (accounts.create(n, "correct horse battery", "reader").id for n in ("ed", "rita"))
    engine = open_state(state_settings)
    eds = make_case("杭州的市花是什么?", "桂花", [], author_id=ed)
    ritas = make_case("杭州的市花是什么?", "梅花", [], author_id=rita)
    nobodys = make_case("杭州的市花是什么?", "兰花", [])
    assert len({eds.qid, ritas.qid, nobodys.qid}) == 3
    for case, author in ((eds, ed), (ritas, rita), (nobodys, None)):
        evalcases.save(engine, "default", case.as_json(), author)
    assert load_cases(state_settings, "default", Owner(ed)) == [eds]
    assert load_cases(state_settings, "default", Owner(rita, ownerless=True)) == [ritas, nobodys]
    with pytest.raises(evalcases.TakenByAnother):
        evalcases.save(engine, "default", eds.as_json(), rita)
    assert not remove_case(state_settings, "default", eds.qid, Owner(rita))
    assert load_cases(state_settings, "default", Owner(ed)) == [eds]
    assert remove_case(state_settings, "default", eds.qid, Owner(ed))
    accounts.delete("rita")  # her case passes to nobody
    assert load_cases(state_settings, "default", Owner(None, ownerless=True)) == [ritas, nobodys]


pytestmark = pytest.mark.timeout(600)
