import asyncio
import base64
import json

import pytest

from providers.adapters.ollama import OllamaChat, OllamaEmbedding, OllamaImage2Text
from providers.errors import (
    AuthError,
    GenericProviderError,
    InvalidRequestError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
)
from providers.media import DEFAULT_DESCRIBE_PROMPT
from providers.registry import get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.ollama import (
    CHAT_PIECES,
    CHAT_TEXT,
    EMBED_TOKENS_PER_INPUT,
    EVAL_COUNT,
    PROMPT_EVAL_COUNT,
    VISION_TEXT,
    chunk,
    final,
    vector,
)

HISTORY = [{"role": "user", "content": "hi"}]
REPORTED = Usage(PROMPT_EVAL_COUNT, EVAL_COUNT)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CALL = {
    "id": None,
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
CLASSES = {"chat": OllamaChat, "image2text": OllamaImage2Text, "embedding": OllamaEmbedding}


@pytest.fixture
def ollama(fake_provider, policy):
    def make(model_type="chat", model_name="llama3.2", api_key="", base_url=None, **options):
        options.setdefault("retry_policy", policy)
        return CLASSES[model_type](
            factory="Ollama",
            model_name=model_name,
            credentials=api_key,
            base_url=base_url or fake_provider.url("/ollama"),
            **options,
        )

    return make


def estimated(prompt_texts, completion):
    prompt = sum(num_tokens_from_string(text) for text in prompt_texts)
    return Usage(prompt, num_tokens_from_string(completion), estimated=True)


def ndjson(*lines):
    return Reply.stream(
        [json.dumps(line).encode() + b"\n" for line in lines], "application/x-ndjson"
    )


# --- chat ---


def test_it_sends_a_native_chat_request(fake_provider, ollama):
    ollama().chat(
        HISTORY,
        system="Be brief.",
        gen_conf={"temperature": 0.2, "max_tokens": 64, "stop": "END", "quote": 1},
    )
    request = fake_provider.last_request
    assert request.path == "/ollama/api/chat"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": False,
        "options": {"temperature": 0.2, "num_predict": 64, "stop": ["END"]},
    }


def test_it_returns_the_text_and_the_reported_counts(ollama):
    result = ollama().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert result.finish_reason == "stop"
    assert result.tool_calls is None


def test_it_estimates_usage_when_ollama_reports_no_counts(ollama):
    result = ollama(model_name="fake-nousage").chat(HISTORY, system="Be brief.")
    assert result.usage == estimated(["Be brief.", "hi"], CHAT_TEXT)


def test_it_estimates_only_a_prompt_count_left_out(fake_provider, ollama):
    # Older Ollama versions leave prompt_eval_count out when the prompt came from the cache.
    reply = final("llama3.2", CHAT_TEXT)
    del reply["prompt_eval_count"]
    fake_provider.script("/ollama/api/chat", [Reply.json(reply)])
    result = ollama().chat(HISTORY)
    assert result.usage == Usage(num_tokens_from_string("hi"), EVAL_COUNT, estimated=True)


def test_it_passes_tools_through_and_returns_openai_shaped_calls(fake_provider, ollama):
    result = ollama(model_name="fake-tools").chat(HISTORY, tools=TOOLS)
    assert fake_provider.last_request.json["tools"] == TOOLS
    assert result.tool_calls == [TOOL_CALL]
    assert result.finish_reason == "tool_calls"
    assert result.text == ""


def test_it_sends_tool_calls_back_with_object_arguments(fake_provider, ollama):
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [dict(TOOL_CALL, id="call_1")]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "21C"},
    ]
    assert ollama().chat(history, tools=TOOLS).text == CHAT_TEXT
    assert fake_provider.last_request.json["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "21C", "tool_name": "get_weather"},
    ]


def test_it_refuses_tool_arguments_that_are_not_an_object(fake_provider, ollama):
    call = {"type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
    history = [*HISTORY, {"role": "assistant", "content": "", "tool_calls": [call]}]
    with pytest.raises(InvalidRequestError, match="JSON object"):
        ollama().chat(history)
    assert fake_provider.requests == []


# --- vision ---


def test_it_describes_an_image_sent_as_base64_beside_the_prompt(fake_provider, ollama):
    result = ollama("image2text", model_name="llava").describe(PNG)
    assert result.text == VISION_TEXT
    assert result.usage == REPORTED
    assert fake_provider.last_request.json["messages"] == [
        {
            "role": "user",
            "content": DEFAULT_DESCRIBE_PROMPT,
            "images": [base64.b64encode(PNG).decode()],
        }
    ]


def test_it_refuses_image_urls_it_would_have_to_fetch(fake_provider, ollama):
    history = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "http://169.254.169.254/x"}}],
        }
    ]
    with pytest.raises(InvalidRequestError, match="inline"):
        ollama("image2text").chat(history)
    assert fake_provider.requests == []


# --- streaming ---


def test_it_streams_ndjson_deltas_and_the_final_counts(fake_provider, ollama):
    stream = ollama().chat_streamly(HISTORY)
    assert list(stream) == CHAT_PIECES
    assert fake_provider.last_request.json["stream"] is True
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED
    assert stream.finish_reason == "stop"
    assert stream.done


def test_it_streams_tool_calls(ollama):
    stream = ollama(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [TOOL_CALL]
    assert stream.finish_reason == "tool_calls"


def test_a_stream_closed_early_still_has_usage(ollama):
    stream = ollama().chat_streamly(HISTORY)
    assert next(stream) == "Hello"
    stream.close()
    assert stream.closed
    assert not stream.done
    assert stream.usage == estimated(["hi"], "Hello")


def test_a_stream_failing_midway_raises_and_keeps_usage(ollama):
    stream = ollama(model_name="fake-drop").chat_streamly(HISTORY)
    received = []
    with pytest.raises(ProviderConnectionError):
        for delta in stream:
            received.append(delta)
    assert received == ["Hello", " from"]
    assert stream.usage == estimated(["hi"], "Hello from")


def test_it_raises_when_a_stream_ends_without_done(fake_provider, ollama):
    fake_provider.script("/ollama/api/chat", [ndjson(chunk("llama3.2", "Hi"))])
    stream = ollama().chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="done"):
        list(stream)
    assert stream.text == "Hi"


def test_it_raises_an_error_line_inside_a_stream(fake_provider, ollama):
    broken = ndjson(chunk("llama3.2", "Hi"), {"error": "llama runner process has terminated"})
    fake_provider.script("/ollama/api/chat", [broken])
    stream = ollama().chat_streamly(HISTORY)
    with pytest.raises(ProviderError, match="runner process has terminated"):
        list(stream)
    assert stream.text == "Hi"


def test_it_reports_a_malformed_stream_line(fake_provider, ollama):
    fake_provider.script(
        "/ollama/api/chat", [Reply.stream([b'{"message": {\n'], "application/x-ndjson")]
    )
    with pytest.raises(GenericProviderError, match="not JSON"):
        list(ollama().chat_streamly(HISTORY))


def test_it_chats_asynchronously(fake_provider, ollama):
    result = asyncio.run(ollama().achat(HISTORY))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert fake_provider.last_request.json["stream"] is False


def test_an_async_stream_closed_early_still_has_usage(ollama):
    adapter = ollama()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.usage == estimated(["hi"], "Hello")


def test_an_async_stream_failing_midway_keeps_usage(ollama):
    adapter = ollama(model_name="fake-drop")

    async def run():
        stream = await adapter.achat_streamly(HISTORY)
        with pytest.raises(ProviderConnectionError):
            async for _ in stream:
                pass
        return stream

    stream = asyncio.run(run())
    assert stream.text == "Hello from"
    assert stream.usage.estimated


# --- embeddings ---


def test_it_embeds_with_the_native_api(fake_provider, ollama):
    result = ollama("embedding", model_name="bge-m3").encode(["a", "bb"])
    request = fake_provider.last_request
    assert request.path == "/ollama/api/embed"
    assert request.json == {"model": "bge-m3", "input": ["a", "bb"]}
    assert result.vectors == [vector("a", 0), vector("bb", 1)]
    assert result.usage == Usage(2 * EMBED_TOKENS_PER_INPUT)
    assert ollama("embedding").encode_queries("q").vectors == [vector("q", 0)]


def test_it_estimates_embedding_usage_without_counts(ollama):
    result = ollama("embedding", model_name="fake-nousage").encode(["hello world"])
    assert result.usage == Usage(num_tokens_from_string("hello world"), estimated=True)


def test_it_reports_a_vector_count_mismatch(fake_provider, ollama):
    fake_provider.script("/ollama/api/embed", [Reply.json({"embeddings": [[0.1]]})])
    with pytest.raises(GenericProviderError, match="1 vectors for 2 texts"):
        ollama("embedding").encode(["a", "b"])


# --- addressing ---


def test_it_defaults_to_the_local_server():
    adapter = OllamaChat(factory="Ollama", model_name="llama3.2", credentials="")
    assert adapter.base_url == "http://127.0.0.1:11434"


def test_it_tolerates_a_base_url_ending_in_v1(fake_provider, ollama):
    ollama(base_url=fake_provider.url("/ollama/v1/")).chat(HISTORY)
    assert fake_provider.last_request.path == "/ollama/api/chat"


def test_it_sends_a_key_given_for_a_proxy_as_bearer(fake_provider, ollama):
    ollama(api_key="proxy-key-0123456789").chat(HISTORY)
    assert fake_provider.last_request.headers["authorization"] == "Bearer proxy-key-0123456789"


def test_it_strips_ragflow_name_suffixes(fake_provider, ollama):
    ollama(model_name="qwen2.5___Ollama").chat(HISTORY)
    assert fake_provider.last_request.json["model"] == "qwen2.5"


# --- errors ---


def test_a_missing_model_is_a_model_error(ollama, sleeps):
    with pytest.raises(ModelError, match="not found"):
        ollama(model_name="missing-model").chat(HISTORY)
    with pytest.raises(ModelError):
        ollama("embedding", model_name="missing-model").encode(["a"])
    assert sleeps == []


def test_a_bad_key_is_an_auth_error(ollama, sleeps):
    with pytest.raises(AuthError):
        ollama(api_key="ollama-invalid-0123456789").chat(HISTORY)
    assert sleeps == []


def test_the_key_never_appears_in_an_error(ollama):
    api_key = "ollama-invalid-0123456789abcdef"
    adapter = ollama(api_key=api_key)
    with pytest.raises(AuthError) as caught:
        adapter.chat(HISTORY)
    assert api_key not in str(caught.value)
    assert api_key not in repr(caught.value)
    assert api_key not in repr(adapter)


# --- registration ---


def test_the_registry_serves_ollama_natively():
    assert get_adapter_class("chat", "Ollama") is OllamaChat
    assert get_adapter_class("image2text", "Ollama") is OllamaImage2Text
    assert get_adapter_class("embedding", "Ollama") is OllamaEmbedding
