"""The first question after `zhiku serve` starts, against the next ones (issue 23: "no cold
first question").

Starts a real `zhiku serve` on 127.0.0.1 over a knowledge base of `knowledge/` (built once under
the bench cache), with the embedded model (`LLM_BACKEND=llamacpp`), asks the first `--questions`
questions of `seed_dev` one after another through `POST /v1/chat/completions` (streamed), and
reports for each the time to the first streamed word and to the end. The first question is
asked as soon as the server answers `/health`, while its warm-up may still run (what a script
started with the server sees), and once more in a second server after `/v1/status` says the
warm-up is done (what a person who opens the page after `make run` sees).

    .venv/bin/python -m bench.first_question [--questions 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._common import CACHE_DIR, EVAL_DIR, KNOWLEDGE_DIR, MODELS_DIR, REPO, load_note


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _ask(url: str, question: str) -> dict[str, float]:
    body = {
        "model": "zhiku/default",
        "stream": True,
        "messages": [{"role": "user", "content": question}],
    }
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    first = None
    with urllib.request.urlopen(request, timeout=900) as response:
        for line in response:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter() - started
    total = time.perf_counter() - started
    return {"first_words_s": first if first is not None else total, "total_s": total}


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIKU_HOME": str(home),
        "ZHIKU_MODELS_DIR": str(MODELS_DIR),
        "LLM_BACKEND": "llamacpp",
    }


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "zhiku"), "serve", "--port", str(port)],
            env=_env(home),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait(url: str, process: subprocess.Popen[bytes], warm: bool, timeout_s: float) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"zhiku serve exited with {process.returncode}")
        try:
            if not warm:
                _get(f"{url}/health")
                return time.perf_counter() - started
            if _get(f"{url}/v1/status").get("warmup", {}).get("state") == "done":
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"zhiku serve was not ready within {timeout_s:.0f} s")


def _run_server(home: Path, questions: list[str], warm: bool, log: Path) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = _serve(home, port, log)
    try:
        ready_s = _wait(url, process, warm, 1800)
        status = _get(f"{url}/v1/status")
        rows = [{"question": q, **_ask(url, q)} for q in questions]
        return {
            "waited_for": "warm-up done" if warm else "/health",
            "start_to_ready_s": time.perf_counter() - started - sum(r["total_s"] for r in rows),
            "ready_s": ready_s,
            "warmup": status.get("warmup"),
            "rows": rows,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(count: int = 5) -> dict[str, Any]:
    home = CACHE_DIR / "first-question-home"
    if not (home / "kbs" / "default").exists():
        zhiku = str(REPO / ".venv" / "bin" / "zhiku")
        subprocess.run(
            [zhiku, "ingest", str(KNOWLEDGE_DIR), "--kb", "default"],
            env=_env(home),
            check=True,
        )
    lines = (EVAL_DIR / "seed_dev" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines[:count]]
    log = CACHE_DIR / "first-question-serve.log"
    results = {"servers": [], "load_before": load_note()}
    for warm in (False, True):
        server = _run_server(home, questions, warm, log)
        first = server["rows"][0]["first_words_s"]
        later = statistics.median(r["first_words_s"] for r in server["rows"][1:])
        server["first_over_later_p50"] = first / later
        results["servers"].append(server)
    results["load_after"] = load_note()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=5)
    args = parser.parse_args(argv)
    results = run(args.questions)
    print(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
