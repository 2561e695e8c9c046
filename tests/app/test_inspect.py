"""The retrieval inspector (`app/_inspect.py`) on real embeddings: scores and ranks for every
hit, which passages reach the prompt and why the others do not, the refusals code gives before
the model is asked, and a chunk switched off is no longer retrieved (by `answer()` either)."""

from __future__ import annotations

from pathlib import Path

from support import SMALL_CORPUS, build_kb, make_settings

from app._inspect import inspect
from app.answer import Final, answer
from ingest._embed import Embedder
from ingest._store import KnowledgeBase


def test_scores_tokens_and_the_passages_that_reach_the_prompt(
    small_kb_settings, embedder: Embedder
) -> None:
    with KnowledgeBase.open(small_kb_settings) as kb:
        result = inspect("杭州的市花是什么?", kb, embedder, small_kb_settings)
    assert "杭州" in result.tokens and "市花" in result.tokens
    assert '"市花"' in result.expression
    assert result.refusal is None
    first = result.verdicts[0]
    assert first.in_prompt and "市花是桂花" in first.passage.text
    assert first.passage.dense >= first.floor
    for hit in result.hits:
        assert -1 <= hit.dense <= 1 and 0 <= hit.score <= 1 and hit.keyword >= 0
    assert any(h.dense_rank is not None for h in result.hits)
    for verdict in result.verdicts:
        assert verdict.in_prompt == (verdict.why_not == "")
    assert len(result.in_prompt) <= small_kb_settings.context_passages


def test_a_question_off_every_document_is_refused_by_the_floor(
    small_kb_settings, embedder: Embedder
) -> None:
    with KnowledgeBase.open(small_kb_settings) as kb:
        result = inspect("明天的足球比赛几点开始?", kb, embedder, small_kb_settings)
    assert result.refusal == "no_relevant_passage"
    assert result.in_prompt == []
    assert all("低于相关度下限" in v.why_not for v in result.verdicts)


def test_a_chunk_switched_off_is_not_retrieved(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path / "home")
    build_kb(settings, embedder, SMALL_CORPUS, name="default")
    question = "杭州的市花是什么?"
    with KnowledgeBase.open(settings) as kb:
        before = inspect(question, kb, embedder, settings)
        target = before.hits[0].chunk
        assert "市花是桂花" in target.text
        kb.set_excluded(target.chunk_key, True)
        assert kb.excluded_keys() == {target.chunk_key}
        after = inspect(question, kb, embedder, settings)
        assert target.id not in {h.chunk.id for h in after.hits}
        assert after.excluded == 1
        final = [e for e in answer(question, [], kb, settings, embedder) if isinstance(e, Final)]
        assert all("市花是桂花" not in p.text for p in final[0].result.passages)
        kb.set_excluded(target.chunk_key, False)
        assert inspect(question, kb, embedder, settings).hits[0].chunk.id == target.id
