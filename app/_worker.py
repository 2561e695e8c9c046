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

The fixed start of every answering prompt (rules and worked examples, `--prefix FILE`) is
processed once and its KV cache saved to `--kv-cache FILE`; a later worker (after a crash, in a
new app process, for `zhiku ask`) restores it in milliseconds instead of evaluating it again, so
its first answer starts as fast as any other.

Run as `python -m app._worker --model PATH --n-ctx N --threads T [--prefix F --kv-cache F]`.
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
import urllib.request
from pathlib import Path
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
    parser.add_argument("--prefix", help="a JSON file: the messages every prompt starts with")
    parser.add_argument("--kv-cache", help="where the prefix's KV cache is kept between workers")
    return parser.parse_args(argv)


class Loaded:
    """The llama.cpp server, and what it takes to call its slot endpoints."""

    def __init__(self, server: Any, key: str) -> None:
        self.server = server
        self.key = key

    def slot_action(self, action: str, filename: str) -> dict[str, Any]:
        # Saving and restoring a slot's KV cache exist only as llama.cpp HTTP endpoints.
        request = urllib.request.Request(
            f"{self.server.listening_address}/slots/0?action={action}",
            data=json.dumps({"filename": filename}).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def _load(args: argparse.Namespace) -> Loaded:
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
    # local users out of it. Requests come through the pipe; only the slot cache uses it.
    key = secrets.token_urlsafe(24)
    params.api_keys = [key]
    if args.kv_cache:
        params.slot_save_path = str(Path(args.kv_cache).parent) + os.sep
    return Loaded(xllamacpp.Server(params), key)


def _prefix_cache(loaded: Loaded, args: argparse.Namespace) -> dict[str, Any]:
    """Have the prefix in the slot's KV cache: restored from `--kv-cache`, or evaluated once and
    saved there. A missing, stale or damaged file only costs the evaluation."""
    if not args.prefix:
        return {}
    started = time.perf_counter()
    cache = Path(args.kv_cache) if args.kv_cache else None
    if cache is not None and cache.is_file():
        try:
            restored = loaded.slot_action("restore", cache.name).get("n_restored", 0)
        except (OSError, ValueError):
            restored = 0
        if restored:
            return {"restored": True, "tokens": restored, "s": time.perf_counter() - started}
    messages = json.loads(Path(args.prefix).read_text(encoding="utf-8"))
    # Any short question after the prefix: what later prompts share with it is the prefix.
    request = {"messages": [*messages, {"role": "user", "content": "你好"}], "max_tokens": 1}
    result = loaded.server.handle_chat_completions({**request, "temperature": 0})
    tokens = int(((result or {}).get("timings") or {}).get("prompt_n", 0))
    if cache is not None:
        # Saved under a temporary name and renamed: a reader never restores a half-written file.
        temporary = f"{cache.name}.{os.getpid()}.tmp"
        try:
            loaded.slot_action("save", temporary)
            os.replace(cache.parent / temporary, cache)
        except (OSError, ValueError):
            (cache.parent / temporary).unlink(missing_ok=True)
    return {"restored": False, "tokens": tokens, "s": time.perf_counter() - started}


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


def _exit_when_orphaned() -> None:
    # Until the request reader starts (after loading), notice a parent that is already gone.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _exit_when_orphaned()
    started = time.perf_counter()
    try:
        loaded = _load(args)
    except Exception as exc:
        emit({"event": "failed", "message": f"{type(exc).__name__}: {exc}"})
        return 3
    server = loaded.server
    load_s = time.perf_counter() - started
    # The self-check: one token through the whole model, so that a CPU that cannot run this
    # build fails here, at start-up, and not in the middle of somebody's first answer.
    check = server.handle_completions({"prompt": "你好", "max_tokens": 1, "temperature": 0})
    if isinstance(check, dict) and "error" in check:
        emit({"event": "failed", "message": _error_text(check["error"])})
        return 3
    check_s = time.perf_counter() - started - load_s
    import xllamacpp

    emit(
        {
            "event": "ready",
            "load_s": round(load_s, 3),
            "check_s": round(check_s, 3),
            "prefix": _prefix_cache(loaded, args),
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
