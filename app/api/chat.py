"""`POST /v1/chat/completions` and `GET /v1/models`, the OpenAI-compatible face of `answer()`.

The model is `zhiku/<knowledge base>`. The message `content` is the answer alone, with `[n]`
markers; the evidence quoted under it (`zhiku.evidence`), the citations, the refusal flag and its
reason come in a `zhiku` field that OpenAI clients ignore (on the response, or on the final chunk
of a stream). A stream sends the checked answer sentence by sentence as `content`, never the
evidence; its final chunk's `zhiku.answer` is the same text. Earlier turns of `messages` are the
chat history (a follow-up is rewritten into a standalone question; the assistant turns are read
as answers); system messages are not obeyed: answers come from the knowledge base alone.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app._llm import LlmError
from app.answer import AnswerResult, Final, Token
from app.api.auth import Who
from app.api.errors import ApiError, error_body
from app.api.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatMessageOut,
    ChatRequest,
    ModelList,
    ModelOut,
    Usage,
    answer_out,
    answer_text,
)
from app.service import Queued, Service, ServiceError
from ingest.store import StoreError

log = logging.getLogger("zhiku.api")

router = APIRouter(prefix="/v1", tags=["chat"])
MODEL_PREFIX = "zhiku/"


def kb_of_model(model: str) -> str:
    if not model.startswith(MODEL_PREFIX) or len(model) == len(MODEL_PREFIX):
        raise ApiError(
            404,
            "model_not_found",
            f"unknown model {model!r}: use zhiku/<knowledge base> (GET /v1/models lists them)",
            f"未知模型 {model!r}：请使用 zhiku/<知识库名>（GET /v1/models 列出全部）",
        )
    return model[len(MODEL_PREFIX) :]


def split_messages(request: ChatRequest) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last user message) and the earlier (question, answer) turns."""
    turns = [m for m in request.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ApiError(
            400,
            "invalid_request",
            "the last message must be the user's question",
            "最后一条消息必须是用户的问题",
        )
    history: list[tuple[str, str]] = []
    pending: str | None = None
    for message in turns[:-1]:
        if message.role == "user":
            if pending is not None:
                history.append((pending, ""))
            pending = message.text()
        elif pending is not None:
            history.append((pending, message.text()))
            pending = None
    if pending is not None:
        history.append((pending, ""))
    return turns[-1].text(), history


@router.get("/models", response_model=ModelList)
def list_models(request: Request, who: Who) -> ModelList:
    """The knowledge bases this key may use, as OpenAI models `zhiku/<name>`."""
    service: Service = request.app.state.service
    now = int(time.time())
    return ModelList(
        data=[ModelOut(id=f"{MODEL_PREFIX}{name}", created=now) for name in service.kb_names(who)]
    )


def _completion(model: str, result: AnswerResult, completion_id: str) -> ChatCompletion:
    tokens = int(result.timings.get("tokens", 0))
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=[ChatChoice(message=ChatMessageOut(content=answer_text(result)))],
        usage=Usage(completion_tokens=tokens, total_tokens=tokens),
        zhiku=answer_out(result),
    )


def _sse(data: dict[str, object]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _chunk(completion_id: str, model: str, delta: dict[str, object], **extra: object) -> str:
    finish = extra.pop("finish_reason", None)
    return _sse(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


async def _stream(
    events: Iterator[object], first: object, model: str, completion_id: str
) -> AsyncIterator[str]:
    """SSE chunks from answer events; the blocking iterator advances in a worker thread and
    is closed when the client goes away, which stops the generation. A failure after the 200
    becomes an `error` chunk, which the OpenAI client raises as an APIError."""
    done = object()
    streamed = False
    event: object = first
    try:
        yield _chunk(completion_id, model, {"role": "assistant", "content": ""})
        while event is not done:
            if isinstance(event, Queued):
                yield _chunk(completion_id, model, {}, zhiku={"queued": event.position})
            elif isinstance(event, Token):
                streamed = True
                yield _chunk(completion_id, model, {"content": event.text})
            elif isinstance(event, Final):
                result = event.result
                if not streamed:  # refusals decided by code, retrieval only: no tokens came
                    yield _chunk(completion_id, model, {"content": answer_text(result)})
                zhiku = answer_out(result).model_dump()
                yield _chunk(completion_id, model, {}, finish_reason="stop", zhiku=zhiku)
            event = await anyio.to_thread.run_sync(next, events, done)
    except (ServiceError, StoreError, LlmError) as exc:
        yield _sse(error_body(getattr(exc, "kind", "server_error"), exc.en, exc.zh))
    except Exception as exc:
        log.exception("chat stream %s failed", completion_id)
        en = f"internal error ({type(exc).__name__}); the server log has the details"
        yield _sse(error_body("internal_error", en, "服务器内部错误；详情见服务器日志"))
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)
    yield "data: [DONE]\n\n"


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def chat_completions(body: ChatRequest, request: Request, who: Who) -> object:
    """An answer from knowledge base `zhiku/<kb>`, with citations and the refusal flag."""
    service: Service = request.app.state.service
    kb = kb_of_model(body.model)
    # the right to read it (403), then that it exists (404), before anything starts
    service.kb_info(who, kb)
    question, history = split_messages(body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    events = service.answer(who, kb, question, history)  # Busy (503) here when the queue is full
    if not body.stream:
        result = None
        for event in events:
            if isinstance(event, Final):
                result = event.result
        assert result is not None
        if result.error_en and not result.answer:
            raise ApiError(502, "llm_failed", result.error_en, result.error_zh or result.error_en)
        return _completion(body.model, result, completion_id)
    first = next(events)  # retrieval runs (and the queue place is taken) before the 200
    return StreamingResponse(
        _stream(events, first, body.model, completion_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


__all__ = ["MODEL_PREFIX", "kb_of_model", "router", "split_messages"]
