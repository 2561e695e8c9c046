"""zhiku benchmarks (`make bench`): writes bench/results.md and prints it.

Sections (choose with --only, comma-separated):
  ingest   the real ingest_paths vs a bare SentenceTransformer.encode of the same chunks;
           re-ingest of the unchanged corpus
  compare  the plain LangChain recipe next to zhiku on seed_dev and cmrc2018_trial
  scale    hybrid search(), dense and keyword parts, memory and IVF recall at --sizes chunks
           (synthetic knowledge bases cached in .zhiku/bench-cache/, built on first use)
  runtime  the llama.cpp runtime alone: prompt and generation tokens/s of the bundled model
  llm      end to end answers with the embedded LLM on seed_dev (slow: ~20-40 s an answer)
  injection  the 22 prompt-injection questions of bench/data/injection with the embedded LLM
  sweep    IVF nlist/nprobe sweep at --sweep-size (the tuning input of ingest/_vectors.py)
  passages PASSAGE_RUNTIME torch / onnx / onnx-int8 side by side: chunks/s, cosine to torch,
           recall@1/@5 on cmrc2018_trial (bench/passage_bench.py)
  ocr      OCR character error rate and pages/min, with the 32-page thesis (bench/ocr_bench.py)
  web      web sources: pages/s crawling and ingesting a generated 201-page local site, and the
           re-sync time when nothing changed (bench/web_bench.py)

Default: ingest,compare,scale,llm,injection with --llm-questions 8 (about two hours on two cores
when the 1M-chunk cache has to be built first, which alone takes over an hour).
Examples:
  .venv/bin/python bench/run.py --only ingest,scale --sizes 10000,100000
  .venv/bin/python bench/run.py --only llm --llm-questions 0      # all 24 seed_dev questions
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/run.py` puts bench/ first, not the repository
    sys.path.insert(0, str(REPO))

from bench._common import (  # noqa: E402
    CACHE_DIR,
    RESULTS_MD,
    dir_bytes,
    fmt,
    load_model,
    machine_info,
    median,
    say,
    table,
)

SECTIONS = (
    "ingest", "compare", "scale", "runtime", "llm", "injection", "sweep", "passages", "ocr", "web",
)  # fmt: skip
DEFAULT = ("ingest", "compare", "scale", "runtime", "llm", "injection")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(DEFAULT), help="sections, comma-separated")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="scale sizes (chunks)")
    parser.add_argument("--repeats", type=int, default=2, help="ingestion runs per corpus")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per scale size")
    parser.add_argument(
        "--llm-questions", type=int, default=8, help="seed_dev questions for llm (0 = all 24)"
    )
    parser.add_argument(
        "--check-max",
        type=int,
        default=100_000,
        help="run KnowledgeBase.check() when building caches up to this size",
    )
    parser.add_argument("--sweep-size", type=int, default=1_000_000)
    parser.add_argument("--nlists", default="1024,2048,4096,8192")
    parser.add_argument("--nprobes", default="8,16,24,32,48,64,96,128,192,256")
    parser.add_argument("--out", type=Path, default=RESULTS_MD)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sections of the last run (bench/results.json) in the report",
    )
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    args.size_list = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    return args


def _worker(args: list[str]) -> Any:
    """Run `bench.scale_bench` in a fresh process (clean memory figures) and read its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        subprocess.run(
            [sys.executable, "-m", "bench.scale_bench", *args, "--out", str(out)],
            cwd=REPO,
            env=env,
            check=True,
        )
        return json.loads(out.read_text(encoding="utf-8"))


def goals(results: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    ingest = results.get("ingest")
    if isinstance(ingest, dict) and "corpora" in ingest:
        for c in ingest["corpora"]:
            ratio = median(c["ratios"])
            rows.append(
                [f"ingest {c['label']}: pipeline / bare encode", "≤ 1.2", ratio, ratio <= 1.2]
            )
            speedup = median(c["pipeline_s"]) / median(c["reingest_s"])
            rows.append([f"re-ingest {c['label']}: speed-up", "≥ 50×", speedup, speedup >= 50])
    scale = results.get("scale")
    if isinstance(scale, list):
        for r in scale:
            if r["size"] != 1_000_000:
                continue
            rows.append(
                [
                    "1M hybrid search() p50 ms",
                    "< 100",
                    r["hybrid"]["p50_ms"],
                    r["hybrid"]["p50_ms"] < 100,
                ]
            )
            ratio = r["index_file_bytes"] / r["raw_vector_bytes"]
            rss_ratio = r["rss_delta_bytes"] / r["raw_vector_bytes"]
            rows.append(
                [
                    "1M index memory / raw float32 (serialized; RSS delta)",
                    "≤ 1.3",
                    f"{ratio:.3f}; {rss_ratio:.3f}",
                    max(ratio, rss_ratio) <= 1.3,
                ]
            )
            rows.append(["1M recall@10 vs exact", "≥ 0.95", r["recall@10"], r["recall@10"] >= 0.95])
    return rows


def render(
    results: dict[str, Any],
    machine: dict[str, str],
    args: argparse.Namespace,
    durations: dict[str, float],
    commands: list[str],
) -> str:
    from bench import (
        compare_bench,
        ingest_bench,
        injection,
        llm_bench,
        ocr_bench,
        passage_bench,
        runtime_bench,
        scale_bench,
        web_bench,
    )

    parts = ["# zhiku benchmarks", ""]
    parts.append(table(["machine", ""], machine.items()))
    parts.append("")
    parts.append(
        "Commands: "
        + ", then ".join(f"`.venv/bin/python {c}`" for c in commands)
        + f" — sections {', '.join(results)}; durations "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in durations.items())
        + ". Cache: `.zhiku/bench-cache/` "
        + f"({dir_bytes(CACHE_DIR) / 2**30:.1f} GiB now). Shared 2-core machine: medians and "
        "ratios measured side by side are the numbers to trust."
    )
    goal_rows = goals(results)
    if goal_rows:
        parts += ["", "## Goals", "", table(["goal", "target", "measured", "met"], goal_rows, 3)]
    renderers: dict[str, tuple[str, Callable[[Any], str]]] = {
        "ingest": ("1. Ingestion", ingest_bench.render),
        "scale": ("2. Retrieval at scale", scale_bench.render),
        "sweep": ("2b. IVF sweep", lambda r: scale_bench.render_sweep(args.sweep_size, r)),
        "compare": ("3. Side by side: plain LangChain recipe vs zhiku", compare_bench.render),
        "runtime": ("4a. The llama.cpp runtime (bundled model, 2 threads)", runtime_bench.render),
        "llm": ("4. End to end with the embedded LLM (seed_dev)", llm_bench.render),
        "injection": ("5. Prompt injection (embedded LLM)", injection.render),
        "passages": ("8. Passage embedding runtimes", passage_bench.render),
        "ocr": ("9. OCR", ocr_bench.render),
        "web": ("10. Web sources (a 201-page local site)", web_bench.render),
    }
    for key in (
        "ingest",
        "scale",
        "sweep",
        "compare",
        "runtime",
        "llm",
        "injection",
        "passages",
        "ocr",
        "web",
    ):
        if key not in results:
            continue
        title, renderer = renderers[key]
        value = results[key]
        body = (
            f"**failed**: `{value['error']}`"
            if isinstance(value, dict) and "error" in value
            else renderer(value)
        )
        parts += ["", f"## {title}", "", body]
    return "\n".join(parts) + "\n"


def keep_api_load(path: Path, report: str) -> str:
    """The API load section is written by bench/api_load.py on its own: carried over."""
    from bench.api_load import BEGIN, END

    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if BEGIN not in old or END not in old:
        return report
    block = BEGIN + old.split(BEGIN, 1)[1].split(END, 1)[0] + END
    return report.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    results: dict[str, Any] = {}
    durations: dict[str, float] = {}
    commands: list[str] = []
    # Committed beside results.md, so that a section rerun on a fresh clone keeps the others.
    raw = RESULTS_MD.with_suffix(".json")
    if args.merge and raw.is_file():
        # one slow section can be rerun alone without losing the others' figures
        previous = json.loads(raw.read_text(encoding="utf-8"))
        results.update(previous["results"])
        durations.update(previous["durations"])
        commands += previous.get("commands", [])
    command = f"bench/run.py {' '.join(sys.argv[1:] if argv is None else argv)}".strip()
    if command in commands:  # the same section rerun: its figures replace the earlier ones
        commands.remove(command)
    commands.append(command)
    keep: dict[str, tuple[Path, float]] = {}  # corpus path -> (knowledge base home, ingest s)
    embedder = None

    def model() -> Any:
        nonlocal embedder
        if embedder is None:
            embedder = load_model(say)
        return embedder

    from bench import (
        compare_bench,
        ingest_bench,
        injection,
        llm_bench,
        ocr_bench,
        passage_bench,
        runtime_bench,
        web_bench,
    )

    jobs: dict[str, Callable[[], Any]] = {
        "ingest": lambda: ingest_bench.run(model(), args.repeats, keep),
        "compare": lambda: compare_bench.run(model(), keep),
        "scale": lambda: [
            _worker(
                ["--size", str(n), "--queries", str(args.queries)]
                + ([] if n <= args.check_max else ["--no-check"])
            )
            for n in args.size_list
        ],
        "runtime": runtime_bench.run,
        "llm": lambda: llm_bench.run(model(), keep, args.llm_questions or None),
        "injection": lambda: injection.run(model()),
        "passages": lambda: passage_bench.run(model()),
        "ocr": lambda: ocr_bench.run(thesis=True),
        "web": lambda: web_bench.run(model()),
        "sweep": lambda: _worker(
            [
                "--size",
                str(args.sweep_size),
                "--sweep",
                "--nlists",
                args.nlists,
                "--nprobes",
                args.nprobes,
            ]
        ),
    }
    failed = False
    try:
        # scale first: its workers want the memory and the cores to themselves
        for key in sorted(args.sections, key=lambda s: ("scale", "sweep").count(s) == 0):
            say(f"section {key}")
            started = time.perf_counter()
            try:
                results[key] = jobs[key]()
            except Exception as exc:  # one broken section must not lose the others' numbers
                traceback.print_exc()
                results[key] = {"error": f"{type(exc).__name__}: {exc}"}
                failed = True
            durations[key] = time.perf_counter() - started
    finally:
        import shutil

        for home, _ in keep.values():
            shutil.rmtree(home, ignore_errors=True)
    report = render(results, machine, args, durations, commands)
    report = keep_api_load(args.out, report)
    args.out.write_text(report, encoding="utf-8")
    raw.write_text(
        json.dumps(
            {"machine": machine, "results": results, "durations": durations, "commands": commands},
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    print(report)
    say(f"wrote {args.out} and {raw}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["fmt", "main"]
