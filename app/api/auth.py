"""Who is asking: the bearer key of a `/v1` request, turned into the `Principal` the service
checks (`app.access`). The routes check nothing themselves: the service does.

A key belongs to a person and narrows that person's rights (its knowledge bases, read-only); a
key made before accounts existed has no owner and keeps the rights it was made with. With no
active key and no accounts at all, a server bound to loopback is open to this machine as its one
local user (the first run needs no setup); a server on any other address never is: `zhiku serve`
refuses to start there without a key, and once accounts or keys exist every request needs one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.access import Principal
from app.api.errors import ApiError
from app.service import Service
from app.state.accounts import Accounts
from app.state.keys import KeyStore

_bearer = HTTPBearer(auto_error=False, description="an API key from `zhiku keys create`")


def _unauthorized(en: str, zh: str) -> ApiError:
    return ApiError(401, "invalid_api_key", en, zh)


def _origin(request: Request) -> str:
    return request.client.host if request.client else ""


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    service: Service = request.app.state.service
    store: KeyStore = request.app.state.keys
    origin = _origin(request)
    if credentials is None:
        if (
            request.app.state.open_without_keys
            and not store.active()
            and not Accounts(service.settings).exist()
        ):
            return Principal.local(origin)
        raise _unauthorized(
            "an API key is needed: send `Authorization: Bearer <key>` (create one with "
            "`zhiku keys create --name NAME`)",
            "需要 API 密钥：请发送 `Authorization: Bearer <密钥>`"
            "（用 `zhiku keys create --name 名称` 创建）",
        )
    key = store.verify(credentials.credentials)
    if key is None:
        service.audit("(unknown key)", "api_key_rejected", outcome="refused", origin=origin)
        raise _unauthorized("this API key is unknown or revoked", "该 API 密钥不存在或已被吊销")
    if key.owner_id is None:
        owner = Principal.local(origin)
    else:
        found = Accounts(service.settings).current(key.owner_id, origin)
        if found is None:
            service.audit(key.name, "api_key_rejected", outcome="refused", origin=origin)
            raise _unauthorized(
                "the owner of this API key is disabled or deleted",
                "该 API 密钥的所有者已被停用或删除",
            )
        owner = found
    return owner.narrowed(key.name, key.kbs, key.read_only)


Who = Annotated[Principal, Depends(caller)]
# kept for the routes' signatures: reading and writing are both checked by the service
Reader = Who
Writer = Who

__all__ = ["Reader", "Who", "Writer", "caller"]
