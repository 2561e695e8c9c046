"""`zhiku state migrate --to …`: a single-machine installation (its SQLite state and an earlier
version's conversation file) copied into a real PostgreSQL with counts checked, read there by the
app, and copied back; a target that already holds records is refused. The originals the viewer
opens go into PostgreSQL with it (opened there by a server that never had them) and back into
files."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
from support import REPO, answer_result, make_settings, write_legacy_conversations
from typer.testing import CliRunner

from app._conversations import ConversationStore, Feedback, Turn, conversations_path
from app._evalset import load_cases, make_case
from app.cli import cli
from app.sources import Schedule, SourceStore, SyncRecord, new_source
from app.state import engine as state_engine
from app.state import evalcases, open_state
from app.state.jobs import JobRecord, get_job, save_job
from app.state.migrate import counts
from ingest import ingest_paths, original_file, originals_dir, save_uploads, uploads_dir
from ingest._blobs import blob_engine, stored_blobs
from ingest._embed import Embedder
from ingest.settings import Settings, get_settings


@pytest.fixture
def zhiku(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(REPO / ".zhiku" / "models"))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.delenv("STATE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env is read

    def run(*args: str, state_url: str = "") -> object:
        monkeypatch.setenv("STATE_URL", state_url)
        get_settings.cache_clear()
        state_engine.forget_engines()
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield run
    get_settings.cache_clear()


def test_migrate_to_postgresql_and_back(
    tmp_path: Path, postgres_settings: Settings, zhiku: Callable[..., object]
) -> None:
    home = tmp_path / "home"
    local = make_settings(home)
    store = ConversationStore(local, "default")
    conversation = store.create()
    seq = store.append(conversation, Turn("员工每年有几天年假?", answer_result()))
    store.set_feedback(conversation, seq, Feedback(0, "不对", "十五天"))
    evalcases.save(open_state(local), "default", make_case("市花?", "桂花", []).as_json())
    save_job(open_state(local), JobRecord("j1", "upload", "default", [], owner="a", state="done"))
    write_legacy_conversations(conversations_path(local, "older"))  # never opened by this version
    sources = SourceStore(local)
    site = sources.add(new_source("default", "https://example.com/help/", crawl=True))
    sources.record(site, None, SyncRecord("2026-12-06T10:00:00+00:00", 2.0, "schedule", added=4))
    older = new_source("older", "https://example.org/", schedule=Schedule.parse(every="1d"))
    legacy = local.zhiku_home / "sources" / "older.json"  # an earlier version's, never opened
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"version": 1, "sources": [asdict(older)]}), encoding="utf-8")
    url = postgres_settings.state_url

    moved = zhiku("state", "migrate", "--to", url)
    assert moved.exit_code == 0, moved.output
    assert "counts checked" in moved.output and "messages: 3" in moved.output
    shared = make_settings(tmp_path / "elsewhere", state_url=url)  # another server
    turn = ConversationStore(shared, "default").turns(conversation)[0]
    assert turn.result == answer_result() and turn.feedback == Feedback(0, "不对", "十五天")
    assert [c.id for c in ConversationStore(shared, "older").list()] == ["old2", "old1"]
    assert [c.question for c in load_cases(shared, "default")] == ["市花?"]
    assert get_job(open_state(shared), "j1").state == "done"  # type: ignore[union-attr]
    moved_sources = SourceStore(shared)
    assert [r.added for r in moved_sources.get(site.id).history] == [4]
    assert moved_sources.list("older") == [older] and legacy.with_suffix(".json.imported").exists()

    again = zhiku("state", "migrate", "--to", url)  # into a database that has records
    assert again.exit_code == 1 and "already holds records" in again.output

    before = counts(open_state(local))
    shutil.move(home / "state.sqlite", tmp_path / "state-before.sqlite")
    back = zhiku("state", "migrate", "--to", "sqlite", state_url=url)
    assert back.exit_code == 0, back.output
    state_engine.forget_engines()
    assert counts(open_state(local)) == before
    assert ConversationStore(local, "default").turns(conversation)[0].result == answer_result()


def test_originals_go_into_postgresql_and_back_into_files(
    tmp_path: Path, postgres_settings: Settings, zhiku: Callable[..., object], embedder: Embedder
) -> None:
    local = make_settings(tmp_path / "home")
    source = tmp_path / "docs" / "年假.md"
    source.parent.mkdir()
    source.write_text("# 年假\n\n员工每年享有十五天带薪年假。", encoding="utf-8")
    upload = save_uploads(local, "default", [("病假.md", "# 病假\n\n需要医院证明。".encode())])[0]
    ingest_paths(local, [source, upload.path], "default", embedder=embedder)  # type: ignore[list-item]
    wanted = {
        str(path): path.read_bytes() for path in (source.resolve(), upload.path) if path is not None
    }
    shas = {origin: hashlib.sha256(data).hexdigest() for origin, data in wanted.items()}
    url = postgres_settings.state_url

    moved = zhiku("state", "migrate", "--to", url)
    assert moved.exit_code == 0, moved.output
    assert "originals: 2 kept in the database, 0 stay where they are, 0 not found" in moved.output
    assert set(stored_blobs(blob_engine(postgres_settings), "default")) == set(shas.values())
    shared = make_settings(tmp_path / "elsewhere", state_url=url)  # another server
    for origin, sha in shas.items():
        opened = original_file(shared, "default", origin, sha)
        assert opened is not None and opened.read_bytes() == wanted[origin]

    # back into files, on a machine that has lost its own copies meanwhile
    shutil.rmtree(originals_dir(local, "default"))
    shutil.rmtree(uploads_dir(local, "default"))
    source.unlink()
    shutil.move(local.zhiku_home / "state.sqlite", tmp_path / "state-before.sqlite")
    back = zhiku("state", "migrate", "--to", "sqlite", state_url=url)
    assert back.exit_code == 0, back.output
    assert "originals: 2 kept in files under ZHIKU_HOME" in back.output
    for origin, sha in shas.items():
        opened = original_file(local, "default", origin, sha)
        assert opened is not None and opened.parent == originals_dir(local, "default")
        assert opened.read_bytes() == wanted[origin]
