"""Stored conversations (`app/_conversations.py` over `app/state/conversations.py`): a turn comes
back with its citations, passages and feedback; titles, renaming, deleting and export; several
processes writing one conversation at once lose nothing; the per-knowledge-base files of earlier
versions are imported; a conversation keeps its author, an owner lists and changes only theirs, a
deleted person's pass to nobody. Every test runs on SQLite and on PostgreSQL (`state_settings`)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import answer_result, make_settings, write_legacy_conversations

from app._conversations import (
    ConversationStore,
    Feedback,
    Turn,
    conversations_path,
    delete_kb_conversations,
    export_conversation_markdown,
    export_json,
    kb_has_conversations,
    result_from_dict,
)
from app.answer import AnswerResult, Citation, EvidenceQuote
from app.state import engine as state_engine
from app.state.accounts import Accounts
from app.state.conversations import NotYours
from app.state.owners import Owner
from ingest.settings import Settings


def test_a_turn_comes_back_whole_after_reopening(state_settings: Settings) -> None:
    settings = state_settings
    store = ConversationStore(settings, "default")
    conversation = store.create()
    seq = store.append(conversation, Turn("员工每年有几天年假?", answer_result(), ["注意"]))
    assert seq == 0
    state_engine.forget_engines()  # as after a restart
    again = ConversationStore(settings, "default").turns(conversation)
    assert len(again) == 1
    turn = again[0]
    assert turn.question == "员工每年有几天年假?"
    assert turn.notices == ["注意"]
    assert turn.result == answer_result()  # passages, spans, quote, backend: all equal
    assert turn.result.citations[0].passage.chunk_ids == (7, 8)
    assert turn.result.backend.label_zh == "Ollama · qwen2.5:3b"


def test_the_first_question_names_it_and_rename_delete_work(state_settings: Settings) -> None:
    store = ConversationStore(state_settings, "default")
    first = store.create()
    store.append(first, Turn("员工每年有几天年假?" + "很长" * 20 + "的问题", answer_result()))
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


def test_feedback_is_kept_with_its_turn(state_settings: Settings) -> None:
    store = ConversationStore(state_settings, "default")
    conversation = store.create()
    seq = store.append(conversation, Turn("q?", answer_result("q?")))
    store.set_feedback(conversation, seq, Feedback(0, "天数不对", "十五天"))
    assert store.turns(conversation)[0].feedback == Feedback(0, "天数不对", "十五天")
    store.set_feedback(conversation, seq, None)
    assert store.turns(conversation)[0].feedback is None


def test_a_turn_stored_when_asked_is_incomplete_until_answered(
    state_settings: Settings,
) -> None:
    """A question is kept from the moment it is asked: a restart before its answer finds it
    marked incomplete with what was streamed; the answer, when it comes, takes its place."""
    store = ConversationStore(state_settings, "default")
    conversation = store.create()
    asked = Turn("员工每年有几天年假?", incomplete=True)
    seq = store.append(conversation, asked)
    store.set_feedback(conversation, seq, Feedback(1))
    asked.partial = "员工每年享有"
    assert store.update(conversation, asked)
    state_engine.forget_engines()  # as after a restart
    store = ConversationStore(state_settings, "default")
    [cut] = store.turns(conversation)
    assert (cut.incomplete, cut.partial, cut.result) == (True, "员工每年享有", None)
    info = store.get(conversation)
    assert info is not None and info.title == "员工每年有几天年假?"
    assert "员工每年享有\n\n（回答未完成）" in export_conversation_markdown(info, [cut])
    assert json.loads(export_json(info, [cut]))["turns"][0]["incomplete"] is True

    cut.incomplete, cut.partial, cut.result = False, "", answer_result()
    assert store.update(conversation, cut)
    [done] = store.turns(conversation)
    assert (done.incomplete, done.partial, done.seq) == (False, "", seq)
    assert done.result == answer_result()
    assert done.feedback == Feedback(1)  # the answer's update leaves the verdict alone
    assert "incomplete" not in json.loads(export_json(info, [done]))["turns"][0]
    store.delete(conversation)
    assert not store.update(conversation, done)  # deleted meanwhile: nothing to update


def test_export_as_markdown_and_json(state_settings: Settings) -> None:
    store = ConversationStore(state_settings, "default")
    conversation = store.create()
    store.append(conversation, Turn("员工每年有几天年假?", answer_result()))
    info = store.get(conversation)
    assert info is not None
    turns = store.turns(conversation)
    markdown = export_conversation_markdown(info, turns)
    assert markdown.startswith("# 员工每年有几天年假?")
    assert "[1] 《员工手册》 员工手册.pdf,第 2 页" in markdown
    assert "> 员工每年享有十五天带薪年假" in markdown
    data = json.loads(export_json(info, turns))
    assert data["format"] == "zhiku-conversation"
    assert result_from_dict(data["turns"][0]["result"]) == answer_result()


def _quoted_result() -> AnswerResult:
    """An answer in the model's words, with the evidence sentence quoted under it."""
    result = answer_result()
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


def test_a_turn_stored_by_another_version_keeps_its_question(state_settings: Settings) -> None:
    store = ConversationStore(state_settings, "default")
    conversation = store.create()
    store.append(conversation, Turn("q?", answer_result("q?")))
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE messages SET result = '{\"unexpected\": 1}'"))
    turn = store.turns(conversation)[0]
    assert turn.question == "q?" and turn.result is None
    assert "无法读取" in turn.error


def test_knowledge_bases_keep_their_own_conversations(state_settings: Settings) -> None:
    one, two = ConversationStore(state_settings, "one"), ConversationStore(state_settings, "two")
    one.append("c1", Turn("一?"))
    two.append("c1", Turn("二?"))  # the same id in another knowledge base is another conversation
    assert [t.question for t in one.turns("c1")] == ["一?"]
    delete_kb_conversations(state_settings, "one")
    assert one.list() == [] and not kb_has_conversations(state_settings, "one")
    assert [t.question for t in two.turns("c1")] == ["二?"]
    assert kb_has_conversations(state_settings, "two")


def test_an_earlier_versions_file_is_imported_once_and_kept(state_settings: Settings) -> None:
    legacy = conversations_path(state_settings, "default")
    write_legacy_conversations(legacy)
    store = ConversationStore(state_settings, "default")
    assert [c.id for c in store.list()] == ["old2", "old1"]  # newest first, as before
    (turn,) = store.turns("old1")
    assert turn.result == answer_result() and turn.feedback == Feedback(0, "不对", "十五天")
    assert store.turns("old2")[0].error == "出错了"
    assert not legacy.exists() and legacy.with_name("default.sqlite.imported").is_file()
    store.append("old1", Turn("病假呢?"))  # the conversation goes on where it was
    write_legacy_conversations(legacy)  # the same file again (say restored from a backup)
    again = ConversationStore(state_settings, "default")
    assert [t.seq for t in again.turns("old1")] == [0, 1]  # nothing doubled
    delete_kb_conversations(state_settings, "default")
    assert not list(legacy.parent.iterdir())


def test_a_file_that_is_not_a_conversations_file_is_left_alone(state_settings: Settings) -> None:
    legacy = conversations_path(state_settings, "default")
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"not a database")
    store = ConversationStore(state_settings, "default")  # no crash
    assert store.list() == [] and legacy.read_bytes() == b"not a database"


def _append_many(home: str, state_url: str, conversation: str, worker: int, count: int) -> None:
    store = ConversationStore(make_settings(Path(home), state_url=state_url), "default")
    for i in range(count):
        store.append(conversation, Turn(f"worker {worker} question {i}", answer_result()))


def test_concurrent_writers_never_collide(state_settings: Settings) -> None:
    """Several app processes (or tabs) adding to one conversation at the same time."""
    home, url = state_settings.zhiku_home, state_settings.state_url
    conversation = ConversationStore(state_settings, "default").create()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_many, args=(str(home), url, conversation, w, 15))
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    turns = ConversationStore(state_settings, "default").turns(conversation)
    assert [t.seq for t in turns] == list(range(45))
    assert len({t.question for t in turns}) == 45


# ----- whose a conversation is ----------------------------------------------------------------


def _people(settings: Settings, *names: str) -> list[int]:
    accounts = Accounts(settings)
    return [accounts.create(name, "correct horse battery", "reader").id for name in names]


def test_a_conversation_keeps_its_author_and_an_owner_lists_only_theirs(
    state_settings: Settings,
) -> None:
    ed, rita = _people(state_settings, "ed", "rita")
    store = ConversationStore(state_settings, "default")
    eds = store.create(author_id=ed)
    store.append(eds, Turn("一?"))
    ritas = store.create(author_id=rita)
    nobodys = store.create()  # the local user's, without accounts
    assert store.get(eds).author_id == ed  # type: ignore[union-attr]
    assert store.get(nobodys).author_id is None  # type: ignore[union-attr]
    assert [c.id for c in store.list(Owner(ed))] == [eds]
    assert [c.id for c in store.list(Owner(rita))] == [ritas]
    assert [c.id for c in store.list(Owner(None, ownerless=True))] == [nobodys]
    assert {c.id for c in store.list(Owner(ed, ownerless=True))} == {eds, nobodys}  # an admin
    assert len(store.list()) == 3  # no owner given: every one (the migration, the CLI)
    # a turn added to a conversation that is not there yet makes it its author's
    store.append("made-by-a-turn", Turn("二?"), author_id=rita, owner=Owner(rita))
    assert store.get("made-by-a-turn").author_id == rita  # type: ignore[union-attr]


def test_anothers_conversation_cannot_be_changed_and_stays_as_it_was(
    state_settings: Settings,
) -> None:
    ed, rita = _people(state_settings, "ed", "rita")
    store = ConversationStore(state_settings, "default")
    eds = store.create(author_id=ed)
    seq = store.append(eds, Turn("年假?", answer_result()), author_id=ed, owner=Owner(ed))
    before = (store.get(eds), store.turns(eds))
    as_rita = Owner(rita)
    for change in (
        lambda: store.append(eds, Turn("插一句"), author_id=rita, owner=as_rita),
        lambda: store.rename(eds, "改名", as_rita),
        lambda: store.set_feedback(eds, seq, Feedback(0, "不对"), as_rita),
        lambda: store.delete(eds, as_rita),
        lambda: store.rename("no-such-conversation", "改名", Owner(ed)),
    ):
        with pytest.raises(NotYours):
            change()
    assert (store.get(eds), store.turns(eds)) == before
    store.set_feedback(eds, seq, Feedback(1), Owner(ed))  # its author may
    store.delete(eds, Owner(ed))
    assert store.get(eds) is None


def test_a_deleted_persons_conversations_are_nobodys_not_the_next_persons(
    state_settings: Settings,
) -> None:
    """A person's id may be handed out again after their account is deleted (SQLite reuses the
    highest): their conversations become nobody's (the admins') rather than the newcomer's."""
    (gone,) = _people(state_settings, "gone")
    store = ConversationStore(state_settings, "default")
    theirs = store.create(author_id=gone)
    Accounts(state_settings).delete("gone")
    assert store.get(theirs).author_id is None  # type: ignore[union-attr]
    (newcomer,) = _people(state_settings, "newcomer")
    assert store.list(Owner(newcomer)) == []
    assert [c.id for c in store.list(Owner(None, ownerless=True))] == [theirs]
