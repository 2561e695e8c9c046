"""Who is asking: the bearer key of a `/v1` request, checked against the key store.

With no active key at all, a server bound to loopback is open to this machine (the first run
needs no setup); a server on any other address never is: `zhiku serve` refuses to start there
without a key, and if every key is revoked later, every request gets 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.errors import ApiError
from app.api.keys import ApiKey, KeyStore

_bearer = HTTPBearer(auto_error=False, description="an API key from `zhiku keys create`")


@dataclass(frozen=True)
class Caller:
    key: ApiKey | None  # None: no keys exist and the server is on loopback

    @property
    def label(self) -> str:
        return self.key.name if self.key else "local (no keys configured)"

    def allows_kb(self, kb: str) -> bool:
        return self.key is None or self.key.allows_kb(kb)

    def check_kb(self, kb: str) -> None:
        if not self.allows_kb(kb):
            raise ApiError(
                403,
                "kb_not_allowed",
                f"this API key is not allowed to use knowledge base {kb!r}",
                f"该 API 密钥无权使用知识库 {kb!r}",
            )

    def check_write(self) -> None:
        if self.key is not None and self.key.read_only:
            raise ApiError(
                403,
                "read_only_key",
                "this API key is read-only: create one without --read-only to change "
                "knowledge bases",
                "该 API 密钥为只读：修改知识库需要不带 --read-only 创建的密钥",
            )


def _unauthorized(en: str, zh: str) -> ApiError:
    return ApiError(401, "invalid_api_key", en, zh)


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    store: KeyStore = request.app.state.keys
    if credentials is None:
        if request.app.state.open_without_keys and not store.active():
            return Caller(None)
        raise _unauthorized(
            "an API key is needed: send `Authorization: Bearer <key>` (create one with "
            "`zhiku keys create --name NAME`)",
            "需要 API 密钥：请发送 `Authorization: Bearer <密钥>`"
            "（用 `zhiku keys create --name 名称` 创建）",
        )
    key = store.verify(credentials.credentials)
    if key is None:
        raise _unauthorized("this API key is unknown or revoked", "该 API 密钥不存在或已被吊销")
    return Caller(key)


def writer(found: Annotated[Caller, Depends(caller)]) -> Caller:
    found.check_write()
    return found


Reader = Annotated[Caller, Depends(caller)]
Writer = Annotated[Caller, Depends(writer)]

__all__ = ["Caller", "Reader", "Writer", "caller", "writer"]
