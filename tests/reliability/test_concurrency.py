"""Two ingestions of one knowledge base at once — the CLI's code path and the web app's (upload,
then ingest) — while a reader answers questions the whole time: both finish, every document is
present exactly once, and the reader never fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from zygote_client import MODELS, Zygote

from app._llm import BackendInfo, ResolvedBackend
from app.answer import Final, answer
from ingest._embed import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase

KB = "shared"
TOPICS = ["量化", "检索", "向量", "微调", "蒸馏", "推理", "分词", "索引", "缓存", "并行"]


def make_files(folder: Path, prefix: str, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        text = (
            f"{prefix}{i} 关于{topic}的说明\n" + f"{topic}是知识库里第 {i} 篇文档讨论的主题。" * 12
        )
        path = folder / f"{prefix}{i:02d}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def test_two_writers_and_a_reader(zygote: Zygote, tmp_path: Path, embedder: Embedder) -> None:
    home = tmp_path / "home"
    settings = Settings(_env_file=None, zhiku_home=home, zhiku_models_dir=MODELS)
    seed = make_files(tmp_path / "seed", "seed", 2)
    assert zygote.run(home, seed, kb=KB)["exit"] == 0  # the reader needs something to read
    # enough files that the writers are still at work for several answers (int8 embedding is
    # fast, and each answer takes a while on two busy cores)
    cli_files = make_files(tmp_path / "cli", "cli", 24)
    web_files = make_files(tmp_path / "web", "web", 24)

    errors: list[BaseException] = []
    answers: list[int] = []
    done = threading.Event()

    def reader() -> None:
        backend = ResolvedBackend(None, BackendInfo("none", ""))
        with KnowledgeBase.open(settings, KB) as kb:
            while not done.is_set():
                try:
                    for event in answer("量化的说明是什么？", [], kb, settings, embedder, backend):
                        if isinstance(event, Final):
                            answers.append(len(event.result.passages))
                except BaseException as exc:  # the point: nothing may escape
                    errors.append(exc)
                time.sleep(0.05)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        cli_pid = zygote.spawn(home, [tmp_path / "cli"], kb=KB, batch=4)
        web_pid = zygote.spawn(home, web_files, kb=KB, batch=4, via_uploads=True)
        outcomes = [zygote.wait(cli_pid), zygote.wait(web_pid)]
    finally:
        done.set()
        thread.join(timeout=120)
    assert [o["exit"] for o in outcomes] == [0, 0], outcomes
    assert errors == []
    assert len(answers) >= 3 and all(n > 0 for n in answers)
    with KnowledgeBase.open(settings, KB) as kb:
        assert kb.check() == []
        titles = sorted(d.title for d in kb.documents())
        expected = sorted(
            f"{p.stem[:-2]}{int(p.stem[-2:])} 关于{TOPICS[int(p.stem[-2:]) % 10]}的说明"
            for p in [*seed, *cli_files, *web_files]
        )
        assert titles == expected, "every document present exactly once"
        vector_ids = sorted(int(i) for i in kb.vector_index().ids())
        chunk_ids = sorted(c.id for d in kb.documents() for c in kb.document_chunks(d.doc_id))
        assert vector_ids == chunk_ids
