"""zhiku's HTTP API (`zhiku serve`): FastAPI routers over the one `Service`, API keys, and the
MCP server mounted at `/mcp`.

    app = create_app(settings)            # what `zhiku serve` runs under uvicorn
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.access import Principal, is_loopback
from app.api import admin, chat, conversations, library, sources
from app.api.auth import Who, caller
from app.api.errors import ApiError, BodyLimit, error_response, install_handlers
from app.api.jobs import Jobs
from app.api.mcp import build_mcp
from app.api.schemas import Health, StatusOut
from app.service import Service
from app.sources.scheduler import Scheduler
from app.state.keys import KeyStore
from ingest.settings import Settings

VERSION = "0.1.0"
_mcp_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "zhiku_mcp_caller", default=None
)


class _McpAuth:
    """The API key check in front of the MCP mount (its requests are not FastAPI routes)."""

    def __init__(self, app: ASGIApp | None) -> None:
        self.app = app  # set when the app starts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:  # the app's lifespan has not started the MCP session manager
            response = error_response(503, "mcp_not_started", "MCP is not running", "MCP 未启动")
            await response(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        credentials = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
            if scheme.lower() == "bearer" and token.strip()
            else None
        )
        try:
            found = caller(request, credentials)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.en, exc.zh)
            await response(scope, receive, send)
            return
        reset = _mcp_caller.set(found)
        try:
            await self.app(scope, receive, send)
        finally:
            _mcp_caller.reset(reset)


def _mcp_principal() -> Principal:
    """Who is calling an MCP tool over HTTP (set by `_McpAuth` for the request)."""
    found = _mcp_caller.get()
    if found is None:  # not through _McpAuth: nobody
        raise PermissionError("no API key checked for this MCP request")
    return found


def create_app(
    settings: Settings,
    service: Service | None = None,
    open_without_keys: bool = True,
    host: str = "127.0.0.1",
) -> FastAPI:
    """The API over `service` (one is made from `settings` if not given). `open_without_keys`:
    with no active key, requests need none (only for a server bound to loopback)."""
    service = service or Service(settings)
    jobs = Jobs(service)
    mcp = build_mcp(service, who=_mcp_principal)
    mcp_route = _McpAuth(None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A session manager runs once: each start (a test client may start the app again)
        # gets a fresh one. On loopback the SDK checks Host and Origin against DNS rebinding;
        # elsewhere the keys guard it.
        mcp_app = mcp.streamable_http_app(stateless_http=True, host=host)
        mcp_route.app = next(
            r for r in mcp_app.routes if getattr(r, "path", None) == "/mcp"
        ).endpoint  # type: ignore[attr-defined]
        app.state.scheduler.start()
        async with mcp.session_manager.run():
            yield
        app.state.scheduler.stop(timeout=0)
        service.close()  # the knowledge bases reopen on the next request, if any

    app = FastAPI(
        title="zhiku 知库",
        version=VERSION,
        description=(
            "A local knowledge base that answers from your own documents with checkable "
            "citations. `/v1/chat/completions` is OpenAI-compatible (model `zhiku/<kb>`); "
            "citations and the refusal flag are in the `zhiku` field. Every `/v1` request "
            "needs `Authorization: Bearer <key>` (`zhiku keys create`)."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.jobs = jobs
    # sources on a schedule are synced while the server runs, as in the web app
    app.state.scheduler = Scheduler(settings, service.embedder, service=service)
    app.state.keys = KeyStore(settings)
    app.state.open_without_keys = open_without_keys
    install_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_json=settings.api_max_json_kb * 1024,
        max_upload=int((settings.max_upload_mb + 1) * 2**20),
        upload_mb=settings.max_upload_mb,
    )

    @app.get("/health", response_model=Health, tags=["status"])
    def health() -> Health:
        """Liveness: the server answers (no key needed)."""
        return Health()

    @app.get("/v1/status", response_model=StatusOut, tags=["status"])
    def status(request: Request, who: Who) -> StatusOut:
        """The LLM backend and model, the embedding model, counts (of the knowledge bases the
        caller may read), the LLM queue."""
        data = service.status(who)
        label = who.label if who.person_id is not None or who.key_name else "local (no keys)"
        return StatusOut(**data, caller=label)  # type: ignore[arg-type]

    app.include_router(chat.router)
    app.include_router(library.router)
    app.include_router(sources.router)
    app.include_router(conversations.router)
    app.include_router(admin.router)
    # the SDK's endpoint routed at /mcp itself: a mount would answer /mcp with a redirect to
    # /mcp/, which MCP clients do not follow
    app.router.routes.append(Route("/mcp", endpoint=mcp_route, include_in_schema=False))
    return app


__all__ = ["create_app", "is_loopback"]
