"""Warm-up: what the first question would otherwise pay for, done when the app or server starts.

A question after a fresh start used to wait for everything that loads on first use: the
embedding model and its ONNX query encoder, the LLM worker (the model mapped, its one-token
self-check, the KV cache of the fixed prompt prefix restored), the knowledge base's index,
jieba's dictionary and ONNX Runtime's first run. `Warmup` runs those steps in background threads
when the web app or `zhiku serve` starts, so the page draws at once (with the progress) and the
first question is as fast as the tenth. A question asked before it is finished waits only for
what is left: every step loads a shared, locked resource (the process-wide embedder cache, the
worker supervisor), so nothing loads twice.

Steps run in lanes: the LLM worker (a process of its own) starts beside the embedding model and
the first retrieval, which need each other in that order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("zhiku.warmup")

StepState = Literal["waiting", "running", "done", "failed", "skipped"]
# A question of no knowledge base in particular: it exercises the keyword tokenizer, the query
# encoder, the dense index and the chunk store like any other.
WARMUP_QUERY = "这份资料主要讲了什么?"


class Skipped(Exception):
    """A step with nothing to do here (no LLM configured, no knowledge base yet)."""


@dataclass
class WarmupStep:
    name: str
    label_zh: str
    run: Callable[[], object]
    state: StepState = "waiting"
    seconds: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label_zh": self.label_zh,
            "state": self.state,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "detail": self.detail,
        }


class Warmup:
    """Runs `lanes` of steps (each lane in order, the lanes side by side) once, in background
    threads; `snapshot()` says how far it is, for a progress display or `/v1/status`."""

    def __init__(self, lanes: Sequence[Sequence[WarmupStep]]) -> None:
        self.lanes = [list(lane) for lane in lanes]
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._running = 0

    @property
    def steps(self) -> list[WarmupStep]:
        return [step for lane in self.lanes for step in lane]

    def start(self) -> Warmup:
        """Start the threads (once; later calls do nothing)."""
        with self._lock:
            if self.started_at is not None:
                return self
            self.started_at = time.monotonic()
            lanes = [lane for lane in self.lanes if lane]
            self._running = len(lanes)
            if not lanes:
                self._finish()
            for number, lane in enumerate(lanes):
                threading.Thread(
                    target=self._run_lane, args=(lane,), name=f"zhiku-warmup-{number}", daemon=True
                ).start()
        return self

    def _run_lane(self, lane: list[WarmupStep]) -> None:
        for step in lane:
            step.state = "running"
            began = time.perf_counter()
            try:
                step.run()
            except Skipped as exc:
                step.state = "skipped"
                step.detail = str(exc)
            except Exception as exc:  # a step that fails leaves the work to the first question
                step.state = "failed"
                step.detail = f"{type(exc).__name__}: {exc}"
                log.warning("warm-up step %s failed: %s", step.name, step.detail)
            else:
                step.state = "done"
            step.seconds = time.perf_counter() - began
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._finish()

    def _finish(self) -> None:
        self.finished_at = time.monotonic()
        self._finished.set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it finished within `timeout` seconds."""
        return self._finished.wait(timeout)

    def fraction(self) -> float:
        steps = self.steps
        if not steps:
            return 1.0
        return sum(s.state in ("done", "failed", "skipped") for s in steps) / len(steps)

    def snapshot(self) -> dict[str, Any]:
        state = "running" if self.started_at is not None and not self.done else "done"
        if self.started_at is None:
            state = "not started"
        end = self.finished_at or time.monotonic()
        return {
            "state": state,
            "seconds": None if self.started_at is None else round(end - self.started_at, 3),
            "steps": [step.as_dict() for step in self.steps],
        }


def warmup_steps(
    embedder: Callable[[], Any],
    backend: Callable[[], Any] | None,
    retrieve: Callable[[], object] | None,
) -> list[list[WarmupStep]]:
    """The standard lanes: the LLM in one, the embedding model then a first retrieval in the
    other. `backend` returns a `ResolvedBackend`; one without a chat model is a skip (retrieval
    only, or a backend that could not start: its reason is shown where answers are)."""

    def start_llm() -> None:
        assert backend is not None
        resolved = backend()
        if getattr(resolved, "chat", None) is None:
            notice = getattr(resolved, "notice", None)
            raise Skipped(notice.en if notice is not None else "no LLM configured")

    lanes: list[list[WarmupStep]] = []
    if backend is not None:
        lanes.append([WarmupStep("llm", "启动大模型(加载模型、自检、恢复提示前缀缓存)", start_llm)])
    search_lane = [WarmupStep("embedder", "加载嵌入模型和 ONNX 查询编码器", embedder)]
    if retrieve is not None:
        search_lane.append(WarmupStep("retrieval", "首次检索(读取索引和分词词典)", retrieve))
    lanes.append(search_lane)
    return lanes
