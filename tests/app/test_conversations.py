"""Stored conversations (`app/_conversations.py`): a turn comes back with its citations,
passages and feedback; titles, renaming, deleting and export; and several processes writing
one conversation at once lose nothing."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from support import make_settings

from app._conversations import (
    ConversationStore,
    Feedback,
    Turn,
    export_conversation_markdown,
    export_json,
    result_from_dict,
)
from app._llm import BackendInfo
from app._passages import Passage
from app._rag import AnswerResult, Citation, EvidenceQuote


def _result(question: str = "员工每年有几天年假?") -> AnswerResult:
    passage = Passage(
        number=1,
        chunk_ids=(7, 8),
        doc_id="doc-1",
        title="员工手册",
        source="/data/员工手册.pdf",
        doc_type="pdf",
        page=2,
        page_seq=1,
        headings=("员工手册", "第二章 休假"),
        start=10,
        end=60,
        text="第二章 休假\n员工每年享有十五天带薪年假。",
        score=1.0,
        dense=0.93,
        window=(0, 20),
    )
    return AnswerResult(
        question=question,
        standalone_question=question,
        answer="员工每年享有十五天带薪年假[1]。",
        citations=[Citation(1, passage, 17, 31, "员工每年享有十五天带薪年假")],
        passages=[passage],
        refused=False,
        refusal_reason=None,
        backend=BackendInfo("ollama", "qwen2.5:3b"),
        timings={"retrieval_s": 0.1, "total_s": 1.2},
    )


def test_a_turn_comes_back_whole_after_reopening(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    store = ConversationStore(settings, "default")
    conversation = store.create()
    seq = store.append(conversation, Turn("员工每年有几天年假?", _result(), ["注意"]))
    assert seq == 0
    again = ConversationStore(settings, "default").turns(conversation)  # a new instance
    assert len(again) == 1
    turn = again[0]
    assert turn.question == "员工每年有几天年假?"
    assert turn.notices == ["注意"]
    assert turn.result == _result()  # passages, spans, quote, backend: all equal
    assert turn.result.citations[0].passage.chunk_ids == (7, 8)
    assert turn.result.backend.label_zh == "Ollama · qwen2.5:3b"


def test_the_first_question_names_it_and_rename_delete_work(tmp_path: Path) -> None:
    store = ConversationStore(make_settings(tmp_path / "home"), "default")
    first = store.create()
    store.append(first, Turn("员工每年有几天年假?" + "很长" * 20 + "的问题", _result()))
    second = store.create()
    store.append(second, Turn("报销期限?", None, error="出错了"))
    listed = store.list()
    assert [c.id for c in listed] == [second, first]  # newest first
    assert listed[1].title.startswith("员工每年有几天年假") and listed[1].title.endswith("…")
    store.rename(first, "  年假  天数 ")
    assert store.get(first).title == "年假 天数"  # type: ignore[union-attr]
    store.delete(second)
    assert [c.id for c in store.list()] == [first]
    assert store.turns(second) == []


def test_feedback_is_kept_with_its_turn(tmp_path: Path) -> None:
    store = ConversationStore(make_settings(tmp_path / "home"), "default")
    conversation = store.create()
    seq = store.append(conversation, Turn("q?", _result("q?")))
    store.set_feedback(conversation, seq, Feedback(0, "天数不对", "十五天"))
    assert store.turns(conversation)[0].feedback == Feedback(0, "天数不对", "十五天")
    store.set_feedback(conversation, seq, None)
    assert store.turns(conversation)[0].feedback is None


def test_export_as_markdown_and_json(tmp_path: Path) -> None:
    store = ConversationStore(make_settings(tmp_path / "home"), "default")
    conversation = store.create()
    store.append(conversation, Turn("员工每年有几天年假?", _result()))
    info = store.get(conversation)
    assert info is not None
    turns = store.turns(conversation)
    markdown = export_conversation_markdown(info, turns)
    assert markdown.startswith("# 员工每年有几天年假?")
    assert "[1] 《员工手册》 员工手册.pdf,第 2 页" in markdown
    assert "> 员工每年享有十五天带薪年假" in markdown
    data = json.loads(export_json(info, turns))
    assert data["format"] == "zhiku-conversation"
    assert result_from_dict(data["turns"][0]["result"]) == _result()


def _quoted_result() -> AnswerResult:
    """An answer in the model's words, with the evidence sentence quoted under it."""
    result = _result()
    result.answer = "年假一共十五天[1]。"
    passage = result.citations[0].passage
    result.evidence_quotes = [
        EvidenceQuote(1, "员工每年享有十五天带薪年假。", 1, "doc-1", "员工手册", 2, 17, 31)
    ]
    result.citations = [Citation(1, passage, 17, 31, "员工每年享有十五天带薪年假。")]
    return result


def test_the_answer_and_its_evidence_are_kept_and_exported_apart(tmp_path: Path) -> None:
    store = ConversationStore(make_settings(tmp_path / "home"), "default")
    conversation = store.create()
    store.append(conversation, Turn("员工每年有几天年假?", _quoted_result()))
    [turn] = store.turns(conversation)
    assert turn.result == _quoted_result()
    assert turn.result.answer == "年假一共十五天[1]。", "history reads the answer alone"
    info = store.get(conversation)
    assert info is not None
    markdown = export_conversation_markdown(info, [turn])
    answer_at = markdown.index("年假一共十五天[1]。")
    quote_at = markdown.index("> 员工每年享有十五天带薪年假。[1]")
    assert answer_at < markdown.index("**原文**") < quote_at < markdown.index("**来源**")
    data = json.loads(export_json(info, [turn]))["turns"][0]["result"]
    assert data["answer"] == "年假一共十五天[1]。"
    assert data["evidence_quotes"][0]["text"] == "员工每年享有十五天带薪年假。"
    assert data["evidence_quotes"][0]["marker"] == 1 and data["evidence_quotes"][0]["page"] == 2


def test_an_answer_stored_with_its_quote_inside_is_split_when_read(tmp_path: Path) -> None:
    """A turn stored before the evidence was kept apart had it appended to the answer."""
    old = _quoted_result().to_dict()
    old.pop("evidence_quotes")
    old["answer"] = "年假一共十五天[1]。\n\n原文：\n\n> 员工每年享有十五天带薪年假。[1]"
    again = result_from_dict(json.loads(json.dumps(old)))
    assert again.answer == "年假一共十五天[1]。"
    assert again.evidence_quotes == _quoted_result().evidence_quotes


def test_a_turn_stored_by_another_version_keeps_its_question(tmp_path: Path) -> None:
    import sqlite3

    store = ConversationStore(make_settings(tmp_path / "home"), "default")
    conversation = store.create()
    store.append(conversation, Turn("q?", _result("q?")))
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE turns SET result = '{\"unexpected\": 1}'")
    turn = store.turns(conversation)[0]
    assert turn.question == "q?" and turn.result is None
    assert "无法读取" in turn.error


def _append_many(home: str, conversation: str, worker: int, count: int) -> None:
    store = ConversationStore(make_settings(Path(home)), "default")
    for i in range(count):
        store.append(conversation, Turn(f"worker {worker} question {i}", _result()))


def test_concurrent_writers_never_collide(tmp_path: Path) -> None:
    """Two app processes (or two tabs) adding to one conversation at the same time."""
    home = tmp_path / "home"
    conversation = ConversationStore(make_settings(home), "default").create()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_many, args=(str(home), conversation, w, 15))
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    turns = ConversationStore(make_settings(home), "default").turns(conversation)
    assert [t.seq for t in turns] == list(range(45))
    assert len({t.question for t in turns}) == 45
