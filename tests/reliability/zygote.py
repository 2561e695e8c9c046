"""A zygote for real ingestion processes: it imports zhiku and loads the embedding model once,
then forks one child per request, and each child runs the real `ingest_paths`.

Starting a fresh Python, importing torch and loading the model costs ~15 s here; crash tests
need dozens of ingestion processes, so they are forked from one that has paid it already.
Children run torch single-threaded: OpenMP's thread pool does not survive a fork.

Protocol: one JSON object per line on stdin, one per line on stdout.
  {"op": "spawn", "home": ..., "models": ..., "kb": ..., "paths": [...],
   "trigger": "chunks_embedded" | "file_done" | "chunks_planned" | null,
   "trigger_index": n, "delay_ms": d, "settings": {...}}
      -> {"pid": ...}; the child SIGKILLs itself d ms after the n-th `trigger` event
  {"op": "wait", "pid": ...} -> {"pid": ..., "killed": bool, "exit": code, "events": [...]}
  {"op": "quit"}
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ingest._embed import load_embedder
from ingest._insert import FileOutcome, Progress, ingest_paths
from ingest._tokenize import tokens
from ingest.settings import Settings


class _KillSwitch(Progress):
    def __init__(self, trigger: str | None, index: int, delay_ms: float, log: Path) -> None:
        self.trigger, self.index, self.delay_ms = trigger, index, delay_ms
        self.counts: dict[str, int] = {}
        self.log = log.open("a", buffering=1)

    def _event(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.log.write(f"{name} {self.counts[name]} {time.monotonic():.4f}\n")
        if name == self.trigger and self.counts[name] == self.index:
            threading.Timer(self.delay_ms / 1000, os.kill, (os.getpid(), signal.SIGKILL)).start()

    def chunks_planned(self, chunks: int) -> None:
        self._event("chunks_planned")

    def chunks_embedded(self, chunks: int) -> None:
        self._event("chunks_embedded")

    def file_done(self, outcome: FileOutcome) -> None:
        self._event("file_done")


def _child(request: dict) -> None:
    import torch

    import ingest._insert

    torch.set_num_threads(1)
    ingest._insert.BATCH_CHUNKS = int(request.get("batch", ingest._insert.BATCH_CHUNKS))
    settings = Settings(
        _env_file=None,
        zhiku_home=Path(request["home"]),
        zhiku_models_dir=Path(request["models"]),
        **request.get("settings", {}),  # e.g. the Milvus store's
    )
    log = Path(request["home"]) / f"events-{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    switch = _KillSwitch(
        request.get("trigger"), request.get("trigger_index", 1), request.get("delay_ms", 0), log
    )
    if request.get("trigger") == "start":
        threading.Timer(
            request.get("delay_ms", 0) / 1000, os.kill, (os.getpid(), signal.SIGKILL)
        ).start()
    paths = [Path(p) for p in request["paths"]]
    if request.get("via_uploads"):
        # the web app's code path: files arrive as (name, bytes) and are saved first
        from ingest._upload import save_uploads

        saved = save_uploads(settings, request["kb"], [(p.name, p.read_bytes()) for p in paths])
        paths = [s.path for s in saved if s.path is not None]
    report = ingest_paths(
        settings,
        paths,
        request["kb"],
        prune=bool(request.get("prune")),
        progress=switch,
        embedder=EMBEDDER,
    )
    os._exit(report.exit_code)


def main() -> None:
    global EMBEDDER
    models = Path(sys.argv[1])
    EMBEDDER = load_embedder(Settings(_env_file=None, zhiku_models_dir=models))
    tokens("预热分词词典")  # jieba's dictionary, loaded once before forking
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    _child(request)
                finally:
                    os._exit(70)
            print(json.dumps({"pid": pid}), flush=True)
        elif request["op"] == "wait":
            _, status = os.waitpid(request["pid"], 0)
            killed = os.WIFSIGNALED(status)
            code = os.WTERMSIG(status) if killed else os.WEXITSTATUS(status)
            print(json.dumps({"pid": request["pid"], "killed": killed, "exit": code}), flush=True)


EMBEDDER = None

if __name__ == "__main__":
    main()
