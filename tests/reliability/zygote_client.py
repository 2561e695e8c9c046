"""Talking to `zygote.py` from tests: spawn real ingestion processes and wait for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODELS = REPO / ".zhiku" / "models"
KB = "crash"


class Zygote:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(HERE / "zygote.py"), str(MODELS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert json.loads(self._read()) == {"ready": True}

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the zygote died")
        return line

    def ask(self, request: dict) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self._read())

    def spawn(self, home: Path, paths: list[Path], kb: str = KB, **options: object) -> int:
        """Start an ingestion; `options`: trigger, trigger_index, delay_ms (a self-inflicted
        SIGKILL), batch (chunks per embedding batch), prune, via_uploads, settings (overrides
        of the child's Settings, such as the Milvus store's)."""
        request = {"op": "spawn", "home": str(home), "models": str(MODELS), "kb": kb}
        request.update({"paths": [str(p) for p in paths], **options})
        return self.ask(request)["pid"]

    def wait(self, pid: int) -> dict:
        return self.ask({"op": "wait", "pid": pid})

    def run(self, home: Path, paths: list[Path], **options: object) -> dict:
        # small batches: more commits per run, so more kills land inside one
        options = {"batch": 3, "prune": True, **options}
        return self.wait(self.spawn(home, paths, **options))

    def close(self) -> None:
        if self.process.poll() is None:
            self.ask_nowait({"op": "quit"})
            self.process.wait(timeout=30)

    def ask_nowait(self, request: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
