"""The official `openai` client against a running `zhiku serve`: models, answers with their
citations (non-streaming and streaming), refusals as a flag, chat history."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ANSWERED, MODEL_REFUSES, OFF_TOPIC, QUOTED, QUOTED_REPLY, Served
from openai import NotFoundError, OpenAI

pytestmark = pytest.mark.timeout(600)  # the shared server starts in the first test


@pytest.fixture(scope="module")
def client(served: Served) -> OpenAI:
    return OpenAI(base_url=f"{served.url}/v1", api_key=served.admin, max_retries=0)


def zhiku_of(obj: Any) -> dict[str, Any]:
    extra = obj.model_extra or {}
    assert "zhiku" in extra, f"no zhiku field in {obj}"
    return extra["zhiku"]


def test_models_list_names_every_knowledge_base(client: OpenAI) -> None:
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["zhiku/default", "zhiku/other"]


def test_an_answer_carries_its_citations(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="zhiku/default", messages=[{"role": "user", "content": ANSWERED}]
    )
    text = completion.choices[0].message.content
    assert text is not None and "桂花" in text and "[1]" in text
    zhiku = zhiku_of(completion)
    assert zhiku["refused"] is False and zhiku["refusal_reason"] is None
    assert zhiku["answer"] == text
    citation = zhiku["citations"][0]
    assert citation["number"] == 1 and citation["file"] == "city.txt"
    assert "市花是桂花" in citation["quote"]
    # the offsets point at the quote in the document's page text
    assert citation["span_end"] - citation["span_start"] == len(citation["quote"])
    assert citation["doc_id"] and citation["title"] == "杭州概况"


def test_a_stream_ends_with_the_citations(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="zhiku/default", messages=[{"role": "user", "content": ANSWERED}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "桂花" in text
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    zhiku = zhiku_of(final)
    assert zhiku["refused"] is False
    assert zhiku["citations"][0]["file"] == "city.txt"
    assert "[1]" in zhiku["answer"]
    assert all("zhiku" not in (c.model_extra or {}) for c in chunks[:-1])


def test_the_content_is_the_answer_and_the_evidence_comes_apart(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="zhiku/default", messages=[{"role": "user", "content": QUOTED}]
    )
    text = completion.choices[0].message.content
    zhiku = zhiku_of(completion)
    assert text == zhiku["answer"] == QUOTED_REPLY + "[1]", "the answer alone, no quote in it"
    [quote] = zhiku["evidence"]
    assert quote["text"].replace("，", ",").startswith("2 号线于 2014 年开通,全长 43.3 公里")
    [citation] = [c for c in zhiku["citations"] if c["number"] == quote["marker"]]
    assert (quote["span_start"], quote["span_end"]) == (
        citation["span_start"],
        citation["span_end"],
    )
    assert quote["doc_id"] == citation["doc_id"] and quote["title"] == "杭州概况"


def test_a_stream_streams_the_answer_and_ends_with_its_evidence(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="zhiku/default", messages=[{"role": "user", "content": QUOTED}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    zhiku = zhiku_of(chunks[-1])
    assert text == zhiku["answer"] == QUOTED_REPLY + "[1]", "only the answer is streamed"
    assert "2014" not in text and "2014" in zhiku["evidence"][0]["text"]


def test_nothing_in_the_knowledge_base_is_a_refusal_flag(client: OpenAI, served: Served) -> None:
    asked = len(served.fake.chat_requests)
    completion = client.chat.completions.create(
        model="zhiku/default", messages=[{"role": "user", "content": OFF_TOPIC}]
    )
    zhiku = zhiku_of(completion)
    assert zhiku["refused"] is True
    assert zhiku["refusal_reason"] == "no_relevant_passage"
    assert zhiku["citations"] == []
    assert "知识库中没有找到相关内容" in (completion.choices[0].message.content or "")
    assert len(served.fake.chat_requests) == asked  # decided by code: the model was not asked


def test_the_models_own_refusal_is_flagged_too_when_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="zhiku/default", messages=[{"role": "user", "content": MODEL_REFUSES}], stream=True
    )
    zhiku = zhiku_of(list(stream)[-1])
    assert zhiku["refused"] is True
    # the model's refusal, or one code decided before asking it: the flag is what a client reads
    assert zhiku["refusal_reason"] in (
        "model_refused",
        "name_not_found",
        "no_relevant_passage",
        "question_not_covered",
    )
    assert zhiku["citations"] == []


def test_earlier_messages_are_the_history(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="zhiku/default",
        messages=[
            {"role": "system", "content": "you are helpful"},
            {"role": "user", "content": "杭州的市树是什么？"},
            {"role": "assistant", "content": "杭州的市树是香樟[1]。"},
            {"role": "user", "content": "那市花呢？"},
        ],
    )
    zhiku = zhiku_of(completion)
    assert zhiku["standalone_question"] == ANSWERED  # rewritten from the history
    assert "桂花" in zhiku["answer"]


def test_an_unknown_model_is_a_404_the_client_understands(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": ANSWERED}]
        )
    assert "zhiku/<knowledge base>" in caught.value.message
