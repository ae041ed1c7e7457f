import asyncio
import json

import pytest

from providers.adapters.openai import HOSTED_BASE_URLS
from providers.errors import (
    AuthError,
    ContentFilteredError,
    GenericProviderError,
    MaxRetriesExceededError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
)
from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.openai import CHAT_PIECES, CHAT_TEXT, CHAT_USAGE, TOOL_CALL

from .conftest import KEY, error_chain

HISTORY = [{"role": "user", "content": "hi"}]
REPORTED = Usage(CHAT_USAGE["prompt_tokens"], CHAT_USAGE["completion_tokens"], 18)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def estimated(prompt_texts, completion):
    prompt = sum(num_tokens_from_string(t, "o200k_base") for t in prompt_texts)
    return Usage(prompt, num_tokens_from_string(completion, "o200k_base"), estimated=True)


# --- request and result ---


def test_it_sends_an_openai_chat_request(fake_provider, make_adapter):
    make_adapter().chat(
        HISTORY, system="Be brief.", gen_conf={"temperature": 0.2, "max_tokens": 64, "quote": 1}
    )
    request = fake_provider.last_request
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }


def test_it_returns_the_text_and_the_reported_usage(make_adapter):
    result = make_adapter().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert result.finish_reason == "stop"
    assert result.tool_calls is None


def test_it_estimates_usage_when_the_provider_reports_none(make_adapter):
    result = make_adapter(model_name="fake-nousage").chat(HISTORY, system="Be brief.")
    assert result.usage == estimated(["Be brief.", "hi"], CHAT_TEXT)
    assert result.usage.estimated


def test_it_passes_tools_through_and_returns_tool_calls(fake_provider, make_adapter):
    result = make_adapter(model_name="fake-tools").chat(HISTORY, tools=TOOLS)
    assert fake_provider.last_request.json["tools"] == TOOLS
    assert result.tool_calls == [TOOL_CALL]
    assert result.finish_reason == "tool_calls"
    assert result.text == ""


def test_it_converts_options_for_reasoning_models(fake_provider, make_adapter):
    make_adapter(model_name="o3-mini").chat(HISTORY, gen_conf={"max_tokens": 50, "temperature": 1})
    assert fake_provider.last_request.json["max_completion_tokens"] == 50
    assert "max_tokens" not in fake_provider.last_request.json
    assert "temperature" not in fake_provider.last_request.json
    make_adapter(factory="DeepSeek", model_name="deepseek-reasoner").chat(
        HISTORY, gen_conf={"max_tokens": 50}
    )
    assert fake_provider.last_request.json["max_tokens"] == 50


# --- streaming ---


def test_it_streams_text_deltas_and_the_final_usage(fake_provider, make_adapter):
    stream = make_adapter().chat_streamly(HISTORY)
    assert list(stream) == CHAT_PIECES
    body = fake_provider.last_request.json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED
    assert stream.done
    assert stream.error is None
    assert stream.finish_reason == "stop"


def test_the_last_authoritative_usage_wins_over_running_totals(make_adapter):
    stream = make_adapter(model_name="fake-cumulative-usage").chat_streamly(HISTORY)
    list(stream)
    # Every chunk carried a running total; summing them would report hundreds of tokens.
    assert stream.usage == REPORTED


def test_a_stream_closed_early_still_has_usage(make_adapter):
    stream = make_adapter().chat_streamly(HISTORY)
    assert next(stream) == "Hello"
    assert next(stream) == " from"
    stream.close()
    assert stream.closed
    assert not stream.done
    assert list(stream) == []
    assert stream.text == "Hello from"
    assert stream.usage == estimated(["hi"], "Hello from")


def test_a_stream_closes_as_a_context_manager(make_adapter):
    with make_adapter().chat_streamly(HISTORY) as stream:
        next(stream)
    assert stream.closed
    assert stream.usage.estimated


def test_a_stream_failing_midway_raises_and_keeps_usage(make_adapter):
    stream = make_adapter(model_name="fake-drop").chat_streamly(HISTORY)
    received = []
    with pytest.raises(ProviderConnectionError) as caught:
        for delta in stream:
            received.append(delta)
    assert received == ["Hello", " from"]
    assert stream.error is caught.value
    assert not stream.done
    assert stream.closed
    assert stream.text == "Hello from"
    assert stream.usage == estimated(["hi"], "Hello from")
    assert "closed the connection" in str(caught.value)


def test_it_streams_tool_calls(make_adapter):
    stream = make_adapter(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [TOOL_CALL]
    assert stream.finish_reason == "tool_calls"


def test_a_stream_turns_into_one_result(make_adapter):
    result = make_adapter().chat_streamly(HISTORY).result()
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED


def test_it_raises_an_error_event_inside_a_stream(fake_provider, make_adapter):
    error = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    fake_provider.script("/v1/chat/completions", [Reply.sse([chunk, error])])
    stream = make_adapter().chat_streamly(HISTORY)
    with pytest.raises(RateLimitError):
        list(stream)
    assert stream.text == "Hi"


def test_it_raises_when_a_stream_ends_without_done(fake_provider, make_adapter):
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    fake_provider.script("/v1/chat/completions", [Reply.sse([chunk], done=False)])
    stream = make_adapter().chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match=r"before \[DONE\]"):
        list(stream)


def test_it_reports_a_malformed_stream_chunk(fake_provider, make_adapter):
    fake_provider.script("/v1/chat/completions", [Reply.sse(['{"choices": [', "x"])])
    with pytest.raises(GenericProviderError, match="not JSON"):
        list(make_adapter().chat_streamly(HISTORY))


def test_a_stream_retries_errors_before_its_first_byte(fake_provider, make_adapter, sleeps):
    busy = Reply.json({"error": {"message": "busy", "type": "server_error"}}, 503)
    fake_provider.script("/v1/chat/completions", [busy])
    assert list(make_adapter().chat_streamly(HISTORY)) == CHAT_PIECES
    assert sleeps == [1.0]


# --- errors ---


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ("sk-invalid-0123456789abcdef", AuthError),
        ("sk-forbidden-0123456789abcdef", AuthError),
        ("sk-noquota-0123456789abcdef", QuotaExceededError),
    ],
)
def test_it_classifies_key_problems_without_retrying(make_adapter, sleeps, api_key, expected):
    with pytest.raises(expected) as caught:
        make_adapter(api_key=api_key).chat(HISTORY)
    assert sleeps == []
    assert caught.value.provider == "OpenAI"
    assert caught.value.model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("fake-429", MaxRetriesExceededError),
        ("fake-500", MaxRetriesExceededError),
        ("fake-503", MaxRetriesExceededError),
        ("missing-model", ModelError),
        ("fake-content-filter", ContentFilteredError),
        ("fake-malformed", GenericProviderError),
    ],
)
def test_it_classifies_provider_failures(make_adapter, model, expected):
    with pytest.raises(expected):
        make_adapter(model_name=model).chat(HISTORY)


@pytest.mark.parametrize(
    ("api_key", "model"),
    [
        ("sk-invalid-0123456789abcdef", "gpt-4o"),
        ("sk-forbidden-0123456789abcdef", "gpt-4o"),
        ("sk-noquota-0123456789abcdef", "gpt-4o"),
        (KEY, "fake-429"),
        (KEY, "fake-500"),
        (KEY, "missing-model"),
        (KEY, "fake-malformed"),
        (KEY, "fake-drop"),
    ],
)
def test_the_key_never_appears_in_an_error(make_adapter, api_key, model):
    adapter = make_adapter(model_name=model, api_key=api_key)
    with pytest.raises(ProviderError) as caught:
        list(adapter.chat_streamly(HISTORY)) if model == "fake-drop" else adapter.chat(HISTORY)
    for error in error_chain(caught.value):
        assert api_key not in str(error)
        assert api_key not in repr(error)
        assert all(api_key not in str(arg) for arg in error.args)
    assert api_key not in repr(adapter)


def test_the_key_echoed_by_the_provider_is_scrubbed(make_adapter):
    key = "sk-invalid-0123456789abcdef"
    with pytest.raises(AuthError) as caught:
        make_adapter(api_key=key).chat(HISTORY)
    assert "Incorrect API key provided: ***" in str(caught.value)


# --- factories ---


@pytest.mark.parametrize(("factory", "base_url"), sorted(HOSTED_BASE_URLS.items()))
def test_hosted_factories_default_to_their_base_url(factory, base_url):
    adapter = build_adapter(model_type="chat", factory=factory, model_name="m", api_key="k")
    assert adapter.base_url == base_url


@pytest.mark.parametrize(
    "factory",
    [
        "LocalAI",
        "VLLM",
        "LM-Studio",
        "Xinference",
        "GPUStack",
        "HuggingFace",
        "OpenAI-API-Compatible",
    ],
)
def test_self_hosted_factories_need_a_base_url(factory):
    with pytest.raises(ProviderError, match="needs a base URL"):
        build_adapter(model_type="chat", factory=factory, model_name="m", api_key="")


def test_a_keyless_self_hosted_server_gets_no_authorization(fake_provider, make_adapter):
    for base_url in (fake_provider.url("/keyless"), fake_provider.url("/keyless/v1/")):
        result = make_adapter(
            factory="LM-Studio", model_name="llama3.2", api_key="", base_url=base_url
        ).chat(HISTORY)
        assert result.text == CHAT_TEXT
        request = fake_provider.last_request
        assert request.path == "/keyless/v1/chat/completions"
        assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        ("VLLM", "qwen2.5-7b___VLLM"),
        ("LocalAI", "qwen2.5-7b___LocalAI"),
        ("HuggingFace", "qwen2.5-7b___HuggingFace"),
        ("OpenAI-API-Compatible", "qwen2.5-7b___OpenAI-API"),
    ],
)
def test_it_strips_ragflow_name_suffixes(fake_provider, make_adapter, factory, name):
    base_url = fake_provider.url(
        "/keyless" if factory != "OpenAI-API-Compatible" else "/keyless/v1"
    )
    make_adapter(factory=factory, model_name=name, api_key="", base_url=base_url).chat(HISTORY)
    assert fake_provider.last_request.json["model"] == "qwen2.5-7b"
    assert fake_provider.last_request.path == "/keyless/v1/chat/completions"


def test_volcengine_calls_its_endpoint_with_the_ark_key(fake_provider, make_adapter):
    credentials = json.dumps({"ark_api_key": "ark-0123456789", "endpoint_id": "ep-20240101-abc"})
    make_adapter(factory="VolcEngine", model_name="doubao-pro", api_key=credentials).chat(HISTORY)
    request = fake_provider.last_request
    assert request.headers["authorization"] == "Bearer ark-0123456789"
    assert request.json["model"] == "ep-20240101-abc"


def test_openrouter_sends_the_provider_order(fake_provider, make_adapter):
    credentials = json.dumps({"api_key": "or-0123456789", "provider_order": "anthropic, openai"})
    make_adapter(factory="OpenRouter", model_name="openai/gpt-4o", api_key=credentials).chat(
        HISTORY
    )
    request = fake_provider.last_request
    assert request.headers["authorization"] == "Bearer or-0123456789"
    assert request.json["provider"] == {"order": ["anthropic", "openai"]}


# --- async ---


def test_it_chats_asynchronously(fake_provider, make_adapter):
    adapter = make_adapter()
    result = asyncio.run(adapter.achat(HISTORY, system="Be brief."))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert fake_provider.last_request.json["messages"][0]["role"] == "system"


def test_an_async_stream_closed_early_still_has_usage(make_adapter):
    adapter = make_adapter()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.text == "Hello"
    assert stream.usage == estimated(["hi"], "Hello")


def test_an_async_stream_failing_midway_raises_and_keeps_usage(make_adapter):
    adapter = make_adapter(model_name="fake-drop")

    async def run():
        stream = await adapter.achat_streamly(HISTORY)
        with pytest.raises(ProviderConnectionError):
            async for _ in stream:
                pass
        return stream

    stream = asyncio.run(run())
    assert stream.text == "Hello from"
    assert isinstance(stream.error, ProviderConnectionError)
    assert stream.usage.estimated
