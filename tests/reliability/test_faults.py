"""Faults a user's machine will see: a full disk, a read-only data home, a damaged index file, a
damaged database. Each gives a clear message naming the file and what to do — never a
traceback — and nothing committed is lost.

Full and read-only disks are real: a small tmpfs mounted for the test (root only; the tests skip
with that reason elsewhere)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.state.engine import forget_engines
from ingest._embed import Embedder
from ingest.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
TOPICS = ["量化", "检索", "向量", "微调", "蒸馏", "推理", "分词", "索引"]


def mount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    try:
        mount(point, "size=8m")
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError):
        pytest.skip("mounting a tmpfs needs root; full and read-only disks cannot be simulated")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def zhiku(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(REPO / ".zhiku" / "models"))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.chdir(tmp_path)

    def run(*args: str, home: Path) -> object:
        monkeypatch.setenv("ZHIKU_HOME", str(home))
        get_settings.cache_clear()
        result = CliRunner().invoke(cli, list(args))
        # each command is a process of its own for a user: nothing it opened stays open (an
        # open state database would keep its disk from being remounted read-only)
        forget_engines()
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    yield run
    get_settings.cache_clear()


def make_docs(folder: Path, count: int, repeat: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        text = f"文档{i} {topic}\n" + f"第 {i} 篇文档讨论{topic}的原理、做法和常见问题。" * repeat
        (folder / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
    return folder


def flat(output: str) -> str:
    return " ".join(output.split())


def test_a_full_disk_stops_cleanly_and_the_next_run_completes(
    zhiku: object, small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    docs = make_docs(tmp_path / "docs", 30, repeat=10)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (8 * 2**20 - 700 * 2**10))  # leave ~700 KB
    result = zhiku("ingest", str(docs), home=home)
    assert result.exit_code == 1
    message = flat(result.output)
    assert "disk is full" in message
    assert "kb.sqlite" in message or ".faiss" in message
    checked = zhiku("kb", "check", home=home)
    assert checked.exit_code == 0, checked.output  # what was committed is consistent
    filler.unlink()
    again = zhiku("ingest", str(docs), home=home)
    assert again.exit_code == 0, again.output
    listing = zhiku("kb", "docs", home=home)
    assert "30 documents" in listing.output


def test_a_read_only_data_home_can_be_read_but_not_written(
    zhiku: object, small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    assert zhiku("ingest", str(make_docs(tmp_path / "docs", 3)), home=home).exit_code == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        added = zhiku("ingest", str(make_docs(tmp_path / "more", 4)), home=home)
        assert added.exit_code == 1
        message = flat(added.output)
        assert "read-only" in message and str(home) in message
        asked = zhiku("ask", "文档1 讨论什么？", "--backend", "none", home=home)
        assert asked.exit_code == 0 and "doc01.txt" in asked.output
        assert zhiku("kb", "check", home=home).exit_code == 0
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)


def test_a_damaged_index_file_is_named_and_repaired(zhiku: object, tmp_path: Path) -> None:
    home = tmp_path / "home"
    zhiku("ingest", str(make_docs(tmp_path / "docs", 3)), home=home)
    [index] = (home / "kbs" / "default").glob("vectors-*.faiss")
    index.write_bytes(b"\x00" * 64)
    asked = zhiku("ask", "文档2 讨论什么？", "--backend", "none", home=home)
    assert asked.exit_code == 0 and "doc02.txt" in asked.output  # rebuilt from the database
    checked = zhiku("kb", "check", home=home)
    assert checked.exit_code == 1
    assert index.name in flat(checked.output) and "--repair" in checked.output
    assert zhiku("kb", "check", "--repair", home=home).exit_code == 0
    assert zhiku("kb", "check", home=home).exit_code == 0


def test_a_damaged_database_is_salvaged(zhiku: object, tmp_path: Path) -> None:
    home = tmp_path / "home"
    zhiku("ingest", str(make_docs(tmp_path / "docs", 4)), home=home)
    db = home / "kbs" / "default" / "kb.sqlite"
    db.write_bytes(b"garbage!" * 4096)
    asked = zhiku("ask", "文档1 讨论什么？", home=home)
    assert asked.exit_code == 1
    message = flat(asked.output)
    assert str(db) in message and "zhiku kb check --repair" in message
    repaired = zhiku("kb", "check", "--repair", home=home)
    assert repaired.exit_code == 0, repaired.output
    assert "damaged" in flat(repaired.output) and "zhiku ingest PATH" in flat(repaired.output)
    assert list(db.parent.glob("kb.sqlite.damaged-*")), "the damaged file is kept, not deleted"
    again = zhiku("ingest", str(tmp_path / "docs"), home=home)
    assert again.exit_code == 0 and "added 4" in again.output
