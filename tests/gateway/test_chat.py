"""POST /v1/chat/completions through the official SDK (sync and async), for the OpenAI-
compatible, Anthropic and Gemini families; responses and chunks in OpenAI's exact shapes."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.fakeprovider import anthropic as fake_anthropic
from tests.fakeprovider import gemini as fake_gemini
from tests.fakeprovider.openai import CHAT_PIECES, CHAT_TEXT, CHAT_USAGE, TOOL_CALL, VISION_TEXT

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
HI = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_it_answers_a_chat_completion_in_openais_shape(client, cast, fake_provider):
    completion = client.chat.completions.create(
        model="gpt-4o-mini@OpenAI", messages=HI, temperature=0.2, max_tokens=50, seed=7
    )

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini@OpenAI"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == CHAT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == CHAT_USAGE["total_tokens"]
    upstream = fake_provider.requests[-1]
    assert upstream.bearer == "sk-gateway-openai-0001"
    assert (upstream.json["temperature"], upstream.json["max_tokens"]) == (0.2, 50)
    assert upstream.json["seed"] == 7
    [event] = cast.events(1)
    assert (event.llm_name, event.total_tokens, event.outcome) == ("gpt-4o-mini", 18, "ok")


def test_it_names_models_by_bare_name_and_default(client, cast):
    for name in ("gpt-4o-mini", "default"):
        completion = client.chat.completions.create(model=name, messages=HI)
        assert completion.model == "gpt-4o-mini@OpenAI"


def test_it_passes_tools_and_returns_tool_calls(client, fake_provider):
    completion = client.chat.completions.create(
        model="fake-tools@OpenAI", messages=HI, tools=[WEATHER_TOOL], tool_choice="auto"
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type) == (TOOL_CALL["id"], "function")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert fake_provider.requests[-1].json["tools"] == [WEATHER_TOOL]


def test_it_sends_images_to_a_vision_model(client, fake_provider):
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]

    completion = client.chat.completions.create(model="gpt-4o@OpenAI", messages=messages)

    assert completion.choices[0].message.content == VISION_TEXT
    assert fake_provider.requests[-1].json["messages"][0]["content"][1] == image


def test_it_streams_chunks_with_the_usage_last(client, cast):
    stream = client.chat.completions.create(
        model="gpt-4o-mini@OpenAI",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == CHAT_PIECES
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == CHAT_USAGE["total_tokens"]
    [event] = cast.events(1)
    assert (event.total_tokens, event.estimated, event.outcome) == (18, False, "ok")


def test_it_ends_a_stream_with_done_and_no_usage_unless_asked(cast):
    import httpx

    body = {"model": "gpt-4o-mini@OpenAI", "messages": HI, "stream": True}
    headers = {"Authorization": f"Bearer {cast.token}"}
    with httpx.stream("POST", f"{cast.url}/chat/completions", json=body, headers=headers) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all("usage" not in payload for payload in payloads)


def test_it_streams_tool_call_fragments(client):
    stream = client.chat.completions.create(
        model="fake-tools@OpenAI", messages=HI, tools=[WEATHER_TOOL], stream=True
    )
    fragments = [
        call
        for chunk in stream
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or ()
    ]

    assert fragments[0].id == TOOL_CALL["id"]
    assert fragments[0].function.name == "get_weather"
    arguments = "".join(fragment.function.arguments or "" for fragment in fragments)
    assert json.loads(arguments) == {"city": "Paris"}


def test_the_async_client_calls_and_streams(aclient, cast):
    async def run():
        completion = await aclient.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini@OpenAI",
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        vectors = await aclient.embeddings.create(model="default", input="hello")
        await aclient.close()
        return completion, chunks, vectors

    completion, chunks, vectors = asyncio.run(run())

    assert completion.choices[0].message.content == CHAT_TEXT
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == CHAT_TEXT
    assert chunks[-1].usage.total_tokens == CHAT_USAGE["total_tokens"]
    assert len(vectors.data[0].embedding) == 3
    assert [event.total_tokens for event in cast.events(3)] == [18, 18, 5]


@pytest.mark.parametrize(
    ("model", "text", "usage"),
    [
        ("claude-sonnet-4-5@Anthropic", fake_anthropic.CHAT_TEXT, fake_anthropic.USAGE),
        ("gemini-2.5-flash@Gemini", fake_gemini.CHAT_TEXT, fake_gemini.USAGE),
    ],
)
def test_other_families_answer_in_openais_shape(client, cast, model, text, usage):
    total = sum(v for k, v in usage.items() if k in ("input_tokens", "output_tokens"))
    total = total or usage["totalTokenCount"]

    completion = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, *HI], max_tokens=100
    )
    stream = client.chat.completions.create(
        model=model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert completion.model == model
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == total
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert chunks[-1].usage.total_tokens == total
    assert [event.total_tokens for event in cast.events(2)] == [total, total]


def test_tools_reach_anthropic_in_its_own_shape(client, fake_provider):
    completion = client.chat.completions.create(
        model="claude-sonnet-4-5@Anthropic", messages=HI, tools=[WEATHER_TOOL]
    )

    sent = fake_provider.requests[-1].json["tools"]
    assert sent[0]["name"] == "get_weather"
    assert sent[0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    assert completion.choices[0].message is not None


def test_a_stream_cut_midway_ends_with_an_error_event(client, cast, fake_provider):
    import openai

    from .conftest import configure

    configure(cast.tenant, fake_provider, [("fake-drop", "OpenAI", "chat", "/v1", "sk-x")])
    stream = client.chat.completions.create(model="fake-drop@OpenAI", messages=HI, stream=True)
    received = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)

    assert received  # what arrived before the cut was forwarded
    assert "CONNECTION_ERROR" in str(caught.value)
    [event] = cast.events(1)
    assert (event.llm_name, event.outcome, event.error_code) == (
        "fake-drop",
        "error",
        "CONNECTION_ERROR",
    )
