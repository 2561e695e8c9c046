"""End to end with the embedded LLM, for real: default documents in, seed_dev questions asked
through `answer()` with the bundled Qwen2.5-Coder-1.5B in its llama.cpp worker, verified
citations out.

Slow by nature (prompt processing runs at ~20 tokens/s on two cores), so it asks two questions."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from support import REPO, SHARED, make_settings

from app._eval import answer_correct, load_dataset
from app._llm import resolve_backend
from app.answer import AnswerResult, Final, Token, answer
from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest.store import KnowledgeBase

QUESTIONS = ("d12", "d13")  # from ../shared/eval/seed_dev; their documents are 002 and 004
DOCUMENTS = ("002_4b290eeb383b72e8.txt", "004_68a3e9db62489fbe.txt")

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="the embedded LLM is not installed"
)
def test_the_embedded_model_answers_seed_questions_with_valid_citations(
    tmp_path: Path, embedder: Embedder
) -> None:
    if not (SHARED / "eval" / "seed_dev").is_dir():
        pytest.skip("../shared/eval is not present (it only exists on the development machines)")
    settings = make_settings(tmp_path / "home", llm_backend="llamacpp", llm_temperature=0.0)
    paths = [REPO / "knowledge" / name for name in DOCUMENTS]
    assert ingest_paths(settings, paths, embedder=embedder).exit_code == 0
    questions = {q.qid: q for q in load_dataset(SHARED / "eval" / "seed_dev").questions}
    backend = resolve_backend(settings)
    assert backend.info.kind == "llamacpp"
    with KnowledgeBase.open(settings) as kb:
        for qid in QUESTIONS:
            question = questions[qid]
            events = list(answer(question.question, [], kb, settings, embedder, backend))
            result = events[-1].result
            assert isinstance(events[-1], Final)
            streamed = "".join(e.text for e in events if isinstance(e, Token))
            detail = json.dumps({"q": question.question, "streamed": streamed}, ensure_ascii=False)
            # what streams is what stays: the checked sentences, never replaced afterwards
            assert streamed and re.sub(r"\[\d+\]", "", streamed) == re.sub(
                r"\[\d+\]", "", result.answer
            ), detail
            assert not result.refused, detail
            assert answer_correct(question, result.answer), detail
            markers = {int(n) for n in re.findall(r"\[(\d+)\]", result.answer)}
            quoted = {q.marker for q in result.evidence_quotes}  # the evidence, apart
            assert markers and markers | quoted == {c.number for c in result.citations}, detail
            assert all(q.text not in result.answer for q in result.evidence_quotes), detail
            gold = question.gold_ids[0]  # seed_dev names documents by their file name
            assert any(c.passage.source.endswith(gold) for c in result.citations), detail
            for citation in result.citations:
                page = kb.page_text(citation.passage.doc_id, citation.passage.page_seq)
                span = page[citation.span_start : citation.span_end] if page else None
                assert span == citation.quote


# written for this test: a notice nobody tuned on
LIBRARY = """市图书馆开放时间调整通知
自 2025 年 9 月 1 日起，市图书馆周二至周日 9:00-21:00 开放，周一闭馆。
成人借书证押金为 100 元，每证最多可借 10 册图书，借期 30 天。
"""


@pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="the embedded LLM is not installed"
)
def test_a_sibling_of_what_the_notice_says_is_refused_and_other_words_are_answered(
    tmp_path: Path, embedder: Embedder
) -> None:
    """The model itself judges synonym or sibling (`sibling_terms`): 儿童 is not 成人, so the
    child card's deposit is refused with the adult card's sentence as related; 星期一 is 周一,
    so that question reaches the answer."""
    settings = make_settings(
        tmp_path / "home", llm_backend="llamacpp", llm_temperature=0.0, guard_sibling_terms=True
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "library.txt").write_text(LIBRARY, encoding="utf-8")
    assert ingest_paths(settings, [folder], embedder=embedder).exit_code == 0
    backend = resolve_backend(settings)
    with KnowledgeBase.open(settings) as kb:

        def ask(question: str) -> AnswerResult:
            events = list(answer(question, [], kb, settings, embedder, backend))
            assert isinstance(events[-1], Final)
            return events[-1].result

        child = ask("儿童借书证的押金是多少？")
        assert child.refused and child.refusal_reason == "not_answered", child.answer
        assert [g.name for g in child.guards] == ["sibling_terms"]
        [related] = child.related  # the text as ingested (NFKC: "，" became ",")
        assert related.quote.startswith("成人借书证押金为 100 元")
        adult = ask("成人借书证的押金是多少钱？")
        assert not adult.refused and "100" in adult.answer, adult.answer
        monday = ask("市图书馆星期一开放吗？")
        assert "sibling_terms" not in [g.name for g in monday.guards], monday.answer
