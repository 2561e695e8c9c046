"""The llama.cpp runtime alone: prompt and generation tokens/s of the bundled model on 2 threads.

Every llama.cpp runtime installed here (`app/_llm_runtimes.py`: node-llama-cpp, whose CPU library
is picked at start, and the `xllamacpp` wheel, one AVX2 build) is measured side by side in one
run, each in the supervised worker exactly as answering runs it; the figures are the worker's
timings (`prompt_n`/`prompt_ms`, `predicted_n`/`predicted_ms`). To compare another build, run
this file with a Python where `llama_cpp` (llama-cpp-python) is importable:

    OTHER_VENV/bin/python bench/runtime_bench.py --runtime llama-cpp-python --model GGUF

which prints the same figures as JSON (prompt time from the first streamed token), for the
`--merge`d report or the notes. Each figure is the median of `--repeats` runs of one fixed
Chinese prompt of about 600 tokens, evaluated from an empty cache each time, then 64 tokens
generated greedily; and of a reply that copies a sentence of the prompt, as answers do, where
node-llama-cpp's speculative decoding (`LLAMACPP_DRAFT_TOKENS`) confirms guessed tokens in
batches. node-llama-cpp runs twice: as configured by default (tokens guessed ahead, flash
attention) and with both off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PASSAGE = (
    "杭州是浙江省省会，位于中国东南沿海、京杭大运河的南端，是长江三角洲中心城市之一。"
    "西湖文化景观于 2011 年列入世界遗产名录，京杭大运河于 2014 年列入世界遗产名录。"
    "杭州的市树是香樟，市花是桂花，每年秋季满城桂花飘香。杭州地铁 1 号线于 2012 年开通，"
    "全长 53.6 公里；2 号线于 2014 年开通，全长 43.3 公里。"
)
QUESTION = "请根据资料介绍杭州的世界遗产、市树市花和地铁线路。"
COPY_QUESTION = "资料中关于杭州地铁线路的那句话原文是什么？请一字不改地照抄。"


def prompt_messages(repeat: int, run: int, question: str = QUESTION) -> list[dict[str, str]]:
    # A different first line per run, so that no run reuses another's KV cache.
    return [
        {"role": "system", "content": f"第 {run} 次测量。你是问答助手，只根据资料回答。"},
        {"role": "user", "content": "资料：\n" + PASSAGE * repeat + f"\n\n问题：{question}"},
    ]


def _worker_run(settings: Any, repeats: int) -> dict[str, Any]:
    from app._llm_llamacpp import make_llamacpp_chat, stop_workers
    from app._llm_runtimes import runtime_version
    from app.answer.prompt import as_langchain

    chat = make_llamacpp_chat(settings, temperature=0.0, max_tokens=64)
    runtime = settings.llamacpp_runtime
    started = time.perf_counter()
    chat.start()
    start_s = time.perf_counter() - started
    rows = []
    try:
        for run in range(repeats):
            reply = chat.invoke(as_langchain(prompt_messages(4, run)))
            timings = reply.response_metadata["timings"]
            copied = chat.invoke(as_langchain(prompt_messages(4, run + repeats, COPY_QUESTION)))
            copy_timings = copied.response_metadata["timings"]
            rows.append(
                {
                    "prompt_tokens": timings["prompt_n"],
                    "prompt_tps": timings["prompt_n"] / (timings["prompt_ms"] / 1000),
                    "gen_tokens": timings["predicted_n"],
                    "gen_tps": timings["predicted_n"] / (timings["predicted_ms"] / 1000),
                    "copy_tokens": copy_timings["predicted_n"],
                    "copy_tps": copy_timings["predicted_n"] / (copy_timings["predicted_ms"] / 1000),
                }
            )
        info = chat.supervisor.status.ready_info
    finally:
        stop_workers()
    variant = info.get("cpu_variant") or "AVX2 build"
    if runtime == "node-llama-cpp":
        draft, flash = settings.llamacpp_draft_tokens, settings.llamacpp_flash_attention
        variant += f"; draft {draft}, flash attention {'on' if flash else 'off'}"
    return {
        "runtime": f"{runtime} {runtime_version(runtime)} ({variant})",
        "start_s": start_s,
        # llama.cpp's own account of the CPU features its build uses
        "system_info": info.get("system_info", ""),
        **_medians(rows),
    }


def _llama_cpp_python_run(model: Path, threads: int, repeats: int) -> dict[str, Any]:
    from llama_cpp import Llama

    llama = Llama(
        model_path=str(model), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    rows = []
    for run in range(repeats):
        llama.reset()
        started = time.perf_counter()
        first = None
        count = 0
        stream = llama.create_chat_completion(
            messages=prompt_messages(4, run), stream=True, temperature=0.0, max_tokens=64
        )
        for event in stream:
            if event["choices"][0].get("delta", {}).get("content"):
                count += 1
                if first is None:
                    first = time.perf_counter()
        ended = time.perf_counter()
        prompt_tokens = llama.n_tokens - count
        assert first is not None
        rows.append(
            {
                "prompt_tokens": prompt_tokens,
                "prompt_tps": prompt_tokens / (first - started),
                "gen_tokens": count,
                "gen_tps": (count - 1) / (ended - first) if count > 1 else float("nan"),
            }
        )
    return {"runtime": "llama-cpp-python", **_medians(rows)}


def _medians(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {
        key: statistics.median(row[key] for row in rows)
        for key in (
            "prompt_tokens",
            "prompt_tps",
            "gen_tokens",
            "gen_tps",
            "copy_tokens",
            "copy_tps",
        )
        if all(key in row for row in rows)
    } | {"repeats": len(rows)}


def run(repeats: int = 3) -> dict[str, Any]:
    import tempfile

    from app._llm_runtimes import runtime_installed
    from bench._common import bench_settings, load_note

    results = []
    # Alternating runtimes round by round would be fairer to a drifting load, but each worker
    # start costs seconds; one after the other, with the load noted, and ratios read within a run.
    plain = {"llamacpp_draft_tokens": 0, "llamacpp_flash_attention": False}
    for runtime, overrides in (
        ("node-llama-cpp", {}),
        ("node-llama-cpp", plain),
        ("xllamacpp", {}),
    ):
        if not runtime_installed(runtime):
            continue
        with tempfile.TemporaryDirectory(prefix="zhiku-runtime-") as home:
            settings = bench_settings(
                Path(home),
                llm_backend="llamacpp",
                llamacpp_threads=2,
                llamacpp_runtime=runtime,
                **overrides,
            )
            results.append(_worker_run(settings, repeats))
    from ingest._cpu import cpu_signature

    return {
        **results[0],
        "others": results[1:],
        "cpu": cpu_signature(),
        "load_note": load_note(),
    }


def render(results: dict[str, Any]) -> str:
    rows = [results, *results.get("others", [])]
    from bench._common import table

    body = table(
        [
            "runtime",
            "prompt tokens",
            "prompt tokens/s",
            "generated",
            "generation tokens/s",
            "copying: generated",
            "copying: tokens/s",
            "worker start s",
        ],
        [
            [
                r["runtime"],
                r["prompt_tokens"],
                r["prompt_tps"],
                r["gen_tokens"],
                r["gen_tps"],
                r.get("copy_tokens", "n/a"),
                r.get("copy_tps", "n/a"),
                r.get("start_s", "n/a"),
            ]
            for r in rows
        ],
    )
    cpu = results.get("cpu") or {}
    return (
        f"{body}\n\nMedians of {results['repeats']} runs, 2 threads, each prompt evaluated from "
        "an empty KV cache (`bench/runtime_bench.py`). CPU: "
        f"{cpu.get('model', 'n/a')}, flags {' '.join(cpu.get('flags', []))}, AMX granted on "
        f"request: {cpu.get('amx_granted', 'n/a')}; what the first runtime's llama.cpp uses: "
        f"`{results.get('system_info', 'n/a')}`. The first row is the runtime `auto` picks, as "
        "configured by default. Copying: a reply that quotes a sentence of the prompt. "
        f"Machine load: {results.get('load_note', 'n/a')}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime", choices=["xllamacpp", "llama-cpp-python"], default="xllamacpp")
    parser.add_argument("--model", type=Path, help="GGUF (llama-cpp-python only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.runtime == "llama-cpp-python":
        if args.model is None:
            parser.error("--model is required with --runtime llama-cpp-python")
        result = _llama_cpp_python_run(args.model, args.threads, args.repeats)
    else:
        repo = Path(__file__).resolve().parents[1]
        sys.path.insert(0, str(repo))
        result = run(args.repeats)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
