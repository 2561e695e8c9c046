"""Nothing a user can replace is ever unpickled: not the knowledge base (SQLite + FAISS files),
not the models (safetensors). Checked twice: in the source, and at run time with every
unpickling entry point booby-trapped while the real code loads models and knowledge bases."""

from __future__ import annotations

import io
import pickle
import tokenize
from pathlib import Path

import pytest
from support import MODELS_DIR, REPO, build_kb, make_settings

from app.answer.search import search
from ingest._embed import Embedder, default_model_dir
from ingest.store import KnowledgeBase

UNPICKLERS = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}


def unpickling(path: Path) -> list[str]:
    """Code (not docstrings or comments) that could unpickle: those modules, `torch.load`,
    `allow_pickle=True`, LangChain's `allow_dangerous_deserialization`."""
    source = io.StringIO(path.read_text(encoding="utf-8"))
    names = [
        (token.string, token.start[0])
        for token in tokenize.generate_tokens(source.readline)
        if token.type in (tokenize.NAME, tokenize.OP)
    ]
    found = []
    for i, (name, line) in enumerate(names):
        following = "".join(n for n, _ in names[i : i + 3])
        if (
            name in UNPICKLERS
            or name == "allow_dangerous_deserialization"
            or following in ("torch.load", "allow_pickle=True")
        ):
            found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    return found


def test_the_source_never_unpickles() -> None:
    offenders = [
        hit
        for package in ("app", "ingest")
        for path in sorted((REPO / package).rglob("*.py"))
        for hit in unpickling(path)
    ]
    assert offenders == []


def test_the_source_scan_finds_unpickling() -> None:
    sample = REPO / "tests" / "reliability" / "_sample_unpickling.py"
    sample.write_text("import pickle\nx = torch.load(f)\nnp.load(p, allow_pickle=True)\n")
    try:
        found = [hit.split(": ")[1] for hit in unpickling(sample)]
    finally:
        sample.unlink()
    assert found == ["pickle", "torch", "allow_pickle"]


@pytest.fixture
def booby_trapped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def trap(name: str):
        def refuse(*args: object, **kwargs: object) -> object:
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return refuse

    monkeypatch.setattr(pickle, "load", trap("pickle.load"))
    monkeypatch.setattr(pickle, "loads", trap("pickle.loads"))
    monkeypatch.setattr(pickle, "Unpickler", trap("pickle.Unpickler"))
    import torch

    monkeypatch.setattr(torch, "load", trap("torch.load"))
    return calls


def test_models_and_knowledge_bases_load_without_unpickling(
    booby_trapped: list[str], tmp_path: Path, embedder: Embedder
) -> None:
    from sentence_transformers import SentenceTransformer

    settings = make_settings(tmp_path / "home")
    model = SentenceTransformer(str(default_model_dir(settings)), device="cpu")
    assert model.encode(["检查"]).shape[1] == embedder.spec.dimension
    build_kb(
        settings, embedder, {"a.txt": "向量索引保存在 FAISS 文件里，文档和段落保存在 SQLite 里。"}
    )
    with KnowledgeBase.open(settings, "t") as kb:  # a fresh process would read the files so
        hits = search(kb, embedder, "向量索引保存在哪里", settings)
        assert hits and "FAISS" in hits[0].chunk.text
    assert booby_trapped == []
    assert MODELS_DIR.is_dir()


def test_the_trap_works(booby_trapped: list[str]) -> None:
    with pytest.raises(AssertionError):
        pickle.loads(pickle.dumps({"x": 1}))
    with pytest.raises(AssertionError):
        pickle.load(io.BytesIO(pickle.dumps(1)))
    assert booby_trapped == ["pickle.loads", "pickle.load"]
