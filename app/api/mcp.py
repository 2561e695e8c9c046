"""The knowledge bases as an MCP server (the official `mcp` SDK's `MCPServer`): over stdio with
`zhiku mcp`, and over streamable HTTP at `/mcp` under `zhiku serve` (behind the same API keys).

Tools: `search`, `ask` (the answer, its evidence, citations and refusal flag),
`list_knowledge_bases`, `get_passage`, `list_documents`, and the caller's conversations:
`list_conversations`, `get_conversation` (its turns, citations and feedback as data),
`set_feedback` (the caller's verdict on an answer of their own conversation); every
document is a resource, `zhiku://<kb>/documents/<doc_id>`, and every conversation one as
Markdown, `zhiku://<kb>/conversations/<id>`. No tool deletes a conversation: an agent should not
lose a person's history by a misread instruction (the API and the CLI do it). Every tool goes
through the one `Service`, so an answer here is the answer everywhere, and so are the rights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from app._conversations import Feedback
from app.access import Principal
from app.api.conversations import conversation_detail, conversation_out, set_feedback
from app.api.schemas import (
    answer_out,
    answer_text,
    chunk_out,
    document_out,
    hit_out,
    kb_out,
)
from app.service import Service, ServiceError
from ingest.store import StoreError, validate_kb_name

F = TypeVar("F", bound=Callable[..., Any])

INSTRUCTIONS = (
    "zhiku (知库) answers from the user's own documents, with checkable citations. Use `ask` for "
    "an answer with numbered citations (refused=true means the knowledge base does not hold the "
    "answer: say so rather than guess), `search` for raw passages with scores, `get_passage` to "
    "read one passage whole, and the documents as resources."
)


def _told(error: type[Exception]) -> Callable[[F], F]:
    """A refusal the user can act on (unknown knowledge base, wrong key, ...) reaches the
    client with its message; the SDK shows anything else as a bare crash."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (StoreError, ServiceError, PermissionError) as exc:
                raise error(str(exc)) from exc

        return run  # type: ignore[return-value]

    return wrap


def build_mcp(service: Service, who: Callable[[], Principal] | None = None) -> MCPServer:
    """The MCP server over `service`. `who()` is the principal of the current call (the HTTP
    mount gives the API key's, per request); without it, the local user (stdio is the user's
    own process, like the CLI). The service checks every call's rights."""
    principal = who or (lambda: Principal.local("mcp"))

    def check(kb: str | None) -> str:
        return validate_kb_name(kb or service.settings.default_kb)

    server = MCPServer("zhiku", instructions=INSTRUCTIONS)

    @server.tool()
    @_told(ToolError)
    def list_knowledge_bases() -> list[dict[str, Any]]:
        """The knowledge bases: name, documents, chunks, embedding model."""
        return [kb_out(k).model_dump() for k in service.knowledge_bases(principal())]

    @server.tool()
    @_told(ToolError)
    def search(query: str, kb: str | None = None, k: int = 5) -> dict[str, Any]:
        """Hybrid search in a knowledge base (default: the default one): the best passages,
        each with its document, page, text and dense, keyword and fused scores."""
        name = check(kb)
        hits = service.search(principal(), name, query, max(1, min(k, 50)))
        return {"kb": name, "passages": [hit_out(h).model_dump() for h in hits]}

    @server.tool()
    @_told(ToolError)
    def ask(question: str, kb: str | None = None) -> dict[str, Any]:
        """Answer a question from a knowledge base. The answer's [n] markers are the
        citations (document, page, quoted span, offsets); `evidence` holds the source
        sentences quoted under the answer (not part of it); refused=true with refusal_reason
        when the knowledge base does not hold the answer."""
        name = check(kb)
        result = service.ask(principal(), name, question)
        out = answer_out(result)
        return {
            "answer": answer_text(result),
            "evidence": [q.model_dump() for q in out.evidence],
            "citations": [c.model_dump() for c in out.citations],
            "refused": out.refused,
            "refusal_reason": out.refusal_reason,
            "retrieval_only": out.retrieval_only,
            "backend": out.backend,
        }

    @server.tool()
    @_told(ToolError)
    def get_passage(chunk_id: int, kb: str | None = None) -> dict[str, Any]:
        """One passage (chunk) whole, by the chunk_id that search and ask return."""
        name = check(kb)
        return chunk_out(service.passage(principal(), name, chunk_id)).model_dump()

    @server.tool()
    @_told(ToolError)
    def list_documents(kb: str | None = None) -> list[dict[str, Any]]:
        """The documents of a knowledge base; each is the resource zhiku://<kb>/documents/<id>."""
        name = check(kb)
        return [
            {**document_out(d).model_dump(), "uri": f"zhiku://{name}/documents/{d.doc_id}"}
            for d in service.documents(principal(), name)
        ]

    @server.tool()
    @_told(ToolError)
    def list_conversations(kb: str | None = None) -> list[dict[str, Any]]:
        """The caller's own conversations with a knowledge base, newest first; each is also
        the Markdown resource zhiku://<kb>/conversations/<id>."""
        name = check(kb)
        return [
            {**conversation_out(c).model_dump(), "uri": f"zhiku://{name}/conversations/{c.id}"}
            for c in service.conversations(principal(), name)
        ]

    @server.tool()
    @_told(ToolError)
    def get_conversation(conversation_id: str, kb: str | None = None) -> dict[str, Any]:
        """One of the caller's conversations: every turn's question, answer (with its
        citations, evidence and refusal flag) and feedback. Another's conversation is not
        found, as one that does not exist (an admin may read it; the read is audited)."""
        name = check(kb)
        opened = service.open_conversation(principal(), name, conversation_id)
        return conversation_detail(name, opened).model_dump()

    @server.tool(name="set_feedback")
    @_told(ToolError)
    def feedback(
        conversation_id: str,
        seq: int,
        score: int | None,
        note: str = "",
        correction: str = "",
        kb: str | None = None,
    ) -> dict[str, Any]:
        """Say whether the answer of turn `seq` of one of the caller's own conversations is
        right: score 1 (👍) or 0 (👎, with the right answer in `correction`), a note; null
        takes the feedback back. Only the author may; another's conversation is not found."""
        if score not in (0, 1, None):
            raise ToolError("score must be 1 (right), 0 (wrong) or null (take it back)")
        verdict = None if score is None else Feedback(score, note[:2000], correction[:8000])
        name = check(kb)
        return set_feedback(service, principal(), name, conversation_id, seq, verdict).model_dump()

    @server.resource(
        "zhiku://{kb}/conversations/{conversation_id}",
        name="conversation",
        description="a conversation exported as Markdown (answers, evidence, sources)",
        mime_type="text/markdown",
    )
    @_told(ResourceError)
    def conversation(kb: str, conversation_id: str) -> str:
        return service.export_conversation(principal(), check(kb), conversation_id)

    @server.resource(
        "zhiku://{kb}/documents/{doc_id}",
        name="document",
        description="a document's text as stored in the knowledge base",
        mime_type="text/plain",
    )
    @_told(ResourceError)
    def document(kb: str, doc_id: str) -> str:
        return service.document_text(principal(), check(kb), doc_id)

    return server


__all__ = ["INSTRUCTIONS", "build_mcp"]
