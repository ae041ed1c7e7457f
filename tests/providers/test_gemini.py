import asyncio
import base64

import pytest

from providers.adapters.gemini import GeminiChat, GeminiEmbedding, GeminiImage2Text
from providers.errors import (
    AuthError,
    ContentFilteredError,
    GenericProviderError,
    InvalidRequestError,
    MaxRetriesExceededError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from providers.media import DEFAULT_DESCRIBE_PROMPT
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.gemini import (
    CHAT_PIECES,
    CHAT_TEXT,
    THOUGHT_SIGNATURE,
    VISION_TEXT,
)

from .conftest import error_chain

KEY = "AIza-test-0123456789abcdef"
MODEL = "gemini-2.5-flash"
GENERATE = f"/gemini/v1beta/models/{MODEL}:generateContent"
STREAM = f"/gemini/v1beta/models/{MODEL}:streamGenerateContent"
EMBED_MODEL = "gemini-embedding-001"
EMBED = f"/gemini/v1beta/models/{EMBED_MODEL}:batchEmbedContents"
HISTORY = [{"role": "user", "content": "hi"}]
REPORTED = Usage(9, 6, 15)
SO_FAR = Usage(9, 2, 11)  # the running totals of the second chunk
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
    "id": "call_0",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
SIGNED_TOOL_CALL = {**TOOL_CALL, "extra_content": {"google": {"thought_signature": "c2ln"}}}


def tokens(*texts):
    return sum(num_tokens_from_string(text, "cl100k_base") for text in texts)


def estimated(prompt_texts, completion):
    return Usage(tokens(*prompt_texts), tokens(completion), estimated=True)


@pytest.fixture
def gemini(fake_provider, make_adapter):
    def make(model_name=MODEL, model_type="chat", api_key=KEY, **options):
        return make_adapter(
            model_type,
            factory="Gemini",
            model_name=model_name,
            api_key=api_key,
            base_url=options.pop("base_url", fake_provider.url("/gemini")),
            **options,
        )

    return make


# --- request and result ---


def test_it_sends_a_generate_content_request(fake_provider, gemini):
    gemini().chat(
        HISTORY,
        system="Be brief.",
        gen_conf={"temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "stop": "END", "quote": 1},
    )
    request = fake_provider.last_request
    assert request.path == GENERATE
    assert request.headers["x-goog-api-key"] == KEY
    assert request.query == {}
    assert "authorization" not in request.headers
    assert request.json == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 64,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


def test_it_translates_roles_and_merges_system_messages(fake_provider, gemini):
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
        {"role": "user", "content": "well?"},
    ]
    gemini().chat(history, system="Answer in French.")
    body = fake_provider.last_request.json
    assert body["systemInstruction"] == {"parts": [{"text": "Answer in French.\n\nYou are terse."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "Hello."}]},
        {"role": "user", "parts": [{"text": "and now?"}, {"text": "well?"}]},
    ]


def test_it_returns_the_text_and_the_reported_usage(gemini):
    result = gemini().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert not result.usage.estimated
    assert result.finish_reason == "stop"
    assert result.tool_calls is None


def test_thoughts_are_left_out_of_the_text_but_billed(gemini):
    result = gemini(model_name="fake-thinking").chat(HISTORY)
    assert result.text == CHAT_TEXT
    # Thinking tokens are completion tokens; the total is Google's own.
    assert result.usage == Usage(9, 6 + 20, 35)


def test_it_estimates_usage_when_the_provider_reports_none(gemini):
    result = gemini(model_name="fake-nousage").chat(HISTORY, system="Be brief.")
    assert result.usage == estimated(["Be brief.", "hi"], CHAT_TEXT)
    assert result.usage.estimated


@pytest.mark.parametrize(
    ("model", "reason"),
    [("fake-safety", "finishReason SAFETY"), ("fake-blocked-prompt", "blockReason SAFETY")],
)
def test_a_safety_block_is_a_content_filter_error(gemini, sleeps, model, reason):
    with pytest.raises(ContentFilteredError, match=reason):
        gemini(model_name=model).chat(HISTORY)
    assert sleeps == []


# --- tools ---


def test_it_declares_functions_and_returns_openai_tool_calls(fake_provider, gemini):
    result = gemini(model_name="fake-tools").chat(
        HISTORY, tools=TOOLS, gen_conf={"tool_choice": "required"}
    )
    body = fake_provider.last_request.json
    assert body["tools"] == [{"functionDeclarations": [TOOLS[0]["function"]]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert result.tool_calls == [
        {**TOOL_CALL, "extra_content": {"google": {"thought_signature": THOUGHT_SIGNATURE}}}
    ]
    assert result.finish_reason == "tool_calls"
    assert result.text == ""
    assert result.usage == REPORTED


def test_it_restricts_a_named_tool_choice(fake_provider, gemini):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    gemini().chat(HISTORY, tools=TOOLS, gen_conf={"tool_choice": choice})
    assert fake_provider.last_request.json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


def test_it_sends_function_calls_and_responses_back(fake_provider, gemini):
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [SIGNED_TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_0", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"temperature": 21}'},
    ]
    assert gemini(model_name="gemini-3-flash-preview").chat(history, tools=TOOLS).text == CHAT_TEXT
    assert fake_provider.last_request.json["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 21}}},
            ],
        },
    ]


def test_gemini_3_calls_without_a_signature_get_googles_placeholder(fake_provider, gemini):
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_0", "content": "Sunny"},
    ]
    gemini(model_name="gemini-3-flash-preview").chat(history, tools=TOOLS)
    call = fake_provider.last_request.json["contents"][1]["parts"][0]
    assert call["thoughtSignature"] == "skip_thought_signature_validator"
    gemini().chat(history, tools=TOOLS)
    assert "thoughtSignature" not in fake_provider.last_request.json["contents"][1]["parts"][0]


def test_a_tool_result_without_its_call_is_refused_before_sending(fake_provider, gemini):
    history = [HISTORY[0], {"role": "tool", "tool_call_id": "call_9", "content": "Sunny"}]
    with pytest.raises(InvalidRequestError, match="call_9"):
        gemini().chat(history)
    assert fake_provider.requests == []


# --- images ---


def test_it_describes_an_image_as_inline_data(fake_provider, gemini):
    result = gemini(model_type="image2text").describe(PNG)
    assert result.text == VISION_TEXT
    assert result.usage == REPORTED
    image, prompt = fake_provider.last_request.json["contents"][0]["parts"]
    assert image == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}
    }
    assert prompt == {"text": DEFAULT_DESCRIBE_PROMPT}


def test_it_describes_with_a_prompt(fake_provider, gemini):
    gemini(model_type="image2text").describe_with_prompt(PNG, "What is written here?")
    assert fake_provider.last_request.json["contents"][0]["parts"][1] == {
        "text": "What is written here?"
    }


# --- streaming ---


def test_it_streams_text_and_keeps_the_last_cumulative_usage(fake_provider, gemini):
    stream = gemini().chat_streamly(HISTORY, system="Be brief.")
    assert list(stream) == CHAT_PIECES
    request = fake_provider.last_request
    assert request.path == STREAM
    assert request.query == {"alt": "sse"}
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert stream.text == CHAT_TEXT
    # Each chunk said 1, 2, 3, 4 and then 6 candidate tokens so far: 6, not 16.
    assert stream.usage == REPORTED
    assert stream.done
    assert stream.error is None
    assert stream.finish_reason == "stop"


def test_a_stream_closed_early_keeps_the_usage_so_far(gemini):
    stream = gemini().chat_streamly(HISTORY)
    assert next(stream) == "Hello"
    assert next(stream) == " from"
    stream.close()
    assert stream.closed
    assert not stream.done
    assert list(stream) == []
    assert stream.text == "Hello from"
    assert stream.usage == SO_FAR


def test_an_error_chunk_midway_raises_and_keeps_usage(gemini, sleeps):
    stream = gemini(model_name="fake-error-midway").chat_streamly(HISTORY)
    received = []
    with pytest.raises(ServerError, match="overloaded") as caught:
        for delta in stream:
            received.append(delta)
    assert received == ["Hello", " from"]
    assert stream.error is caught.value
    assert sleeps == []
    assert not stream.done
    assert stream.usage == SO_FAR


def test_a_dropped_stream_raises_and_keeps_usage(gemini):
    stream = gemini(model_name="fake-drop").chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="closed the connection"):
        list(stream)
    assert stream.text == "Hello from"
    assert stream.usage == SO_FAR


def test_a_stream_ending_without_a_finish_reason_is_cut_off(fake_provider, gemini):
    chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]}
    fake_provider.script(STREAM, [Reply.sse([chunk], done=False)])
    stream = gemini().chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="finishReason"):
        list(stream)
    assert stream.text == "Hi"
    assert stream.usage == estimated(["hi"], "Hi")


def test_a_stream_stopped_for_safety_raises_after_its_text(gemini):
    stream = gemini(model_name="fake-safety").chat_streamly(HISTORY)
    with pytest.raises(ContentFilteredError):
        list(stream)
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED


def test_it_reports_a_malformed_stream_chunk(fake_provider, gemini):
    fake_provider.script(STREAM, [Reply.sse(['{"candidates": ['], done=False)])
    with pytest.raises(GenericProviderError, match="not JSON"):
        list(gemini().chat_streamly(HISTORY))


def test_it_streams_function_calls(gemini):
    stream = gemini(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [TOOL_CALL]
    assert stream.finish_reason == "tool_calls"
    assert stream.usage == REPORTED


def test_a_stream_retries_errors_before_its_first_byte(fake_provider, gemini, sleeps):
    busy = Reply.json({"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}, 503)
    fake_provider.script(STREAM, [busy])
    assert list(gemini().chat_streamly(HISTORY)) == CHAT_PIECES
    assert sleeps == [1.0]


# --- errors ---


@pytest.mark.parametrize(
    "api_key", ["AIza-invalid-0123456789abcdef", "AIza-suspended-0123456789abcdef", ""]
)
def test_it_classifies_key_problems_without_retrying(gemini, sleeps, api_key):
    with pytest.raises(AuthError) as caught:
        gemini(api_key=api_key).chat(HISTORY)
    assert sleeps == []
    assert caught.value.provider == "Gemini"
    assert caught.value.model == MODEL


@pytest.mark.parametrize(
    ("model", "expected", "last_error"),
    [
        ("fake-429", MaxRetriesExceededError, RateLimitError),
        ("fake-500", MaxRetriesExceededError, ServerError),
        ("fake-503", MaxRetriesExceededError, ServerError),
        ("missing-model", ModelError, None),
        ("fake-malformed", GenericProviderError, None),
    ],
)
def test_it_classifies_provider_failures(gemini, model, expected, last_error):
    with pytest.raises(expected) as caught:
        gemini(model_name=model).chat(HISTORY)
    if last_error is not None:
        assert type(caught.value.last_error) is last_error


def test_it_retries_rate_limits_honouring_retry_info(fake_provider, gemini, sleeps):
    with pytest.raises(MaxRetriesExceededError):
        gemini(model_name="fake-429").chat(HISTORY)
    assert sleeps == [2.0, 2.0, 2.0]
    assert len(fake_provider.requests_to("/gemini/v1beta/models/fake-429:generateContent")) == 4


def test_a_request_the_api_rejects_is_an_invalid_request(gemini):
    with pytest.raises(InvalidRequestError, match="Unknown name"):
        gemini().chat(HISTORY, tools=[{"unknownTool": {}}])


@pytest.mark.parametrize(
    ("api_key", "model"),
    [
        ("AIza-invalid-0123456789abcdef", MODEL),
        ("AIza-suspended-0123456789abcdef", MODEL),
        (KEY, "fake-429"),
        (KEY, "fake-500"),
        (KEY, "missing-model"),
        (KEY, "fake-malformed"),
        (KEY, "fake-drop"),
        (KEY, "fake-error-midway"),
    ],
)
def test_the_key_never_appears_in_an_error(gemini, api_key, model):
    adapter = gemini(model_name=model, api_key=api_key)
    streamed = model in ("fake-drop", "fake-error-midway")
    with pytest.raises(ProviderError) as caught:
        list(adapter.chat_streamly(HISTORY)) if streamed else adapter.chat(HISTORY)
    for error in error_chain(caught.value):
        assert api_key not in str(error)
        assert api_key not in repr(error)
        assert all(api_key not in str(arg) for arg in error.args)
    assert api_key not in repr(adapter)


def test_the_key_echoed_by_the_provider_is_scrubbed(gemini):
    with pytest.raises(AuthError) as caught:
        gemini(api_key="AIza-suspended-0123456789abcdef").chat(HISTORY)
    # "suspended" is a piece of this key too: every piece of 6+ characters goes.
    assert "Consumer 'api_key:***' has been ***." in str(caught.value)


# --- factory ---


def test_it_serves_chat_image2text_and_embedding_for_gemini():
    assert get_adapter_class("chat", "Gemini") is GeminiChat
    assert get_adapter_class("image2text", "Gemini") is GeminiImage2Text
    assert get_adapter_class("embedding", "Gemini") is GeminiEmbedding


def test_it_defaults_to_the_hosted_api_and_accepts_variants(fake_provider, gemini):
    adapter = build_adapter(model_type="chat", factory="Gemini", model_name=MODEL, api_key=KEY)
    assert adapter.base_url == "https://generativelanguage.googleapis.com"
    gemini(model_name=f"models/{MODEL}", base_url=fake_provider.url("/gemini/v1beta/")).chat(
        HISTORY
    )
    assert fake_provider.last_request.path == GENERATE


# --- embeddings ---


def test_it_embeds_documents_in_a_batch(fake_provider, gemini):
    texts = ["first text", "the second text"]
    result = gemini(model_type="embedding", model_name=EMBED_MODEL).encode(texts)
    request = fake_provider.last_request
    assert request.path == EMBED
    assert request.headers["x-goog-api-key"] == KEY
    assert request.query == {}
    assert request.json == {
        "requests": [
            {
                "model": f"models/{EMBED_MODEL}",
                "content": {"parts": [{"text": text}]},
                "taskType": "RETRIEVAL_DOCUMENT",
            }
            for text in texts
        ]
    }
    assert result.vectors == [[1.0, 0.5, 0.0], [1.5, 0.5, 1.0]]
    # Gemini reports no usage for embeddings: counted with tiktoken.
    assert result.usage == Usage(tokens(*texts), estimated=True)


def test_it_embeds_a_query_as_a_retrieval_query(fake_provider, gemini):
    result = gemini(model_type="embedding", model_name=EMBED_MODEL).encode_queries("a query")
    assert result.vectors == [[0.7, 0.5, 0.0]]
    assert fake_provider.last_request.json["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert result.usage == Usage(tokens("a query"), estimated=True)


def test_it_sends_at_most_100_texts_a_call(fake_provider, gemini):
    texts = [f"text {n}" for n in range(250)]
    result = gemini(model_type="embedding", model_name=EMBED_MODEL).encode(texts)
    assert [len(r.json["requests"]) for r in fake_provider.requests_to(EMBED)] == [100, 100, 50]
    assert len(result.vectors) == 250
    assert result.vectors[249][2] == 49.0  # the index within its own batch
    assert result.usage == Usage(tokens(*texts), estimated=True)


def test_embedding_errors_are_classified(gemini, sleeps):
    with pytest.raises(AuthError):
        gemini(model_type="embedding", api_key="AIza-invalid-0123456789").encode(["x"])
    with pytest.raises(MaxRetriesExceededError):
        gemini(model_type="embedding", model_name="fake-503").encode(["x"])
    assert sleeps == [1.0, 2.0, 4.0]


def test_it_reports_an_embedding_reply_without_vectors(fake_provider, gemini):
    fake_provider.script(EMBED, [Reply.json({"embeddings": [{"value": [1]}]})])
    with pytest.raises(GenericProviderError, match="values"):
        gemini(model_type="embedding", model_name=EMBED_MODEL).encode(["x"])


# --- async ---


def test_it_chats_asynchronously(fake_provider, gemini):
    result = asyncio.run(gemini().achat(HISTORY, system="Be brief."))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert fake_provider.last_request.path == GENERATE


def test_it_streams_function_calls_asynchronously(gemini):
    adapter = gemini(model_name="fake-tools")

    async def run():
        stream = await adapter.achat_streamly(HISTORY, tools=TOOLS)
        return await stream.result()

    result = asyncio.run(run())
    assert result.tool_calls == [TOOL_CALL]
    assert result.finish_reason == "tool_calls"


def test_an_async_stream_closed_early_keeps_the_usage_so_far(gemini):
    adapter = gemini()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.text == "Hello"
    assert stream.usage == Usage(9, 1, 10)


def test_an_async_error_chunk_midway_raises_and_keeps_usage(gemini):
    adapter = gemini(model_name="fake-error-midway")

    async def run():
        stream = await adapter.achat_streamly(HISTORY)
        with pytest.raises(ServerError):
            async for _ in stream:
                pass
        return stream

    stream = asyncio.run(run())
    assert stream.text == "Hello from"
    assert isinstance(stream.error, ServerError)
    assert stream.usage == SO_FAR
