"""The service under the API, MCP and CLI: answers come from `app.answer.answer()`, and the one
LLM answers one question at a time, the others queued with their position or turned away.

The LLM is `FakeOllama` (tests/app/ollama_server.py), an HTTP server speaking Ollama's
protocol: the Ollama server cannot be installed where these tests run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ollama_server import FakeOllama
from support import app_data_is_empty, build_kb, give_app_data, leftovers

from app._conversations import kb_has_conversations
from app._evalset import evalset_dir
from app._llm import resolve_backend
from app._watched import Watchers, load_bindings
from app.access import Principal
from app.answer import Final, Retrieved, Token
from app.service import Busy, DeletionIncomplete, LlmQueue, Queued, Service
from ingest._blobs import blob_engine, stored_blobs
from ingest._embed import Embedder
from ingest._originals import originals_dir
from ingest._upload import uploads_dir
from ingest.settings import Settings
from ingest.store import StoreError

pytestmark = pytest.mark.timeout(300)  # includes building the small knowledge base
QUESTION = "杭州的市花是什么？"
ME = Principal.local("test")  # the one user of a zhiku without accounts


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
        result = service.ask(ME, "default", QUESTION)
    assert not result.refused and "桂花" in result.answer
    assert result.citations[0].passage.source.endswith("city.txt")
    service.close()


def test_a_second_question_waits_its_turn_and_a_full_queue_turns_one_away(
    small_kb_settings: Settings, embedder: Embedder
) -> None:
    with FakeOllama(reply_tokens=["杭州的", "市花", "是桂花[1]。"]) as server:
        service = ollama_service(small_kb_settings, server, embedder, llm_queue_max=1)
        first = service.answer(ME, "default", QUESTION)
        assert isinstance(next(first), Retrieved)
        assert isinstance(next(first), Token)  # the first question holds the LLM
        second = service.answer(ME, "default", QUESTION)
        assert next(second) == Queued(1)
        with pytest.raises(Busy):  # one waits already: the queue is full
            service.answer(ME, "default", QUESTION)
        assert service.status(ME)["llm_queue"] == {"active": 1, "waiting": 1, "max_waiting": 1}
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


# ----- deleting: everything a knowledge base owns, in order, finished when run again -------


def kb_with_everything(settings: Settings, embedder: Embedder, name: str) -> Service:
    """Knowledge base `name` with a document from a folder (its copy kept: KEEP_ORIGINALS is
    on), an uploaded one, a conversation, a saved evaluation question and a watched folder
    followed by a real watcher; the service knows the watchers, as the web app's does."""
    assert settings.keep_originals
    build_kb(settings, embedder, {"city.txt": "杭州概况\n杭州的市花是桂花，市树是香樟。"}, name)
    service = Service(settings, embedder, watchers=Watchers())
    saved = service.save_files(
        ME, name, [("年假.md", "# 年假\n\n员工每年享有十五天带薪年假。".encode())]
    )
    assert [r.status for r in service.ingest_saved(ME, name, saved)] == ["added"]
    give_app_data(settings, name, settings.zhiku_home.parent / f"watched-{name}")
    assert service.watchers is not None
    service.watchers.ensure(settings, lambda: embedder)
    assert all(part.present() for part in service.owned(ME, name)), [
        p.en for p in service.owned(ME, name) if not p.present()
    ]
    return service


def test_deleting_a_kb_removes_everything_it_owns_and_a_new_one_starts_empty(
    store_settings: Settings, embedder: Embedder
) -> None:
    settings = store_settings
    service = kb_with_everything(settings, embedder, "项目资料")
    watchers = service.watchers
    assert watchers is not None
    (folder,) = [b.folder for b in load_bindings(settings, "项目资料")]
    watcher = watchers.get("项目资料", folder)
    assert watcher is not None and watcher.running
    build_kb(settings, embedder, {"leave.txt": "年假制度\n员工每年有十五天带薪年假。"}, "other")
    service.delete_kb(ME, "项目资料")
    assert not watcher.running and watchers.get("项目资料", folder) is None
    assert leftovers(settings, "项目资料") == []
    assert service.kb_names(ME) == ["other"]  # another knowledge base is untouched
    assert service.documents(ME, "other")
    with pytest.raises(StoreError, match="does not exist"):
        service.delete_kb(ME, "项目资料")  # nothing left to delete
    assert service.create_kb(ME, "项目资料").documents == 0
    app_data_is_empty(settings, "项目资料")
    service.close()


def test_deleting_a_kb_removes_its_originals_from_the_shared_database(
    postgres_settings: Settings, embedder: Embedder
) -> None:
    settings = postgres_settings  # ORIGINALS_STORE=auto with PostgreSQL: the database
    service = kb_with_everything(settings, embedder, "项目资料")  # its originals part present
    build_kb(settings, embedder, {"leave.txt": "年假制度\n员工每年有十五天带薪年假。"}, "other")
    engine = blob_engine(settings)
    assert len(stored_blobs(engine, "项目资料")) == 2  # the folder's file and the upload
    assert not originals_dir(settings, "项目资料").exists()  # nothing fetched on this server yet
    service.delete_kb(ME, "项目资料")
    assert stored_blobs(engine, "项目资料") == {} and len(stored_blobs(engine, "other")) == 1
    assert leftovers(settings, "项目资料") == []
    service.close()


def test_a_deletion_stopped_by_a_failing_step_is_finished_by_the_next(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = kb_with_everything(settings, embedder, "kb1")

    def refused(settings: Settings, name: str) -> None:
        raise PermissionError(13, "Permission denied", "conversations/kb1.sqlite")

    # the conversations cannot be deleted (say a file the user made read-only)
    monkeypatch.setattr("app._owned.delete_kb_conversations", refused)
    with pytest.raises(DeletionIncomplete) as stopped:
        service.delete_kb(ME, "kb1")
    assert [p.en for p in stopped.value.left] == ["conversations", "evaluation set"]
    assert "尚未删除：对话记录、评测题" in stopped.value.zh and "请再次删除" in stopped.value.zh
    assert "kb1" not in service.kb_names(ME)  # the documents went first: never half present
    assert not uploads_dir(settings, "kb1").exists()
    assert not originals_dir(settings, "kb1").exists()
    assert kb_has_conversations(settings, "kb1")
    monkeypatch.undo()
    service.delete_kb(ME, "kb1")  # the same call finishes it
    assert leftovers(settings, "kb1") == []

    # stopped at the store (a writer holds it): the documents stay, nothing after them goes
    service = kb_with_everything(settings, embedder, "kb2")

    def busy(settings: Settings, name: str) -> None:
        raise StoreError("knowledge base 'kb2' is being written by another process", "正在写入")

    monkeypatch.setattr("app._owned.delete_kb", busy)
    with pytest.raises(DeletionIncomplete) as stopped:
        service.delete_kb(ME, "kb2")
    assert [p.en for p in stopped.value.done] == [
        "watched-folder bindings",
        "sources (web pages, sites, folders) and their history",
    ]
    assert "documents and index" in stopped.value.en and "正在写入" in stopped.value.zh
    assert service.documents(ME, "kb2") and kb_has_conversations(settings, "kb2")
    assert not service.finish_deletion("kb2")  # its documents are there: only a delete goes on
    monkeypatch.undo()
    service.delete_kb(ME, "kb2")
    assert leftovers(settings, "kb2") == []


def test_a_kb_created_after_an_unfinished_deletion_starts_empty(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = kb_with_everything(settings, embedder, "kb1")

    def refused(settings: Settings, name: str) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch, pytest.raises(DeletionIncomplete):
        patch.setattr("app._owned.delete_kb_evalset", refused)
        service.delete_kb(ME, "kb1")
    # the deleted one's evaluation set does not come back
    assert service.create_kb(ME, "kb1").documents == 0
    app_data_is_empty(settings, "kb1")
    assert not evalset_dir(settings, "kb1").exists()


def test_removing_a_document_removes_its_upload_and_kept_copy(
    settings: Settings, embedder: Embedder
) -> None:
    folder = build_kb(settings, embedder, {"city.txt": "杭州概况\n杭州的市花是桂花。"}, "a")
    build_kb(settings, embedder, {"city.txt": "杭州概况\n杭州的市花是桂花。"}, "b")
    service = Service(settings, embedder)
    saved = service.save_files(
        ME, "a", [("年假.md", "# 年假\n\n员工每年享有十五天带薪年假。".encode())]
    )
    service.ingest_saved(ME, "a", saved)
    copies = {kb: list(originals_dir(settings, kb).iterdir()) for kb in ("a", "b")}
    assert len(copies["a"]) == 1 and len(copies["b"]) == 1
    for doc in service.documents(ME, "a"):
        service.remove_document(ME, "a", doc.doc_id)
    assert service.documents(ME, "a") == []
    assert list(originals_dir(settings, "a").iterdir()) == []
    assert saved[0].path is not None and not saved[0].path.exists()
    assert copies["b"][0].is_file()  # the other knowledge base keeps its own copy
    assert (folder / "city.txt").is_file()  # and the user's file is never touched
    service.close()


def test_the_warm_up_starts_the_model_so_the_first_question_does_not(
    small_kb_settings: Settings,
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`zhiku serve` warms up when it starts: the embedded model's worker (here the test double
    of `tests/app/fake_worker.py`: the real model's minutes are not needed to count starts) and
    a first retrieval; the first question then uses that worker."""
    import sys

    import app._llm_llamacpp as llamacpp

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    worker = Path(__file__).with_name("fake_worker.py")
    monkeypatch.setattr(
        llamacpp.WorkerSpec, "argv", lambda self: [sys.executable, str(worker), "answer"]
    )
    settings = small_kb_settings.model_copy(
        update={"llm_backend": "llamacpp", "llamacpp_model_path": gguf}
    )
    llamacpp.stop_workers()
    try:
        service = Service(settings, embedder)
        assert service.status(ME)["warmup"] == {"state": "not started"}
        warmup = service.warm_up()
        assert service.warm_up() is warmup  # started once
        assert warmup.wait(120)
        status = service.status(ME)
        assert status["warmup"]["state"] == "done"
        steps = {s["name"]: s["state"] for s in status["warmup"]["steps"]}
        assert steps == {"llm": "done", "embedder": "done", "retrieval": "done"}
        assert status["backend"] == "llamacpp"
        chat = service.backend().chat
        assert isinstance(chat, llamacpp.WorkerChat)
        supervisor = chat.supervisor
        assert supervisor.status.state == "ready" and supervisor.status.starts == 1
        pid = supervisor.status.pid
        events = list(service.answer(ME, settings.default_kb, QUESTION))
        assert isinstance(events[-1], Final)
        assert supervisor.status.starts == 1 and supervisor.status.pid == pid
    finally:
        llamacpp.stop_workers()


def test_a_failing_warm_up_step_leaves_the_work_to_the_first_question(
    settings: Settings, embedder: Embedder
) -> None:
    service = Service(settings.model_copy(update={"llm_backend": "none"}), embedder)
    warmup = service.warm_up()
    assert warmup.wait(60)
    steps = {s["name"]: s for s in service.status(ME)["warmup"]["steps"]}
    assert steps["llm"]["state"] == "skipped"  # retrieval only: nothing to start
    assert steps["retrieval"]["state"] == "skipped"  # no knowledge base yet
    assert "does not exist" in steps["retrieval"]["detail"]
