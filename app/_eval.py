"""`zhiku eval`: retrieval and answer metrics on a dataset in the format of
`../shared/eval/README.md`, side by side with a plain LangChain recipe on the same model."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

from ingest import Embedder, ingest_paths
from ingest.settings import Settings
from ingest.store import KnowledgeBase

# Bump when chunking, embedding text or indexing changes, so cached eval indexes are rebuilt.
PIPELINE_VERSION = "3"


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answerable: bool
    gold_ids: tuple[str, ...]
    gold_spans: tuple[str, ...]
    answer_groups: tuple[tuple[str, ...], ...]
    kind: str = ""  # the question's class in a held-out set ("yesno", "neighbour", …)


@dataclass(frozen=True)
class Dataset:
    name: str
    corpus: Path
    questions: tuple[Question, ...]


def squash(text: str) -> str:
    """NFKC, lower case, no whitespace: how answers and spans are compared."""
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def load_dataset(folder: Path, limit: int | None = None, seed: int = 0) -> Dataset:
    corpus = folder / "corpus.jsonl"
    questions_path = folder / "questions.jsonl"
    if not corpus.is_file() or not questions_path.is_file():
        raise FileNotFoundError(f"{folder} needs corpus.jsonl and questions.jsonl")
    questions = []
    for line in questions_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        questions.append(
            Question(
                qid=str(raw["qid"]),
                question=raw["question"],
                answerable=bool(raw["answerable"]),
                gold_ids=tuple(str(g) for g in raw.get("gold_ids") or ()),
                gold_spans=tuple(raw.get("gold_spans") or ()),
                answer_groups=tuple(tuple(g) for g in raw.get("answer_groups") or ()),
                kind=str(raw.get("kind") or ""),
            )
        )
    if limit is not None and limit < len(questions):
        # a fixed shuffle, cut: the same N questions every run, and a smaller sample is the start
        # of a larger one (the first 40 of the 200-question sample), so partial runs compare
        questions = random.Random(seed).sample(questions, len(questions))[:limit]
    return Dataset(folder.name, corpus, tuple(questions))


def is_hit(question: Question, doc_id: str, text: str) -> bool:
    if doc_id not in question.gold_ids:
        return False
    if not question.gold_spans:
        return True
    haystack = squash(text)
    return any(squash(span) in haystack for span in question.gold_spans)


def answer_correct(question: Question, answer: str) -> bool:
    got = squash(answer)
    return all(any(squash(alt) in got for alt in group) for group in question.answer_groups)


def first_hit_rank(question: Question, retrieved: list[tuple[str, str]]) -> int | None:
    """1-based rank of the first hit among (doc_id, text) pairs, or None."""
    for rank, (doc_id, text) in enumerate(retrieved, start=1):
        if is_hit(question, doc_id, text):
            return rank
    return None


def retrieval_summary(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "recall@1": sum(1 for r in ranks if r is not None and r <= 1) / n,
        "recall@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "recall@10": sum(1 for r in ranks if r is not None and r <= 10) / n,
        "mrr@10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def eval_settings(settings: Settings) -> Settings:
    """Evaluation indexes live apart from the user's knowledge bases."""
    return settings.model_copy(
        update={
            "zhiku_home": settings.zhiku_home / "eval-cache",
            "zhiku_models_dir": settings.models_dir,
        }
    )


def build_eval_kb(
    settings: Settings, dataset: Dataset, embedder: Embedder, message: Callable[[str], None]
) -> tuple[KnowledgeBase, float, bool]:
    """The dataset's corpus as a knowledge base, cached by content and pipeline settings.
    Returns (kb, seconds spent building, whether it came from the cache)."""
    key = hashlib.sha256()
    key.update(dataset.corpus.read_bytes())
    key.update(
        json.dumps(
            [
                PIPELINE_VERSION,
                settings.embedding_model,
                embedder.passage_runtime,
                settings.chunk_size,
                settings.chunk_overlap,
            ]
        ).encode()
    )
    name = f"{dataset.name}-{key.hexdigest()[:12]}"
    local = eval_settings(settings)
    try:
        kb = KnowledgeBase.open(local, name)
        if kb.counts()["chunks"] and not kb.check():
            return kb, 0.0, True
        kb.close()
    except Exception:
        pass
    message(f"indexing {dataset.corpus} into {name}")
    started = time.perf_counter()
    report = ingest_paths(local, [dataset.corpus], name, embedder=embedder)
    if report.exit_code:
        failed = [o.reason_en for o in report.outcomes if o.status == "failed"]
        raise RuntimeError(f"could not index {dataset.corpus}: {failed}")
    return KnowledgeBase.open(local, name), time.perf_counter() - started, False


def plain_langchain_recipe(
    dataset: Dataset, embedder: Embedder, k: int = 10
) -> tuple[dict[str, float], dict[str, float]]:
    """What a user writes in an afternoon: RecursiveCharacterTextSplitter(1000, 200) and
    LangChain's FAISS store, dense only, same embedding model. Returns (metrics, timings)."""
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    docs = []
    for line in dataset.corpus.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            docs.append(Document(record["text"], metadata={"doc_id": str(record["id"])}))
    chunks = splitter.split_documents(docs)
    store = FAISS.from_documents(chunks, embedder)
    ingest_s = time.perf_counter() - started
    ranks: list[int | None] = []
    latencies: list[float] = []
    for question in dataset.questions:
        if not question.answerable:
            continue
        t0 = time.perf_counter()
        found = store.similarity_search(question.question, k=k)
        latencies.append(time.perf_counter() - t0)
        ranks.append(
            first_hit_rank(question, [(d.metadata["doc_id"], d.page_content) for d in found])
        )
    return retrieval_summary(ranks), {
        "ingest_s": ingest_s,
        "chunks": len(chunks),
        "query_p50_ms": 1000 * percentile(latencies, 0.5),
    }


@dataclass
class RetrievalRow:
    qid: str
    question: str
    answerable: bool
    first_hit: int | None
    retrieved: list[dict[str, object]]
    latency_s: float


def evaluate_retrieval(
    settings: Settings, dataset: Dataset, kb: KnowledgeBase, embedder: Embedder, k: int = 10
) -> Iterator[RetrievalRow]:
    from app.answer import search

    for question in dataset.questions:
        started = time.perf_counter()
        hits = search(kb, embedder, question.question, settings, k=max(k, 10))
        latency = time.perf_counter() - started
        pairs = [(h.chunk.doc_id, h.chunk.text) for h in hits]
        yield RetrievalRow(
            qid=question.qid,
            question=question.question,
            answerable=question.answerable,
            first_hit=first_hit_rank(question, pairs) if question.answerable else None,
            retrieved=[
                {
                    "doc_id": h.chunk.doc_id,
                    "chunk_id": h.chunk.id,
                    "score": round(h.score, 5),
                    "dense": round(h.dense, 4),
                    "keyword": round(h.keyword, 3),
                    "dense_rank": h.dense_rank,
                    "keyword_rank": h.keyword_rank,
                    "hit": question.answerable and is_hit(question, h.chunk.doc_id, h.chunk.text),
                }
                for h in hits[:10]
            ],
            latency_s=latency,
        )


def summarize_retrieval(rows: list[RetrievalRow]) -> dict[str, float]:
    answerable = [r for r in rows if r.answerable]
    summary = retrieval_summary([r.first_hit for r in answerable])
    latencies = [r.latency_s for r in rows]
    summary["retrieval_p50_ms"] = 1000 * percentile(latencies, 0.5)
    summary["retrieval_p95_ms"] = 1000 * percentile(latencies, 0.95)
    summary["answerable"] = len(answerable)
    return summary


@dataclass
class AnswerRow:
    qid: str
    question: str
    answerable: bool
    answer: str
    refused: bool
    refusal_reason: str | None
    correct: bool
    markers_valid: bool  # every marker in the final answer points at a passage the model saw
    raw_markers_valid: bool  # the same, for the model's own text before repair
    supported: bool  # a cited passage is a hit
    repairs: list[str]
    first_token_s: float | None
    total_s: float
    retrieval_s: float
    error: str | None
    prompt_tokens: int | None = None  # what the LLM read, of which the KV cache held:
    cached_prompt_tokens: int | None = None
    cited: dict[str, str] = field(default_factory=dict)  # marker -> text of the passage it cites
    # marker -> {"sentence": the cited sentence, "labels": [title, *headings]}
    cited_sentences: dict[str, dict[str, object]] = field(default_factory=dict)
    claims: int = 0  # answer sentences counted by claim support
    claims_supported: int = 0
    # the evidence quoted under the answer, not part of `answer`: marker, text, doc_id, ...
    evidence_quotes: list[dict[str, object]] = field(default_factory=list)
    evidence_rescued: bool = False  # the evidence holds the gold answer the answer lacks
    model_answer: str | None = None
    dropped: list[str] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)
    raw_answer: str = ""  # the answer text of the model's reply, before the check
    # guard name -> [fired, right -> wrong, wrong -> right] for this question
    guards: dict[str, list[int]] = field(default_factory=dict)
    kind: str = ""


# ----- claim support ---------------------------------------------------------------------------
# The metric's own reading of an answer, written apart from the check that decides what is shown
# (app/_cite.py, AnswerCheck): if both shared one definition, the metric would read 1.0 by
# construction. The definition is in README.md ("Claim support").

SUPPORT_SHARE = 0.6  # of a claim's character bigrams, in the passage it is supported by
MERGED_SHARE = 0.2  # of its bigrams found only in another cited passage: a merged fact
MIN_LETTERS = 4
_CLAIM = re.compile(r"[^。！？!?；\n]*(?:[。！？!?；]+|\n|$)(?:\s*\[\d{1,3}\])*")
_MARKER = re.compile(r"\[(\d{1,3})\]")
_MARKED_PART = re.compile(
    r"(?:[^\[]|\[(?!\d{1,3}\]))+(?:\[\d{1,3}\])*[。！？!?；]*|(?:\[\d{1,3}\])+"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*%?")
_LATIN = re.compile(r"[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*")
_CLAUSE = re.compile(r"[，,；;：:。！？!?\n]")
# words holding a negating character that negate nothing
_NOT_NEGATIONS = re.compile(
    r"非常|未来|不断|不过|不仅|不但|不少|不同|不久|无论|不管|无线|是否|并且|除非"
)
_NEGATION = re.compile(
    r"不|没|未|无|非|禁止|严禁|勿|\b(?:not|no|never|none|cannot|neither|nor|without)\b|n't"
)


@dataclass(frozen=True)
class CitedSentence:
    """What one marker of an answer points at: the cited sentence and its passage."""

    sentence: str
    passage: str  # the whole passage's text
    labels: tuple[str, ...] = ()  # the document's title and the passage's headings


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKC", _MARKER.sub("", text)).lower()


def _bigrams(text: str) -> set[str]:
    chars = [c for c in _plain(text) if c.isalnum()]
    return {a + b for a, b in pairwise(chars)} or set(chars)


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(_plain(text))}


def _has_number(number: str, text: str) -> bool:
    pattern = r"(?<![\d.])" + re.escape(number) + r"(?![\d]|\.\d)"
    return re.search(pattern, _plain(text).replace(",", "")) is not None


def _latin_names(claim: str) -> set[str]:
    """The Latin-script words a claim must take from its source: all of them in a Chinese
    sentence ("GPT-4", "A 公司"); in an English one, those written with a capital or a digit
    past the first word (names, models), since its other words may be the writer's own."""
    text = unicodedata.normalize("NFKC", _MARKER.sub("", claim))
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", text)
    if sum(1 for c in text if "\u3400" <= c <= "\u9fff") >= len("".join(words)) / 2:
        return {w.lower() for w in words}
    return {w.lower() for w in words[1:] if w[0].isupper() or any(c.isdigit() for c in w)}


def negated(text: str) -> bool:
    plain = _NOT_NEGATIONS.sub("", _plain(text))
    return _NEGATION.search(plain) is not None


def _polarity_agrees(claim: str, sentences: list[str]) -> bool:
    """Each clause of the claim carries the polarity of the cited clause closest to it."""
    cited = [c for s in sentences for c in _CLAUSE.split(_plain(s)) if c.strip()]
    for part in _CLAUSE.split(_plain(claim)):
        grams = _bigrams(part)
        if not grams or not cited:
            continue
        best = max(cited, key=lambda c: len(grams & _bigrams(c)))
        if grams & _bigrams(best) and negated(part) != negated(best):
            return False
    return True


def _is_title(claim: str, cited: CitedSentence) -> bool:
    """A title or heading states no fact: the document's title, a heading of the passage, or a
    Markdown heading line of it."""
    said = "".join(c for c in _plain(claim) if c.isalnum())
    if not said:
        return False
    lines = [
        line.lstrip("#").strip() for line in cited.passage.splitlines() if line.startswith("#")
    ]
    for label in (*cited.labels, *lines):
        squashed = "".join(c for c in _plain(label) if c.isalnum())
        if squashed and said in squashed:
            return True
    return False


_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}")


def _row_header(cited: CitedSentence, passage: str) -> str:
    """The header row of the table a cited row is in ("" for a sentence of running text)."""
    row = cited.sentence.strip()
    if "|" not in row:
        return ""
    lines = passage.splitlines()
    at = next((i for i, line in enumerate(lines) if row in line), None)
    for i in range(at - 1 if at is not None else -1, 0, -1):
        if _TABLE_SEPARATOR.match(lines[i]):
            return lines[i - 1]
    return ""


def claim_sentences(answer: str) -> list[str]:
    """The answer cut after 。！？!?； and line ends, each sentence keeping the markers that
    directly follow its end; and after markers that more text follows ("…训练[1] - …[2]"):
    a marker closes what it cites."""
    out = []
    for match in _CLAIM.finditer(answer):
        out += _MARKED_PART.findall(match.group(0))
    return [part.strip() for part in out if part.strip()]


def counts_as_claim(sentence: str) -> bool:
    """4+ letters or CJK characters, or a marker: a cited "可以。[1]" is a claim too."""
    letters = sum(1 for c in _plain(sentence) if c.isalpha())
    return letters >= MIN_LETTERS or (letters > 0 and _MARKER.search(sentence) is not None)


def claim_is_supported(sentence: str, cited: dict[str, CitedSentence], question: str = "") -> bool:
    """One answer sentence against what its markers cite: supported by the cited sentence(s)
    of one single passage (see README.md, "Claim support")."""
    markers = list(dict.fromkeys(_MARKER.findall(sentence)))
    targets = [cited[m] for m in markers if m in cited]
    if not targets:
        return False  # uncited, or citing nothing that was given
    grams = _bigrams(sentence)
    asked = _bigrams(question) if question else set()
    by_passage: dict[str, list[CitedSentence]] = {}
    for target in targets:
        by_passage.setdefault(target.passage, []).append(target)
    for passage, group in by_passage.items():
        stated = [t.sentence for t in group if not _is_title(t.sentence, t)]
        if not stated or any(_is_title(sentence, t) for t in group):
            continue
        # a table row is read with its table's header, as the row's record shows it
        source = "\n".join([*stated, *(_row_header(t, passage) for t in group)])
        if any(not _has_number(n, source) for n in _numbers(sentence)):
            continue
        if any(name not in _plain(source) for name in _latin_names(sentence)):
            continue
        found = grams & _bigrams(passage)
        if grams and len(found) / len(grams) < SUPPORT_SHARE:
            continue
        elsewhere = set().union(*(_bigrams(p) for p in by_passage if p != passage))
        borrowed = (grams - found - asked) & elsewhere
        if grams and len(borrowed) >= 2 and len(borrowed) / len(grams) >= MERGED_SHARE:
            continue  # parts of it come only from another passage: a merged fact
        if not _polarity_agrees(sentence, stated):
            continue
        return True
    return False


def claim_support(
    answer: str, cited: dict[str, CitedSentence], question: str = ""
) -> tuple[int, int]:
    """(sentences counted, sentences supported) of one answer's text (never its evidence)."""
    counted = supported = 0
    for sentence in claim_sentences(answer):
        if not counts_as_claim(sentence):
            continue
        counted += 1
        supported += claim_is_supported(sentence, cited, question)
    return counted, supported


def cited_sentences(citations: Iterable[object]) -> dict[str, CitedSentence]:
    """Marker -> what it cites, from `AnswerResult.citations`."""
    out = {}
    for c in citations:
        p = c.passage  # type: ignore[attr-defined]
        labels = (p.title, *p.headings)
        out[str(c.number)] = CitedSentence(c.quote, p.text, labels)  # type: ignore[attr-defined]
    return out


def cited_from_row(row: dict[str, object]) -> dict[str, CitedSentence]:
    """Marker -> what it cites, from an answer row of `zhiku eval --json` (a run written before
    the cited sentences were kept falls back to the whole passage)."""
    passages: dict[str, str] = row.get("cited") or {}  # type: ignore[assignment]
    sentences: dict[str, dict[str, object]] = row.get("cited_sentences") or {}  # type: ignore[assignment]
    out = {}
    for marker, text in passages.items():
        found = sentences.get(marker) or {}
        labels = tuple(str(label) for label in found.get("labels") or ())  # type: ignore[attr-defined]
        out[marker] = CitedSentence(str(found.get("sentence", text)), text, labels)
    return out


def evidence_text(quotes: Iterable[object]) -> str:
    return "\n".join(q.text for q in quotes)  # type: ignore[attr-defined]


def evidence_rescues(question: Question, answer: str, refused: bool, evidence: str) -> bool:
    """The evidence quoted under an answer holds the gold answer that the answer alone lacks."""
    if not question.answerable or refused or not evidence:
        return False
    return not answer_correct(question, answer) and answer_correct(
        question, answer + "\n" + evidence
    )


def outcome_right(question: Question, answer: str, refused: bool) -> bool:
    """Right for this question: a correct answer to an answerable one, a refusal otherwise."""
    if question.answerable:
        return not refused and answer_correct(question, answer)
    return refused


def guard_counts(question: Question, result: object) -> dict[str, list[int]]:
    """[fired, right -> wrong, wrong -> right] for each guard that fired on this question;
    the last two only where what the answer would have been without it is known."""
    counts: dict[str, list[int]] = {}
    final_right = outcome_right(question, result.answer, result.refused)  # type: ignore[attr-defined]
    for event in result.guards:  # type: ignore[attr-defined]
        row = counts.setdefault(event.name, [0, 0, 0])
        row[0] += 1
        if event.before_answer is None or event.before_refused is None:
            continue
        before_right = outcome_right(question, event.before_answer, event.before_refused)
        row[1] += before_right and not final_right
        row[2] += final_right and not before_right
    return counts


def evaluate_answers(
    settings: Settings,
    dataset: Dataset,
    kb: KnowledgeBase,
    embedder: Embedder,
    backend: object,
    on_row: Callable[[AnswerRow], None] = lambda row: None,
) -> list[AnswerRow]:
    """Ask every question through `answer()`, exactly as the CLI and the web app do (guards
    shadowed: one that refuses before the model is asked lets it answer first, so what the
    guard changed is known; the answers are the same)."""
    import re

    from app.answer import Final, Token, answer

    rows = []
    for question in dataset.questions:
        raw_parts: list[str] = []
        result = None
        events = answer(
            question.question,
            [],
            kb,
            settings,
            embedder,
            backend,
            shadow_guards=True,  # type: ignore[arg-type]
        )
        for event in events:
            if isinstance(event, Token):
                raw_parts.append(event.text)
            elif isinstance(event, Final):
                result = event.result
        assert result is not None
        cited = {str(c.number): c.passage.text for c in result.citations}
        sentences = cited_sentences(result.citations)
        claims, claims_ok = (
            (0, 0)
            if result.refused
            else claim_support(result.answer, sentences, result.standalone_question)
        )
        quotes = [asdict(q) for q in result.evidence_quotes]
        in_prompt = len(result.citations)  # what was streamed carries the final markers
        raw_numbers = [int(n) for n in re.findall(r"\[(\d+)\]", "".join(raw_parts))]
        final_numbers = [int(n) for n in re.findall(r"\[(\d+)\]", result.answer)]
        correct = (
            question.answerable and not result.refused and answer_correct(question, result.answer)
        )
        supported = any(
            is_hit(question, c.passage.doc_id, c.passage.text) for c in result.citations
        )
        row = AnswerRow(
            qid=question.qid,
            question=question.question,
            answerable=question.answerable,
            answer=result.answer,
            refused=result.refused,
            refusal_reason=result.refusal_reason,
            correct=correct,
            markers_valid=all(1 <= n <= len(result.citations) for n in final_numbers),
            raw_markers_valid=all(1 <= n <= in_prompt for n in raw_numbers),
            supported=supported,
            repairs=result.repairs,
            first_token_s=result.timings.get("first_token_s"),
            total_s=result.timings.get("total_s", 0.0),
            retrieval_s=result.timings.get("retrieval_s", 0.0),
            error=result.error_en,
            prompt_tokens=_count(result.timings.get("prompt_tokens")),
            cached_prompt_tokens=_count(result.timings.get("cached_prompt_tokens")),
            cited=cited if result.answer and not result.refused else {},
            cited_sentences={
                m: {"sentence": c.sentence, "labels": list(c.labels)} for m, c in sentences.items()
            }
            if result.answer and not result.refused
            else {},
            claims=claims,
            claims_supported=claims_ok,
            evidence_quotes=quotes,
            evidence_rescued=evidence_rescues(
                question, result.answer, result.refused, evidence_text(result.evidence_quotes)
            ),
            model_answer=result.model_answer,
            dropped=list(result.dropped),
            evidence=list(result.evidence),
            raw_answer=result.raw_answer,
            guards=guard_counts(question, result),
            kind=question.kind,
        )
        rows.append(row)
        on_row(row)
    return rows


def _count(value: float | None) -> int | None:
    return None if value is None else int(value)


def summarize_guards(rows: list[AnswerRow]) -> dict[str, dict[str, int]]:
    """Per guard: how often it fired, turned a right outcome wrong, and a wrong one right."""
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        for name, (fired, broke, fixed) in row.guards.items():
            entry = totals.setdefault(name, {"fired": 0, "right_to_wrong": 0, "wrong_to_right": 0})
            entry["fired"] += fired
            entry["right_to_wrong"] += broke
            entry["wrong_to_right"] += fixed
    return totals


def summarize_by_kind(rows: list[AnswerRow]) -> dict[str, dict[str, float]]:
    """Per question class of a set that marks them (`kind`): how many, and the share right
    (a correct answer to an answerable question, a refusal of an unanswerable one)."""
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({r.kind for r in rows if r.kind}):
        mine = [r for r in rows if r.kind == kind]
        right = sum(r.correct if r.answerable else r.refused for r in mine)
        out[kind] = {
            "questions": float(len(mine)),
            "right": right / len(mine),
            "refused": sum(r.refused for r in mine) / len(mine),
        }
    return out


def summarize_answers(rows: list[AnswerRow]) -> dict[str, float]:
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    answered = [r for r in rows if not r.refused and r.answer]
    correct = [r for r in answerable if r.correct]
    ttft = [r.first_token_s for r in rows if r.first_token_s is not None]

    def share(part: int, whole: int) -> float:
        return part / whole if whole else float("nan")

    return {
        "answer_accuracy": share(len(correct), len(answerable)),
        "refusal_accuracy": share(sum(r.refused for r in unanswerable), len(unanswerable)),
        "false_refusals": share(sum(r.refused for r in answerable), len(answerable)),
        "citation_validity": share(sum(r.markers_valid for r in answered), len(answered)),
        "raw_citation_validity": share(sum(r.raw_markers_valid for r in answered), len(answered)),
        # answerable questions the answer got wrong whose quoted evidence holds the gold answer
        # (answer_accuracy scores the answer alone; the two added are "answer or its evidence")
        "evidence_rescue": share(sum(r.evidence_rescued for r in answerable), len(answerable)),
        "citation_support": share(sum(r.supported for r in correct), len(correct)),
        "claim_support": share(
            sum(r.claims_supported for r in answered), sum(r.claims for r in answered)
        ),
        "first_token_p50_s": percentile(ttft, 0.5),
        "answer_total_p50_s": percentile([r.total_s for r in rows], 0.5),
        "prompt_tokens_p50": percentile(
            [float(r.prompt_tokens) for r in rows if r.prompt_tokens is not None], 0.5
        ),
        "new_prompt_tokens_p50": percentile(
            [
                float(r.prompt_tokens - (r.cached_prompt_tokens or 0))
                for r in rows
                if r.prompt_tokens is not None
            ],
            0.5,
        ),
        "errors": float(sum(1 for r in rows if r.error)),
        "questions": float(len(rows)),
    }
