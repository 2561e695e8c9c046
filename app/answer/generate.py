"""Generate: the model's evidence-first reply, streamed through the answer check.

The reply is read as it streams (`ReplyReader`): the evidence ids as soon as their list closes,
the answer text as it grows. Each piece of answer text goes to the check, and what the check lets
through is yielded as a `Token`. The stream stops at the structured refusal (no evidence), where
the answer begins repeating itself, and at the end of the reply; a backend failure keeps what was
said so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from app._llm import LlmError
from app.answer.check import AnswerCheck
from app.answer.cite import ReplyReader, first_repeat
from app.answer.prompt import as_langchain
from app.answer.results import Token
from app.answer.verify.sibling_terms import SYNONYM_QUESTION, read_yes_no
from ingest.settings import Settings


@dataclass(frozen=True)
class Generation:
    """What the stream left behind: the reply as read, and how it ended."""

    reader: ReplyReader
    looping: bool  # cut where the answer began repeating itself
    error: LlmError | None  # the backend failed; the text so far is kept


def generate(
    chat: BaseChatModel,
    messages: list[dict[str, str]],
    schema: dict[str, object],
    check: AnswerCheck,
    settings: Settings,
    timings: dict[str, float],
    started: float,
) -> Generator[Token, None, Generation]:
    """Stream the model's reply to `messages` (held to `schema`) through `check`, yielding what
    it lets through; `timings` gets the prompt's tokens, the first token's times (from
    `started`), the generation's seconds and its tokens."""
    reader = ReplyReader()
    tokens, looping, error = 0, False, None
    generation_started = time.perf_counter()
    stream = chat.stream(as_langchain(messages), format=schema)
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
                timings["first_raw_token_s"] = time.perf_counter() - started
            tokens += 1
            grown = reader.feed(piece)
            if reader.evidence is not None or reader.plain:
                check.set_evidence(reader.evidence, bool(reader.plain))
            if reader.evidence == [] and not reader.plain:
                break  # the structured refusal: the answer text is not needed
            if not grown:
                continue
            cut = first_repeat(reader.answer)
            if cut is not None:
                grown = grown[: max(0, len(grown) - (len(reader.answer) - cut))]
                looping = True
            visible = check.feed(grown)
            if visible:
                timings.setdefault("first_token_s", time.perf_counter() - started)
                yield Token(visible)
            if looping or reader.done:
                break
    except Exception as exc:  # any backend failure keeps the partial answer
        error = as_llm_error(exc, settings)
    finally:
        stream.close()  # stops llama.cpp (or the Ollama request) when the loop broke off
    if not reader.done and error is None and not looping:
        known = reader.answer
        reader.finish()  # a complete reply the incremental reading missed
        check.set_evidence(reader.evidence, bool(reader.plain))
        if reader.answer.startswith(known) and len(reader.answer) > len(known):
            early = check.feed(reader.answer[len(known) :])
            if early:
                timings.setdefault("first_token_s", time.perf_counter() - started)
                yield Token(early)
    tail = "" if looping else check.flush()  # a repeat's first words are no answer
    if tail:
        timings.setdefault("first_token_s", time.perf_counter() - started)
        yield Token(tail)
    timings["generation_s"] = time.perf_counter() - generation_started
    timings["tokens"] = float(tokens)
    return Generation(reader, looping, error)


def as_llm_error(exc: BaseException, settings: Settings) -> LlmError:
    """A backend's failure as zhiku's error, in both languages."""
    if isinstance(exc, LlmError):
        return exc
    if type(exc).__module__.startswith(("ollama", "httpx", "langchain_ollama")):
        from app._llm_ollama import ollama_error

        return ollama_error(exc, settings)
    return LlmError(
        f"the LLM failed while answering: {type(exc).__name__}: {exc}",
        f"大模型生成回答时出错：{type(exc).__name__}: {exc}",
    )


_YES_NO_END = ["\n", ".", ",", "!", "。", "，"]  # "Yes." / "No, they are not": the first word


SYNONYM_QUESTIONS_PER_ANSWER = 8  # at 0.15-0.3 s each: the wait before an answer stays short


def synonym_judge(
    chat: BaseChatModel, limit: int | None = SYNONYM_QUESTIONS_PER_ANSWER
) -> Callable[[str, str], bool | None]:
    """The model's yes or no to "Is A a synonym of B?" (`verify/sibling_terms.py`), asked alone:
    with the answering prompt before it the bundled model says yes to every pair, and in
    Chinese it says 是 to most (bench/synonym_bench.py). None when the reply is neither, the
    backend fails or `limit` questions were asked already (None: no limit, for the benchmarks
    that ask every pair once): an unsure judge never refuses."""
    asked: dict[tuple[str, str], bool | None] = {}

    def synonym(a: str, b: str) -> bool | None:
        if (a, b) not in asked:
            if limit is not None and len(asked) >= limit:
                return None
            message = [{"role": "user", "content": SYNONYM_QUESTION.format(a=a, b=b)}]
            try:
                reply = chat.invoke(as_langchain(message), stop=_YES_NO_END)
                asked[(a, b)] = read_yes_no(str(reply.content))
            except Exception:  # a judge that cannot be asked does not decide
                asked[(a, b)] = None
        return asked[(a, b)]

    return synonym
