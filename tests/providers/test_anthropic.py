import asyncio
import base64
import json

import pytest

from providers.adapters.anthropic import AnthropicChat, AnthropicImage2Text
from providers.errors import (
    AuthError,
    ContentFilteredError,
    GenericProviderError,
    InvalidRequestError,
    MaxRetriesExceededError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnsupportedModelError,
)
from providers.media import DEFAULT_DESCRIBE_PROMPT, image_data_url
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.anthropic import (
    CHAT_PIECES,
    CHAT_TEXT,
    PATH,
    TOOL_ARGUMENTS,
    TOOL_USE,
    VISION_TEXT,
)

from .conftest import error_chain

KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-sonnet-4-5"
HISTORY = [{"role": "user", "content": "hi"}]
REPORTED = Usage(21, 7)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CALL = {
    "id": "toolu_fake_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS},
}


def tokens(*texts):
    return sum(num_tokens_from_string(text, "cl100k_base") for text in texts)


def estimated(prompt_texts, completion):
    return Usage(tokens(*prompt_texts), tokens(completion), estimated=True)


def partial(*pieces):
    """The exact input count from message_start plus the output received, estimated."""
    return Usage(21, tokens(*pieces), estimated=True)


def anthropic_sse(*events):
    chunks = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    return Reply.stream(chunks, "text/event-stream")


@pytest.fixture
def claude(fake_provider, make_adapter):
    def make(model_name=MODEL, model_type="chat", api_key=KEY, **options):
        return make_adapter(
            model_type,
            factory="Anthropic",
            model_name=model_name,
            api_key=api_key,
            base_url=options.pop("base_url", fake_provider.url("/anthropic")),
            **options,
        )

    return make


# --- request and result ---


def test_it_sends_a_messages_request(fake_provider, claude):
    claude().chat(
        HISTORY,
        system="Be brief.",
        gen_conf={"temperature": 0.2, "max_tokens": 64, "presence_penalty": 0.1, "quote": 1},
    )
    request = fake_provider.last_request
    assert request.path == PATH
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be brief.",
        "temperature": 0.2,
    }


def test_it_always_sends_max_tokens(fake_provider, claude):
    claude().chat(HISTORY)
    assert fake_provider.last_request.json["max_tokens"] == 4096
    claude().chat(HISTORY, gen_conf={"max_completion_tokens": 10})
    assert fake_provider.last_request.json["max_tokens"] == 10


def test_it_keeps_the_temperature_when_top_p_is_also_given(fake_provider, claude):
    # Claude 4 models refuse both at once; RAGFlow's gen_conf carries both.
    claude().chat(HISTORY, gen_conf={"temperature": 0.3, "top_p": 0.9, "stop": "END"})
    body = fake_provider.last_request.json
    assert body["temperature"] == 0.3
    assert "top_p" not in body
    assert body["stop_sequences"] == ["END"]


def test_it_moves_system_messages_out_of_the_history(fake_provider, claude):
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ]
    claude().chat(history, system="Answer in French.")
    body = fake_provider.last_request.json
    assert body["system"] == "Answer in French.\n\nYou are terse."
    assert body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "and now?"},
    ]


def test_it_returns_the_text_and_the_reported_usage(claude):
    result = claude().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert not result.usage.estimated
    assert result.finish_reason == "stop"
    assert result.tool_calls is None


def test_cache_reads_and_writes_count_as_prompt_tokens(claude):
    result = claude(model_name="fake-cache").chat(HISTORY)
    assert result.usage == Usage(5 + 100 + 1000, 7)


def test_it_estimates_usage_when_the_provider_reports_none(claude):
    result = claude(model_name="fake-nousage").chat(HISTORY, system="Be brief.")
    assert result.usage == estimated(["Be brief.", "hi"], CHAT_TEXT)
    assert result.usage.estimated


def test_a_refusal_is_a_content_filter_error(claude):
    with pytest.raises(ContentFilteredError, match="refusal"):
        claude(model_name="fake-refusal").chat(HISTORY)


# --- tools ---


def test_it_converts_tools_and_returns_openai_tool_calls(fake_provider, claude):
    result = claude(model_name="fake-tools").chat(
        HISTORY, tools=TOOLS, gen_conf={"tool_choice": "required"}
    )
    body = fake_provider.last_request.json
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": TOOLS[0]["function"]["parameters"],
            "description": "The weather in a city.",
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert result.tool_calls == [TOOL_CALL]
    assert result.text == "Let me check."
    assert result.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("gen_conf", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"type": "tool", "name": "get_weather"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_it_converts_tool_choices(fake_provider, claude, gen_conf, expected):
    claude().chat(HISTORY, tools=TOOLS, gen_conf=gen_conf)
    assert fake_provider.last_request.json["tool_choice"] == expected


def test_it_sends_tool_calls_and_results_back(fake_provider, claude):
    second_call = {
        "id": "toolu_fake_2",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
    }
    history = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, second_call]},
        {"role": "tool", "tool_call_id": "toolu_fake_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "toolu_fake_2", "content": "Rainy"},
    ]
    result = claude().chat(history, tools=TOOLS)
    assert result.text == CHAT_TEXT
    assert fake_provider.last_request.json["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                TOOL_USE,
                {
                    "type": "tool_use",
                    "id": "toolu_fake_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_fake_1", "content": "Sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_fake_2", "content": "Rainy"},
            ],
        },
    ]


def test_it_refuses_tool_arguments_that_are_not_an_object(fake_provider, claude):
    call = {"id": "toolu_x", "type": "function", "function": {"name": "f", "arguments": "[1"}}
    history = [HISTORY[0], {"role": "assistant", "content": None, "tool_calls": [call]}]
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        claude().chat(history)
    assert fake_provider.requests == []


# --- images ---


def test_it_describes_an_image_as_a_base64_block(fake_provider, claude):
    result = claude(model_type="image2text").describe(PNG)
    assert result.text == VISION_TEXT
    assert result.usage == REPORTED
    image, prompt = fake_provider.last_request.json["messages"][0]["content"]
    assert image == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(PNG).decode(),
        },
    }
    assert prompt == {"type": "text", "text": DEFAULT_DESCRIBE_PROMPT}


def test_it_sends_image_urls_and_bare_base64(fake_provider, claude):
    history = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": {"url": base64.b64encode(PNG).decode()}},
                {"type": "text", "text": "Compare"},
            ],
        }
    ]
    assert claude(model_type="image2text").chat(history).text == VISION_TEXT
    first, second, _ = fake_provider.last_request.json["messages"][0]["content"]
    assert first["source"] == {"type": "url", "url": "https://example.com/cat.png"}
    assert second["source"]["media_type"] == "image/jpeg"


# --- streaming ---


def test_it_streams_text_deltas_and_the_final_usage(fake_provider, claude):
    stream = claude().chat_streamly(HISTORY, system="Be brief.")
    assert list(stream) == CHAT_PIECES
    body = fake_provider.last_request.json
    assert body["stream"] is True
    assert body["system"] == "Be brief."
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED
    assert not stream.usage.estimated
    assert stream.done
    assert stream.error is None
    assert stream.finish_reason == "stop"


def test_the_last_cumulative_output_count_wins(claude):
    stream = claude(model_name="fake-cumulative-usage").chat_streamly(HISTORY)
    list(stream)
    # Two message_delta events said 3 and then 7 output tokens so far: 7, not 10.
    assert stream.usage == REPORTED


def test_a_stream_closed_early_keeps_the_reported_input_tokens(claude):
    stream = claude().chat_streamly(HISTORY)
    assert next(stream) == "Hello"
    assert next(stream) == " from"
    stream.close()
    assert stream.closed
    assert not stream.done
    assert list(stream) == []
    assert stream.text == "Hello from"
    assert stream.usage == partial("Hello", " from")


def test_an_error_event_midway_raises_and_keeps_usage(claude, sleeps):
    stream = claude(model_name="fake-overloaded-midway").chat_streamly(HISTORY)
    received = []
    with pytest.raises(ServerError, match="Overloaded") as caught:
        for delta in stream:
            received.append(delta)
    assert received == ["Hello", " from"]
    assert stream.error is caught.value
    assert caught.value.retryable
    assert sleeps == []  # nothing is retried once text reached the caller
    assert stream.closed
    assert not stream.done
    assert stream.usage == partial("Hello", " from")


def test_a_dropped_stream_raises_and_keeps_usage(claude):
    stream = claude(model_name="fake-drop").chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="closed the connection"):
        list(stream)
    assert stream.text == "Hello from"
    assert stream.usage == partial("Hello", " from")


def test_a_stream_ending_without_message_stop_is_cut_off(fake_provider, claude):
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi"},
    }
    fake_provider.script(PATH, [anthropic_sse(start, delta)])
    stream = claude().chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="message_stop"):
        list(stream)
    assert stream.text == "Hi"
    assert stream.usage == Usage(3, tokens("Hi"), estimated=True)


def test_it_reports_a_malformed_stream_event(fake_provider, claude):
    fake_provider.script(PATH, [Reply.stream([b'event: message_start\ndata: {"type\n\n'])])
    with pytest.raises(GenericProviderError, match="not JSON"):
        list(claude().chat_streamly(HISTORY))


def test_it_streams_tool_calls(claude):
    stream = claude(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [TOOL_CALL]
    assert stream.finish_reason == "tool_calls"
    assert stream.usage == REPORTED


def test_a_streamed_refusal_raises_with_usage(claude):
    stream = claude(model_name="fake-refusal").chat_streamly(HISTORY)
    with pytest.raises(ContentFilteredError):
        list(stream)
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED


def test_a_stream_retries_an_overload_before_its_first_byte(fake_provider, claude, sleeps):
    overloaded = Reply.json(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529
    )
    fake_provider.script(PATH, [overloaded])
    assert list(claude().chat_streamly(HISTORY)) == CHAT_PIECES
    assert sleeps == [1.0]


# --- errors ---


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ("sk-ant-invalid-0123456789abcdef", AuthError),
        ("sk-ant-forbidden-0123456789abcdef", AuthError),
        ("sk-ant-nocredit-0123456789abcdef", QuotaExceededError),
        ("", AuthError),
    ],
)
def test_it_classifies_key_problems_without_retrying(claude, sleeps, api_key, expected):
    with pytest.raises(expected) as caught:
        claude(api_key=api_key).chat(HISTORY)
    assert sleeps == []
    assert caught.value.provider == "Anthropic"
    assert caught.value.model == MODEL


@pytest.mark.parametrize(
    ("model", "expected", "last_error"),
    [
        ("fake-429", MaxRetriesExceededError, RateLimitError),
        ("fake-500", MaxRetriesExceededError, ServerError),
        ("fake-529", MaxRetriesExceededError, ServerError),
        ("missing-model", ModelError, None),
        ("fake-malformed", GenericProviderError, None),
    ],
)
def test_it_classifies_provider_failures(claude, model, expected, last_error):
    with pytest.raises(expected) as caught:
        claude(model_name=model).chat(HISTORY)
    if last_error is not None:
        assert type(caught.value.last_error) is last_error


def test_an_overloaded_api_is_retried_until_it_answers(fake_provider, claude, sleeps):
    overloaded = Reply.json(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529
    )
    fake_provider.script(PATH, [overloaded, overloaded])
    assert claude().chat(HISTORY).text == CHAT_TEXT
    assert sleeps == [1.0, 2.0]


def test_a_request_the_api_rejects_is_an_invalid_request(fake_provider, claude):
    fake_provider.script(
        PATH,
        [
            Reply.json(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "messages: too long"},
                },
                400,
            )
        ],
    )
    with pytest.raises(InvalidRequestError, match="messages: too long"):
        claude().chat(HISTORY)


@pytest.mark.parametrize(
    ("api_key", "model"),
    [
        ("sk-ant-invalid-0123456789abcdef", MODEL),
        ("sk-ant-forbidden-0123456789abcdef", MODEL),
        (KEY, "fake-429"),
        (KEY, "fake-529"),
        (KEY, "missing-model"),
        (KEY, "fake-malformed"),
        (KEY, "fake-drop"),
        (KEY, "fake-overloaded-midway"),
    ],
)
def test_the_key_never_appears_in_an_error(claude, api_key, model):
    adapter = claude(model_name=model, api_key=api_key)
    streamed = model in ("fake-drop", "fake-overloaded-midway")
    with pytest.raises(ProviderError) as caught:
        list(adapter.chat_streamly(HISTORY)) if streamed else adapter.chat(HISTORY)
    for error in error_chain(caught.value):
        assert api_key not in str(error)
        assert api_key not in repr(error)
        assert all(api_key not in str(arg) for arg in error.args)
    assert api_key not in repr(adapter)


def test_the_key_echoed_by_the_provider_is_scrubbed(claude):
    with pytest.raises(AuthError) as caught:
        claude(api_key="sk-ant-invalid-0123456789abcdef").chat(HISTORY)
    # "invalid" is a piece of this key too: every piece of 6+ characters goes.
    assert str(caught.value).endswith("*** x-api-key ***")
    assert "0123456789" not in str(caught.value)


# --- factory ---


def test_it_serves_chat_and_image2text_for_anthropic():
    assert get_adapter_class("chat", "Anthropic") is AnthropicChat
    assert get_adapter_class("image2text", "Anthropic") is AnthropicImage2Text
    with pytest.raises(UnsupportedModelError):
        get_adapter_class("embedding", "Anthropic")


def test_it_defaults_to_the_hosted_api_and_accepts_a_v1_base_url(fake_provider, claude):
    adapter = build_adapter(model_type="chat", factory="Anthropic", model_name=MODEL, api_key=KEY)
    assert adapter.base_url == "https://api.anthropic.com"
    claude(base_url=fake_provider.url("/anthropic/v1/")).chat(HISTORY)
    assert fake_provider.last_request.path == PATH


def test_it_reads_a_json_credential(fake_provider, claude):
    claude(api_key={"api_key": KEY}).chat(HISTORY)
    assert fake_provider.last_request.headers["x-api-key"] == KEY


# --- async ---


def test_it_chats_asynchronously(fake_provider, claude):
    result = asyncio.run(claude().achat(HISTORY, system="Be brief."))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert fake_provider.last_request.json["system"] == "Be brief."


def test_it_describes_an_image_asynchronously(fake_provider, claude):
    history = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": image_data_url(PNG)}}],
        }
    ]
    result = asyncio.run(claude(model_type="image2text").achat(history))
    assert result.text == VISION_TEXT


def test_it_streams_tool_calls_asynchronously(claude):
    adapter = claude(model_name="fake-tools")

    async def run():
        stream = await adapter.achat_streamly(HISTORY, tools=TOOLS)
        return await stream.result()

    result = asyncio.run(run())
    assert result.tool_calls == [TOOL_CALL]
    assert result.usage == REPORTED


def test_an_async_stream_closed_early_keeps_the_reported_input_tokens(claude):
    adapter = claude()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.text == "Hello"
    assert stream.usage == partial("Hello")


def test_an_async_error_event_midway_raises_and_keeps_usage(claude):
    adapter = claude(model_name="fake-overloaded-midway")

    async def run():
        stream = await adapter.achat_streamly(HISTORY)
        with pytest.raises(ServerError):
            async for _ in stream:
                pass
        return stream

    stream = asyncio.run(run())
    assert stream.text == "Hello from"
    assert isinstance(stream.error, ServerError)
    assert stream.usage == partial("Hello", " from")
