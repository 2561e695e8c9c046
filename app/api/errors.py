"""Errors as JSON, never a traceback: one shape for every failure, OpenAI's
(`{"error": {"message", "type", "code"}}`, which the official clients read), plus the Chinese
message; and the request size limits, enforced while the body arrives.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app._llm import LlmError
from app.service import ServiceError
from ingest.store import ModelMismatch, StoreError

log = logging.getLogger("zhiku.api")

_SERVICE_STATUS = {
    "not_found": 404,
    "conflict": 409,
    "busy": 503,
    "bad_request": 400,
    "forbidden": 403,  # app.service.Forbidden: the principal may not
    "kb_not_allowed": 403,
    "read_only_key": 403,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, en: str, zh: str) -> None:
        super().__init__(en)
        self.status = status
        self.code = code
        self.en = en
        self.zh = zh


def error_body(code: str, en: str, zh: str, **extra: object) -> dict[str, object]:
    return {"error": {"message": en, "message_zh": zh, "type": code, "code": code, **extra}}


def error_response(status: int, code: str, en: str, zh: str, **extra: object) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(error_body(code, en, zh, **extra), status_code=status, headers=headers)


def store_status(exc: StoreError) -> tuple[int, str]:
    """StoreError carries no code: its message says which case it is."""
    if isinstance(exc, ModelMismatch):
        return 409, "model_mismatch"
    if exc.en.startswith("invalid knowledge base name"):
        return 400, "invalid_kb_name"
    if "does not exist" in exc.en:
        return 404, "kb_not_found"
    if "being written by another process" in exc.en:
        return 409, "kb_busy"
    return 500, "store_error"


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        response = error_response(exc.status, exc.code, exc.en, exc.zh)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(_SERVICE_STATUS.get(exc.kind, 400), exc.kind, exc.en, exc.zh)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        status, code = store_status(exc)
        if status >= 500:
            log.error("knowledge base problem on %s: %s", request.url.path, exc.en)
        return error_response(status, code, exc.en, exc.zh)

    @app.exception_handler(LlmError)
    async def _llm(request: Request, exc: LlmError) -> JSONResponse:
        return error_response(503, "llm_unavailable", exc.en, exc.zh)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        too_large = _too_large(request)
        if too_large is not None:
            return too_large
        problems = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return error_response(
            422,
            "invalid_request",
            f"invalid request: {where}: {first['msg']}",
            f"请求无效：{where}：{first['msg']}",
            details=problems,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        too_large = _too_large(request)
        if too_large is not None:
            return too_large
        en = str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        zh = {404: "没有这个接口", 405: "该接口不支持此请求方法"}.get(exc.status_code, en)
        return error_response(exc.status_code, code, en, zh)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        too_large = _too_large(request)
        if too_large is not None:
            return too_large
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            "internal_error",
            f"internal error ({type(exc).__name__}); the server log has the details",
            f"服务器内部错误（{type(exc).__name__}）；详情见服务器日志",
        )


class _TooLarge(Exception):
    pass


def too_large_message(limit: int, upload: bool, upload_mb: float) -> tuple[str, str]:
    if upload:
        return (
            f"upload over the {upload_mb:.0f} MB limit (MAX_UPLOAD_MB): send fewer files",
            f"上传总大小超过 {upload_mb:.0f} MB 的上限（MAX_UPLOAD_MB）：请分批上传",
        )
    return (
        f"request body over the {limit // 1024} KB limit (API_MAX_JSON_KB)",
        f"请求体超过 {limit // 1024} KB 的上限（API_MAX_JSON_KB）",
    )


def _too_large(request: Request) -> JSONResponse | None:
    flagged = request.scope.get("zhiku.too_large")
    if flagged is None:
        return None
    limit, upload = flagged
    upload_mb = limit / 2**20 - 1
    return error_response(413, "request_too_large", *too_large_message(limit, upload, upload_mb))


class BodyLimit:
    """Refuses a request body over its limit (413), from Content-Length when sent and by
    counting the bytes as they arrive otherwise: multipart uploads may be `max_upload` bytes
    (the app's MAX_UPLOAD_MB plus room for the multipart framing), everything else `max_json`."""

    def __init__(self, app: ASGIApp, max_json: int, max_upload: int, upload_mb: float) -> None:
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload
        self.upload_mb = upload_mb

    async def _refuse(self, send: Send, limit: int, upload: bool) -> None:
        en, zh = too_large_message(limit, upload, self.upload_mb)
        body = json.dumps(error_body("request_too_large", en, zh), ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        upload = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_upload if upload else self.max_json
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit, upload)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI turns any error while reading the body into a 400; the flag
                    # lets the handlers answer 413 instead
                    scope["zhiku.too_large"] = (limit, upload)
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit, upload)


__all__ = ["ApiError", "BodyLimit", "error_body", "error_response", "install_handlers"]
