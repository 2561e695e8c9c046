"""The warm-up runner: lanes side by side, each in order, once; a failing step is reported and
does not stop the others (the first question then does that work itself)."""

from __future__ import annotations

import threading

from app._warmup import Skipped, Warmup, WarmupStep, warmup_steps


def test_lanes_run_side_by_side_each_in_order_once() -> None:
    both_running = threading.Barrier(2, timeout=10)
    order: list[str] = []

    def step(name: str, meet: bool = False) -> WarmupStep:
        def run() -> None:
            if meet:
                both_running.wait()  # only passes when the other lane runs at the same time
            order.append(name)

        return WarmupStep(name, name, run)

    warmup = Warmup([[step("llm", meet=True)], [step("embedder", meet=True), step("search")]])
    assert warmup.snapshot()["state"] == "not started" and warmup.fraction() == 0
    assert warmup.start() is warmup.start()  # a second start does nothing
    assert warmup.wait(10)
    assert order.index("embedder") < order.index("search")
    assert sorted(order) == ["embedder", "llm", "search"]
    snapshot = warmup.snapshot()
    assert snapshot["state"] == "done" and warmup.fraction() == 1
    assert all(s["state"] == "done" and s["seconds"] >= 0 for s in snapshot["steps"])


def test_a_failed_step_is_reported_and_the_lane_goes_on() -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("no such model")

    warmup = Warmup(
        [[WarmupStep("embedder", "e", broken), WarmupStep("search", "s", lambda: ran.append("s"))]]
    ).start()
    assert warmup.wait(10)
    embedder, search = warmup.snapshot()["steps"]
    assert embedder["state"] == "failed" and "no such model" in embedder["detail"]
    assert search["state"] == "done" and ran == ["s"]


def test_a_backend_without_a_model_is_a_skip_with_its_reason() -> None:
    class Resolved:
        chat = None
        notice = type("Notice", (), {"en": "no LLM available: start Ollama"})()

    def nothing_yet() -> None:
        raise Skipped("knowledge base 'default' does not exist yet")

    lanes = warmup_steps(lambda: "embedder", lambda: Resolved(), nothing_yet)
    assert [[s.name for s in lane] for lane in lanes] == [["llm"], ["embedder", "retrieval"]]
    warmup = Warmup(lanes).start()
    assert warmup.wait(10)
    states = {s["name"]: (s["state"], s["detail"]) for s in warmup.snapshot()["steps"]}
    assert states["llm"] == ("skipped", "no LLM available: start Ollama")
    assert states["embedder"] == ("done", "")
    assert states["retrieval"][0] == "skipped"
    assert [s.name for lane in warmup_steps(lambda: 1, None, None) for s in lane] == ["embedder"]
