"""Evaluation cases made from feedback: one set per knowledge base, kept in the state database
(`app/state/evalcases.py`, shared by every app server on `STATE_URL`) and exported under the data
home (`<ZHIKU_HOME>/evalsets/<kb>/`) in the `zhiku eval` format (`../shared/eval/README.md`):
`questions.jsonl` holds the cases, `corpus.jsonl` the knowledge base's documents (both refreshed
with every saved case), so `zhiku eval <that folder>` runs it from the command line too. A
`questions.jsonl` of an earlier version (the set's only copy then) is imported when the database
has no case of that knowledge base.

In the web app the set is run against the knowledge base itself (its gold ids are that
knowledge base's document ids), through the same `evaluate_retrieval` and `evaluate_answers`
the command uses.

A case is its author's (`app/state/owners.py`): a person lists, runs and removes their own cases
in the web app, and their qid is made with their id, so two people saving the same question keep
a case each. The exported `questions.jsonl` holds every case of the knowledge base: it is the
file `zhiku eval` reads, under the data home that only whoever runs zhiku can read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from app._eval import (
    AnswerRow,
    Dataset,
    RetrievalRow,
    evaluate_answers,
    evaluate_retrieval,
    load_dataset,
    summarize_answers,
    summarize_retrieval,
)
from app.state import evalcases as records
from app.state import open_state
from app.state.owners import Owner
from ingest import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase, validate_kb_name

EVALSETS_DIR = "evalsets"
# in a set's folder: its questions.jsonl is an export of the state database, not an earlier
# version's only copy to import
EXPORTED_MARK = ".exported"


@dataclass(frozen=True)
class Case:
    qid: str
    question: str
    answerable: bool
    gold_ids: tuple[str, ...]
    answer_groups: tuple[tuple[str, ...], ...]
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "qid": self.qid,
            "question": self.question,
            "answerable": self.answerable,
            "gold_ids": list(self.gold_ids),
            "gold_spans": [],
            "answer_groups": [list(g) for g in self.answer_groups],
            "note": self.note,  # ignored by `zhiku eval`
            "origin": "feedback",
        }


def evalset_dir(settings: Settings, kb_name: str) -> Path:
    return settings.zhiku_home / EVALSETS_DIR / validate_kb_name(kb_name)


def make_case(
    question: str,
    expected: str | None,
    gold_ids: Sequence[str],
    note: str = "",
    author_id: int | None = None,
) -> Case:
    """A case: `expected` is the text a right answer must contain, None for "should refuse".
    Its qid comes from the question (and the author's id, when a person makes it): the same
    question saved again by its author replaces their case."""
    question = " ".join(question.split())
    keyed = question if author_id is None else f"{author_id}\n{question}"
    qid = "fb-" + hashlib.sha256(keyed.encode()).hexdigest()[:10]
    if expected is None:
        return Case(qid, question, False, (), (), note)
    wanted = " ".join(expected.split())
    return Case(qid, question, True, tuple(gold_ids), ((wanted,),) if wanted else (), note)


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _case(raw: dict[str, object]) -> Case:
    return Case(
        str(raw["qid"]),
        str(raw["question"]),
        bool(raw["answerable"]),
        tuple(raw.get("gold_ids") or ()),  # type: ignore[arg-type]
        tuple(tuple(g) for g in raw.get("answer_groups") or ()),  # type: ignore[attr-defined]
        str(raw.get("note", "")),
    )


def _file_cases(settings: Settings, kb_name: str) -> list[Case]:
    path = evalset_dir(settings, kb_name) / "questions.jsonl"
    if not path.is_file():
        return []
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            cases.append(_case(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue  # a line edited by hand into something else: the rest still loads
    return cases


def load_cases(settings: Settings, kb_name: str, owner: Owner | None = None) -> list[Case]:
    """The cases in order: those `owner` holds (every one when `owner` is None)."""
    kb_name = validate_kb_name(kb_name)
    engine = open_state(settings)
    mark = evalset_dir(settings, kb_name) / EXPORTED_MARK
    if mark.parent.is_dir() and not mark.exists() and not records.count(engine, kb_name):
        earlier = _file_cases(settings, kb_name)  # nobody's: made without accounts
        if earlier:
            records.save_all(engine, kb_name, [c.as_json() for c in earlier])
        mark.touch()
    return [_case(raw) for raw in records.load(engine, kb_name, owner)]


def _export_cases(settings: Settings, kb_name: str) -> None:
    folder = evalset_dir(settings, kb_name)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(c.as_json(), ensure_ascii=False) for c in load_cases(settings, kb_name)]
    _write_atomic(folder / "questions.jsonl", "".join(line + "\n" for line in lines))
    (folder / EXPORTED_MARK).touch()


def write_corpus(settings: Settings, kb: KnowledgeBase) -> Path:
    """The knowledge base's documents as `corpus.jsonl` (id = document id, pages joined)."""
    folder = evalset_dir(settings, kb.name)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for doc in kb.documents():
        pages = []
        for seq in range(doc.pages or 1):
            text = kb.page_text(doc.doc_id, seq)
            if text:
                pages.append(text)
        record = {"id": doc.doc_id, "title": doc.title, "text": "\n\n".join(pages)}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    path = folder / "corpus.jsonl"
    _write_atomic(path, "".join(lines))
    return path


def save_case(
    settings: Settings, kb: KnowledgeBase, case: Case, author_id: int | None = None
) -> bool:
    """Add `case` by `author_id` (their case with the same qid is replaced); returns whether
    it was new. `records.TakenByAnother` when that qid is another's case."""
    load_cases(settings, kb.name)  # an earlier version's file first, so nothing of it is lost
    engine = open_state(settings)
    new = records.save(engine, validate_kb_name(kb.name), case.as_json(), author_id)
    _export_cases(settings, kb.name)
    write_corpus(settings, kb)
    return new


def delete_kb_evalset(settings: Settings, kb_name: str) -> None:
    """Remove a deleted knowledge base's evaluation set; raises OSError when some of it stays."""
    records.delete_kb(open_state(settings), validate_kb_name(kb_name))
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(evalset_dir(settings, kb_name))


def kb_has_evalset(settings: Settings, kb_name: str) -> bool:
    """Whether anything of the knowledge base's evaluation set is kept, rows or files."""
    if evalset_dir(settings, kb_name).exists():
        return True
    return records.count(open_state(settings), validate_kb_name(kb_name)) > 0


def remove_case(settings: Settings, kb_name: str, qid: str, owner: Owner | None = None) -> bool:
    """Remove the case when `owner` holds it (any case when None); whether one was removed."""
    load_cases(settings, kb_name)
    removed = records.remove(open_state(settings), validate_kb_name(kb_name), qid, owner)
    _export_cases(settings, kb_name)
    return removed


@dataclass
class EvalRun:
    retrieval: dict[str, float]
    retrieval_rows: list[RetrievalRow]
    answers: dict[str, float] | None  # None when no LLM answered (retrieval only)
    answer_rows: list[AnswerRow]

    def failures(self) -> list[tuple[str, str, str]]:
        """(question, what was expected, what happened), in Chinese."""
        out = []
        by_qid = {r.qid: r for r in self.answer_rows}
        for row in self.retrieval_rows:
            answered = by_qid.get(row.qid)
            if row.answerable and (row.first_hit is None or row.first_hit > 5):
                out.append((row.question, "前 5 个段落里有标准文档", "没有检索到标准文档"))
            elif answered is not None and self.answers is not None:
                if row.answerable and not answered.correct:
                    got = "拒答" if answered.refused else answered.answer[:80]
                    out.append((row.question, "回答包含期望答案", f"回答:{got}"))
                elif not row.answerable and not answered.refused:
                    out.append((row.question, "拒答", f"回答:{answered.answer[:80]}"))
            elif answered is not None and not row.answerable and not answered.refused:
                out.append((row.question, "拒答", "检索到了达到相关度下限的段落"))
        return out


def run_cases(
    settings: Settings,
    kb: KnowledgeBase,
    embedder: Embedder,
    backend: object,
    on_step: Callable[[int, int, str], None] = lambda done, total, question: None,
    qids: Collection[str] | None = None,
) -> EvalRun:
    """Retrieval for every case (of `qids`, when given), then an answer for every case through
    `answer()`."""
    folder = evalset_dir(settings, kb.name)
    dataset: Dataset = load_dataset(folder)
    if qids is not None:
        dataset = replace(dataset, questions=tuple(q for q in dataset.questions if q.qid in qids))
    total = 2 * len(dataset.questions)
    rows: list[RetrievalRow] = []
    for row in evaluate_retrieval(settings, dataset, kb, embedder):
        rows.append(row)
        on_step(len(rows), total, row.question)
    answered: list[AnswerRow] = []

    def step(row: AnswerRow) -> None:
        answered.append(row)
        on_step(len(rows) + len(answered), total, row.question)

    evaluate_answers(settings, dataset, kb, embedder, backend, step)
    generating = getattr(backend, "chat", None) is not None
    return EvalRun(
        summarize_retrieval(rows),
        rows,
        summarize_answers(answered) if generating else None,
        answered,
    )
