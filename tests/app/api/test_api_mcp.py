"""The MCP server through the official `mcp` client: over stdio (`zhiku mcp`, as an editor or
Claude Desktop starts it) and over streamable HTTP at /mcp of `zhiku serve`, behind the keys."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from conftest import ANSWERED, OFF_TOPIC, QUOTED, QUOTED_REPLY, ZHIKU, Served, create_key
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.timeout(600)  # the shared server starts in the first test

TOOLS = {"search", "ask", "list_knowledge_bases", "get_passage", "list_documents"}


def result_of(called: Any) -> Any:
    assert not called.is_error, called.content
    if called.structured_content is not None:
        data = called.structured_content
        return data.get("result", data) if isinstance(data, dict) else data
    return json.loads(called.content[0].text)


async def test_stdio_lists_tools_searches_and_answers_with_citations(served: Served) -> None:
    params = StdioServerParameters(command=ZHIKU, args=["mcp"], env=served.env, cwd=str(served.cwd))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools >= TOOLS

        found = result_of(await session.call_tool("search", {"query": ANSWERED, "k": 2}))
        assert found["passages"][0]["file"] == "city.txt"
        assert {"score", "dense_score", "keyword_score"} <= set(found["passages"][0])

        answered = result_of(await session.call_tool("ask", {"question": ANSWERED}))
        assert answered["refused"] is False and "桂花" in answered["answer"]
        assert answered["citations"][0]["file"] == "city.txt"
        assert "市花是桂花" in answered["citations"][0]["quote"]

        quoted = result_of(await session.call_tool("ask", {"question": QUOTED}))
        assert quoted["answer"] == QUOTED_REPLY + "[1]", "the answer alone"
        assert "43.3 公里" in quoted["evidence"][0]["text"] and quoted["evidence"][0]["marker"] == 1

        refused = result_of(await session.call_tool("ask", {"question": OFF_TOPIC}))
        assert refused["refused"] is True
        assert refused["refusal_reason"] == "no_relevant_passage"

        chunk_id = found["passages"][0]["chunk_id"]
        passage = result_of(await session.call_tool("get_passage", {"chunk_id": chunk_id}))
        assert "桂花" in passage["text"]
        kbs = result_of(await session.call_tool("list_knowledge_bases", {}))
        assert {"default", "other"} <= {k["name"] for k in kbs}

        docs = result_of(await session.call_tool("list_documents", {"kb": "other"}))
        text = await session.read_resource(docs[0]["uri"])
        assert "带薪年假" in text.contents[0].text


async def call_http(served: Served, key: str, tool: str, arguments: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{served.url}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool(tool, arguments)


async def test_http_mount_needs_a_key_and_keeps_its_scope(served: Served) -> None:
    found = result_of(await call_http(served, served.admin, "search", {"query": ANSWERED}))
    assert found["passages"][0]["file"] == "city.txt"

    assert httpx2.post(f"{served.url}/mcp", json={}).status_code == 401

    scoped = create_key(served.env, served.cwd, "mcp-hr", "--kb", "other")
    denied = await call_http(served, scoped, "search", {"query": ANSWERED, "kb": "default"})
    assert denied.is_error
    assert "not allowed" in denied.content[0].text
    kbs = result_of(await call_http(served, scoped, "list_knowledge_bases", {}))
    assert [k["name"] for k in kbs] == ["other"]
