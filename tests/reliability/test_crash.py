"""Crash safety: real ingestion processes SIGKILLed at random moments, over and over.

Each process runs the real `ingest_paths` (forked from `zygote.py`, which has loaded the model)
and dies at a random delay after a chosen event: right after start (loading files), after a
file was chunked (embedding), after a batch was embedded (committing), after a commit (the next
commit or the FAISS write). After every kill the knowledge base must open, pass `zhiku kb check`,
and hold each document either whole in its old version, whole in its new version, or not at
all. Between rounds files are edited, added and deleted, so updates and pruning are killed too.
"""

from __future__ import annotations

import random
from pathlib import Path

from typer.testing import CliRunner
from zygote_client import KB, MODELS, Zygote

from app.cli import cli
from ingest._chunk import chunk_document
from ingest._load import load_file
from ingest.settings import Settings, get_settings
from ingest.store import KnowledgeBase

TRIGGERS = ["start", "chunks_planned", "chunks_embedded", "file_done"]

SENTENCES = [
    "大模型的训练分为预训练和微调两个阶段。",
    "向量检索把文本映射为稠密向量，再按余弦相似度查找。",
    "关键词检索依赖倒排索引和 BM25 打分。",
    "知识库需要在崩溃后保持一致，不能丢失已提交的数据。",
    "写入采用事务，提交之前的修改在崩溃后会被回滚。",
    "引用必须指向给模型看过的段落。",
]


def write_corpus(folder: Path, rng: random.Random, names: list[str]) -> None:
    for name in names:
        body = "".join(rng.choice(SENTENCES) for _ in range(rng.randint(6, 30)))
        (folder / name).write_text(f"{name} 的标题\n{body}\n", encoding="utf-8")


def expected_chunks(path: Path, settings: Settings) -> list[str]:
    [doc] = load_file(path, 10**8).docs
    return [c.text for c in chunk_document(doc, settings.chunk_size, settings.chunk_overlap)]


def check_consistent(home: Path, versions: dict[str, list[list[str]]]) -> None:
    get_settings.cache_clear()  # the CLI reads ZHIKU_HOME through a cached Settings
    result = CliRunner().invoke(cli, ["kb", "check", "--kb", KB], env={"ZHIKU_HOME": str(home)})
    assert result.exit_code == 0, result.output
    settings = Settings(_env_file=None, zhiku_home=home, zhiku_models_dir=MODELS)
    with KnowledgeBase.open(settings, KB) as kb:
        assert kb.check() == []
        sources = [d.source for d in kb.documents()]
        assert len(sources) == len(set(sources)), "a document is stored twice"
        for doc in kb.documents():
            stored = [c.text for c in kb.document_chunks(doc.doc_id)]
            assert stored in versions[doc.source], f"{doc.source} is half present"


def test_killed_ingestions_leave_a_consistent_store(zygote: Zygote, tmp_path: Path) -> None:
    rng = random.Random(20261122)
    home, corpus = tmp_path / "home", tmp_path / "corpus"
    corpus.mkdir()
    settings = Settings(_env_file=None, zhiku_home=home, zhiku_models_dir=MODELS)
    names = [f"doc{i:02d}.txt" for i in range(8)]
    write_corpus(corpus, rng, names)
    versions: dict[str, list[list[str]]] = {}

    def remember() -> None:
        for path in corpus.iterdir():
            versions.setdefault(str(path.resolve()), []).append(expected_chunks(path, settings))

    remember()
    kills, attempts, rounds = 0, 0, 0
    while kills < 20:
        attempts += 1
        trigger = TRIGGERS[attempts % len(TRIGGERS)]
        outcome = zygote.run(
            home,
            [corpus],
            trigger=trigger,
            trigger_index=rng.randint(1, 3),
            delay_ms=rng.uniform(0, 400 if trigger == "start" else 150),
        )
        if outcome["killed"]:
            kills += 1
            check_consistent(home, versions)
            continue
        assert outcome["exit"] == 0, outcome
        check_consistent(home, versions)
        # the run finished before its kill: change the corpus so the next run has work to do
        rounds += 1
        edited = rng.sample(sorted(p.name for p in corpus.iterdir()), 2)
        write_corpus(corpus, rng, [*edited, f"new{rounds:02d}.txt"])
        (corpus / sorted(p.name for p in corpus.iterdir())[0]).unlink()
        remember()
        assert attempts < 200, "kills never landed"
    final = zygote.run(home, [corpus])
    assert final == {**final, "killed": False, "exit": 0}
    check_consistent(home, versions)
    with KnowledgeBase.open(settings, KB) as kb:
        current = {str(p.resolve()): expected_chunks(p, settings) for p in corpus.iterdir()}
        for source, chunks in current.items():
            [doc] = [d for d in kb.documents() if d.source == source]
            assert [c.text for c in kb.document_chunks(doc.doc_id)] == chunks
    assert rounds >= 1, "no round of edits was exercised"
