"""Answering: question → (standalone question) → retrieval → prompt → LLM → verified citations.

`answer()` is the one interface the CLI and the web app use: an iterator of events, so a UI can
show the passages as soon as retrieval is done and the answer token by token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from app._cite import first_repeat, off_question, repair
from app._llm import BackendInfo, LlmError, ResolvedBackend, current, resolve_backend
from app._passages import Passage, build_passages, fit_context
from app._prompt import (
    REFUSAL_EN,
    REFUSAL_ZH,
    PromptPassage,
    as_langchain,
    build_condense_messages,
    build_messages,
    missing_names,
    quotes_instructions,
    refusal_sentence,
)
from app._search import search
from ingest._embed import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase


@dataclass
class Citation:
    number: int  # the marker in the final answer
    passage: Passage
    span_start: int  # the supporting span, as offsets into the page
    span_end: int
    quote: str  # the supporting span's text


@dataclass
class AnswerResult:
    question: str
    standalone_question: str
    answer: str
    citations: list[Citation]
    passages: list[Passage]  # everything retrieved, cited or not; the first ones were in the prompt
    refused: bool
    # "empty_question", "no_relevant_passage", "name_not_found", "model_refused"
    refusal_reason: str | None
    backend: BackendInfo
    timings: dict[str, float]
    error_en: str | None = None
    error_zh: str | None = None
    partial: bool = False  # generation stopped early; the text so far is kept
    missing_names: list[str] = field(default_factory=list)  # the question's names no passage has
    # the model's own answer, when code gave the passage sentence matching the question instead
    model_answer: str | None = None
    repairs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["backend"] = {"kind": self.backend.kind, "model": self.backend.model}
        return data


@dataclass(frozen=True)
class Retrieved:
    standalone_question: str
    passages: list[Passage]
    seconds: float
    backend: BackendInfo


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Notice:
    en: str
    zh: str


@dataclass(frozen=True)
class Final:
    result: AnswerResult


Event = Retrieved | Token | Notice | Final

_LEANING = re.compile(
    r"^(它|他|她|它们|他们|这|那|其|该|此|上述|前者|后者)|^(it|they|this|that|these|those)\b",
    re.IGNORECASE,
)


def carry_over(question: str, history: Sequence[tuple[str, str]]) -> str:
    """Without an LLM: a follow-up that leans on the previous question gets its words."""
    if not history:
        return question
    previous = history[-1][0].strip()
    short = len(re.sub(r"\W", "", question)) <= 8
    if short or _LEANING.search(question.strip()):
        return f"{previous} {question.strip()}"
    return question


_CJK = re.compile(r"[\u3400-\u9fff]")


def _mostly_chinese(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(1 for c in letters if _CJK.match(c)) / len(letters) >= 0.3


def relevance_floor(question: str, passage: str, settings: Settings) -> float:
    """The cosine a passage must reach: lower across languages, where multilingual embeddings
    score related pairs lower (English questions on Chinese passages: ~0.78-0.82 related,
    ~0.72-0.75 unrelated, against ~0.85-0.92 and ~0.80-0.83 within Chinese)."""
    if _mostly_chinese(question) == _mostly_chinese(passage):
        return settings.relevance_floor
    return settings.relevance_floor_cross_lingual


def close_to_best(passages: list[Passage], ratio: float) -> list[Passage]:
    """The passages whose fused score is within `ratio` of the best one's. A passage far behind
    the best seldom holds the answer, and a small model takes numbers from it: GPT-3's parameter
    count given for GPT-1 came from a third passage scored 0.47 of the first."""
    if not passages:
        return []
    best = max(p.score for p in passages)
    return [p for p in passages if p.score >= ratio * best]


def condense(question: str, history: Sequence[tuple[str, str]], backend: ResolvedBackend) -> str:
    """A standalone question: rewritten by the LLM when there is one, else carried over."""
    if not history:
        return question
    if backend.chat is None:
        return carry_over(question, history)
    try:
        reply = backend.chat.invoke(
            as_langchain(build_condense_messages(question, list(history))), stop=["\n"]
        )
    except Exception:  # rewriting is an aid; the question itself still works
        return carry_over(question, history)
    lines = str(reply.content).strip().splitlines()
    text = re.sub(r"^(改写后的问题|问题)[:：]\s*", "", lines[0].strip()) if lines else ""
    return text if 2 <= len(text) <= 200 else carry_over(question, history)


def is_refusal(text: str) -> bool:
    """The model gave the fixed refusal sentence (alone, or leading a short reply)."""
    squashed = re.sub(r"[\W\d_]", "", re.sub(r"\[\d+\]", "", text)).lower()
    for sentence in (REFUSAL_ZH, REFUSAL_EN):
        key = re.sub(r"[\W_]", "", sentence).lower()
        if squashed.startswith(key) or (key in squashed and len(squashed) < 2 * len(key)):
            return True
    return False


def _citations(context: list[Passage], text: str) -> tuple[str, list[Citation], list[str]]:
    repaired = repair(text, [p.prompt_text for p in context], (REFUSAL_ZH, REFUSAL_EN))
    citations = []
    for new_number, original in enumerate(repaired.cited, start=1):
        passage = context[original - 1]
        lo, hi = (passage.text_index(i) for i in repaired.spans[original])
        span = (passage.page_offset(lo), passage.page_offset(hi))
        citations.append(Citation(new_number, passage, *span, passage.text[lo:hi]))
    return repaired.text, citations, repaired.changes


def answer(
    question: str,
    history: Sequence[tuple[str, str]],
    kb: KnowledgeBase,
    settings: Settings,
    embedder: Embedder,
    backend: ResolvedBackend | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Iterator[Event]:
    """Answer `question` from `kb`; `history` holds the earlier (question, answer) turns."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if backend is None:
        try:
            backend = resolve_backend(settings, progress=progress)
        except LlmError as exc:
            yield Notice(exc.en, exc.zh)
            backend = ResolvedBackend(None, BackendInfo("none", ""))
    backend = current(backend)
    if backend.notice is not None:
        yield Notice(backend.notice.en, backend.notice.zh)
    info = backend.info

    def final(**values: object) -> Final:
        timings["total_s"] = time.perf_counter() - started
        fields: dict[str, object] = {
            "question": question,
            "standalone_question": question,
            "answer": "",
            "citations": [],
            "passages": [],
            "refused": False,
            "refusal_reason": None,
            "backend": info,
            "timings": timings,
        }
        fields.update(values)
        return Final(AnswerResult(**fields))  # type: ignore[arg-type]

    if not question.strip():
        yield final(refused=True, refusal_reason="empty_question", answer=refusal_sentence("?"))
        return

    standalone = condense(question.strip(), history, backend)
    timings["condense_s"] = time.perf_counter() - started
    retrieval_started = time.perf_counter()
    hits = search(kb, embedder, standalone, settings, k=settings.top_k)
    passages = build_passages(kb, hits, settings.merge_neighbors)
    relevant = [p for p in passages if p.dense >= relevance_floor(standalone, p.text, settings)]
    context = close_to_best(relevant, settings.context_score_ratio)[: settings.context_passages]
    # the passages in the prompt are [1]..[n] in prompt order; the others follow
    passages = [*context, *(p for p in passages if p not in context)]
    for number, passage in enumerate(passages, start=1):
        passage.number = number
    timings["retrieval_s"] = time.perf_counter() - retrieval_started
    yield Retrieved(standalone, passages, timings["retrieval_s"], info)

    def refuse(reason: str, missing: Sequence[str] = ()) -> Final:
        answer_text = refusal_sentence(question)
        return final(
            standalone_question=standalone,
            passages=passages,
            refused=True,
            refusal_reason=reason,
            missing_names=list(missing),
            answer=answer_text,
        )

    if not context:
        yield refuse("no_relevant_passage")  # nothing clears the floor: the LLM is not asked
        return
    missing = missing_names(standalone, [p.text for p in passages])
    if missing:  # passages on the topic, none on the question's subject: the LLM is not asked
        yield refuse("name_not_found", missing)
        return
    if backend.chat is None:
        # retrieval only: the best passages are the result, each its own source
        citations = [Citation(p.number, p, p.start, p.end, p.text) for p in context]
        yield final(standalone_question=standalone, passages=passages, citations=citations)
        return

    fit_context(context, settings.context_chars, standalone)
    messages = build_messages(
        standalone,
        [PromptPassage(p.number, p.title, p.page, p.headings, p.prompt_text) for p in context],
    )
    raw = ""
    tokens = 0
    looping = False
    error: LlmError | None = None
    generation_started = time.perf_counter()
    stream = backend.chat.stream(as_langchain(messages))
    try:
        for chunk in stream:
            usage = getattr(chunk, "usage_metadata", None)
            if usage:  # what the prompt cost: its tokens, and how many the KV cache held
                timings["prompt_tokens"] = float(usage.get("input_tokens", 0))
                details = usage.get("input_token_details") or {}
                timings["cached_prompt_tokens"] = float(details.get("cache_read", 0))
            piece = str(chunk.content)
            if not piece:
                continue
            if not tokens:
                timings["first_token_s"] = time.perf_counter() - started
            raw += piece
            tokens += 1
            yield Token(piece)
            cut = first_repeat(raw)
            if cut is not None:
                raw, looping = raw[:cut], True
                break
    except Exception as exc:  # any backend failure keeps the partial answer
        error = _as_llm_error(exc, settings)
    finally:
        stream.close()  # stops llama.cpp (or the Ollama request) when the loop broke off
    timings["generation_s"] = time.perf_counter() - generation_started
    timings["tokens"] = float(tokens)
    raw = raw.strip()
    failure = {"error_en": error.en, "error_zh": error.zh} if error else {}
    if error is not None and not raw:
        yield final(standalone_question=standalone, passages=passages, **failure)
        return
    if is_refusal(raw):
        yield refuse("model_refused")
        return
    raw, withheld = _withhold_instructions(raw)
    model_answer = None
    quoted = off_question(raw, standalone, [p.prompt_text for p in context])
    if quoted is not None:  # the model read the wrong line: the matching sentence is the answer
        model_answer, raw = raw, quoted
    text, citations, repairs = _citations(context, raw)
    repairs += withheld
    if model_answer is not None:
        repairs.append(
            "gave the passage sentence that matches the question: the model's answer drew on "
            "neither the question's words nor that sentence"
        )
    if looping:
        repairs.append("stopped the answer where it began repeating itself")
    yield final(
        standalone_question=standalone,
        passages=passages,
        answer=text,
        citations=citations,
        repairs=repairs,
        model_answer=model_answer,
        partial=error is not None,
        **failure,
    )


def _withhold_instructions(text: str) -> tuple[str, list[str]]:
    """Drop sentences that quote the system prompt verbatim. Cut only at full stops and line
    ends, not with the citation splitter (`_cite`), which also cuts at "2. ": a leaked rule
    line "2. 每句话末尾…" must stay one sentence to be recognised and dropped whole."""
    if not quotes_instructions(text):
        return text, []
    kept = [s for s in re.split(r"(?<=[。！？!?\n])", text) if not quotes_instructions(s)]
    return "".join(kept).strip(), ["withheld a sentence quoting the system prompt"]


def _as_llm_error(exc: BaseException, settings: Settings) -> LlmError:
    if isinstance(exc, LlmError):
        return exc
    if type(exc).__module__.startswith(("ollama", "httpx", "langchain_ollama")):
        from app._llm_ollama import ollama_error

        return ollama_error(exc, settings)
    return LlmError(
        f"the LLM failed while answering: {type(exc).__name__}: {exc}",
        f"大模型生成回答时出错：{type(exc).__name__}: {exc}",
    )
