"""The service under the API, MCP and CLI: answers come from `app._rag.answer()`, and the one
LLM answers one question at a time, the others queued with their position or turned away.

The LLM is `FakeOllama` (tests/app/ollama_server.py), an HTTP server speaking Ollama's
protocol: the Ollama server cannot be installed where these tests run."""

from __future__ import annotations

import threading

import pytest
from ollama_server import FakeOllama

from app._llm import resolve_backend
from app._rag import Final, Retrieved, Token
from app.service import Busy, LlmQueue, Queued, Service
from ingest._embed import Embedder
from ingest.settings import Settings

pytestmark = pytest.mark.timeout(300)  # includes building the small knowledge base
QUESTION = "杭州的市花是什么？"


def ollama_service(
    settings: Settings, server: FakeOllama, embedder: Embedder, **extra: object
) -> Service:
    configured = settings.model_copy(
        update={"llm_backend": "ollama", "ollama_host": server.url, **extra}
    )
    return Service(configured, embedder, resolve_backend(configured))


def test_an_answer_is_the_rag_answer_with_its_citations(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    with FakeOllama(reply_tokens=["杭州的市花是桂花[1]。"]) as server:
        service = ollama_service(small_kb_settings, server, embedder)
        result = service.ask("default", QUESTION)
    assert not result.refused and "桂花" in result.answer
    assert result.citations[0].passage.source.endswith("city.txt")
    service.close()


def test_a_second_question_waits_its_turn_and_a_full_queue_turns_one_away(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    with FakeOllama(reply_tokens=["杭州的", "市花", "是桂花[1]。"]) as server:
        service = ollama_service(small_kb_settings, server, embedder, llm_queue_max=1)
        first = service.answer("default", QUESTION)
        assert isinstance(next(first), Retrieved)
        assert isinstance(next(first), Token)  # the first question holds the LLM
        second = service.answer("default", QUESTION)
        assert next(second) == Queued(1)
        with pytest.raises(Busy):  # one waits already: the queue is full
            service.answer("default", QUESTION)
        assert service.status()["llm_queue"] == {"active": 1, "waiting": 1, "max_waiting": 1}
        first.close()  # the first client went away: its turn ends, the generation stops
        events = list(second)
        assert isinstance(events[-1], Final) and "桂花" in events[-1].result.answer
        assert service.llm_queue.active == 0 and service.llm_queue.waiting == 0
    service.close()


def test_the_queue_lets_one_through_at_a_time() -> None:
    queue = LlmQueue(max_waiting=8, timeout_s=10)
    inside = 0
    most = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal inside, most
        with queue.enter().turn():
            with lock:
                inside += 1
                most = max(most, inside)
            threading.Event().wait(0.02)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1 and queue.waiting == 0 and queue.active == 0


def test_a_place_given_up_before_its_turn_is_freed() -> None:
    queue = LlmQueue(max_waiting=1, timeout_s=10)
    holder = queue.enter()
    with holder.turn():
        waiting = queue.enter()
        assert queue.waiting == 1
        waiting.cancel()
        assert queue.waiting == 0
        queue.enter().cancel()  # there is room again
