"""The embedded LLM's own process: llama.cpp (`xllamacpp`) serving chat requests over a pipe.

The model runs here and not in the web server, `zhiku ask` or `zhiku eval`, so that whatever
kills it (an instruction the CPU lacks, a segfault in native code, the kernel's OOM killer)
ends only this process; `app/_llm_llamacpp.py` supervises it and starts a fresh one.

Protocol: JSON lines. The parent writes requests to our stdin, we write events to stdout.
- parent → worker: `{"op": "chat", "id": N, "request": {OpenAI chat request}}` and
  `{"op": "cancel", "id": N}` (stop generating the answer to N).
- worker → parent: `{"event": "ready", ...}` once the model is loaded and has generated one token
  (the start-up self-check), or `{"event": "failed", "message": ...}` when it cannot load; then per
  request `{"id": N, "event": "token", "text": ...}` ..., and finally `{"id": N, "event": "done",
  "finish_reason": ..., "timings": {llama.cpp's prompt_n, cache_n, predicted_n, ...}}` or
  `{"id": N, "event": "error", "message": ...}`.
A pipe rather than llama.cpp's HTTP server: nothing else on the machine can send it requests, and
the end of the pipe is how each side learns the other is gone (we exit at EOF on stdin).

Run as `python -m app._worker --model PATH --n-ctx N --threads T`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import sys
import threading
import time
from typing import Any

# llama.cpp's OpenMP threads spin at every barrier by default; on a 2-core machine shared with
# the web app and embedding, two spinning threads collapsed generation to a fraction of a token
# per second. PASSIVE costs nothing when idle. Read once, when libgomp loads: before the import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_out_lock = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    line = json.dumps(message, ensure_ascii=False)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app._worker")
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-ram-mib", type=int, default=512)
    return parser.parse_args(argv)


def _load(args: argparse.Namespace) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_ctx = args.n_ctx
    params.n_parallel = 1  # one answer at a time: on 2 cores a second would halve both
    params.n_batch = 512
    params.n_ubatch = 512
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    # The prompts of every question start the same (rules and worked examples): llama.cpp keeps
    # that prefix in the slot's KV cache, and recent prompts in RAM when another one evicted it.
    params.cache_prompt = True
    params.cache_ram_mib = args.cache_ram_mib
    params.warmup = False  # the self-check below is the warm-up
    params.verbosity = 0
    # xllamacpp also opens llama.cpp's HTTP listener on a loopback port; a random key keeps other
    # local users out of it. We never use it: requests come through the pipe.
    params.api_keys = [secrets.token_urlsafe(24)]
    return xllamacpp.Server(params)


def _read_requests(requests: queue.Queue[dict[str, Any]], cancelled: set[int]) -> None:
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("op") == "cancel":
            cancelled.add(int(message.get("id", -1)))
        elif message.get("op") == "chat":
            requests.put(message)
    # The parent closed the pipe or died: nobody is left to answer to.
    os._exit(0)


def _serve_one(server: Any, message: dict[str, Any], cancelled: set[int]) -> None:
    request_id = int(message.get("id", 0))
    request = dict(message.get("request") or {})
    request["stream"] = True

    finish: dict[str, Any] = {}

    def on_chunk(chunk: Any) -> bool:
        if isinstance(chunk, str):
            try:
                chunk = json.loads(chunk)
            except ValueError:
                return request_id in cancelled
        if not isinstance(chunk, dict):
            return request_id in cancelled
        if "error" in chunk:
            finish["error"] = _error_text(chunk["error"])
            return True
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                emit({"id": request_id, "event": "token", "text": text})
            if choice.get("finish_reason"):
                finish["finish_reason"] = choice["finish_reason"]
        for key in ("timings", "usage"):
            if key in chunk:
                finish[key] = chunk[key]
        return request_id in cancelled

    try:
        result = server.handle_chat_completions(request, on_chunk)
    except Exception as exc:  # a bad request must not end the worker
        finish["error"] = f"{type(exc).__name__}: {exc}"
        result = None
    cancelled.discard(request_id)
    if isinstance(result, dict) and "error" in result:
        finish["error"] = _error_text(result["error"])
    if "error" in finish:
        emit({"id": request_id, "event": "error", "message": finish["error"]})
    else:
        emit({"id": request_id, "event": "done", **finish})


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    try:
        server = _load(args)
    except Exception as exc:
        emit({"event": "failed", "message": f"{type(exc).__name__}: {exc}"})
        return 3
    loaded = time.perf_counter()
    # The self-check: one token through the whole model, so that a CPU that cannot run this
    # build fails here, at start-up, and not in the middle of somebody's first answer.
    check = server.handle_completions({"prompt": "你好", "max_tokens": 1, "temperature": 0})
    if isinstance(check, dict) and "error" in check:
        emit({"event": "failed", "message": _error_text(check["error"])})
        return 3
    import xllamacpp

    emit(
        {
            "event": "ready",
            "load_s": round(loaded - started, 3),
            "check_s": round(time.perf_counter() - loaded, 3),
            "system_info": xllamacpp.get_system_info(),
            "pid": os.getpid(),
        }
    )
    requests: queue.Queue[dict[str, Any]] = queue.Queue()
    cancelled: set[int] = set()
    threading.Thread(
        target=_read_requests, args=(requests, cancelled), name="requests", daemon=True
    ).start()
    while True:
        _serve_one(server, requests.get(), cancelled)


if __name__ == "__main__":
    sys.exit(main())
