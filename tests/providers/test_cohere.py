import asyncio

import pytest

from providers.adapters.cohere import CohereChat, CohereEmbedding, CohereRerank
from providers.errors import (
    AuthError,
    GenericProviderError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
)
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.cohere import (
    BILLED,
    CHAT_PIECES,
    CHAT_TEXT,
    EMBED_TOKENS_PER_TEXT,
    TOOL_CALL,
    relevance,
    sse_event,
    vector,
)

from .conftest import KEY, error_chain

HISTORY = [{"role": "user", "content": "hi"}]
REPORTED = Usage(BILLED["input_tokens"], BILLED["output_tokens"])
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
QUERY = "what is the capital of france"
DOCUMENTS = [
    "Berlin is a big city in Germany with many museums",
    "Paris is the capital of France",
    "the capital",
]


@pytest.fixture
def cohere(fake_provider, make_adapter):
    def make(model_type="chat", model_name=None, api_key=KEY, **options):
        default = {"chat": "command-r-08-2024", "embedding": "embed-v4.0"}
        return make_adapter(
            model_type,
            factory="Cohere",
            model_name=model_name or default.get(model_type, "rerank-v3.5"),
            api_key=api_key,
            base_url=fake_provider.url("/cohere"),
            **options,
        )

    return make


def estimated(prompt_texts, completion):
    prompt = sum(num_tokens_from_string(text) for text in prompt_texts)
    return Usage(prompt, num_tokens_from_string(completion), estimated=True)


# --- chat ---


def test_it_sends_a_cohere_chat_request(fake_provider, cohere):
    cohere().chat(
        HISTORY,
        system="Be brief.",
        gen_conf={"temperature": 0.2, "max_tokens": 64, "top_p": 1, "stop": "END", "quote": 1},
    )
    request = fake_provider.last_request
    assert request.path == "/cohere/v2/chat"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "command-r-08-2024",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
        "p": 0.99,  # Cohere refuses p=1
        "stop_sequences": ["END"],
    }


def test_it_returns_the_text_and_the_billed_usage(cohere):
    result = cohere().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert result.finish_reason == "stop"
    assert result.tool_calls is None


def test_it_estimates_usage_when_cohere_reports_none(cohere):
    result = cohere(model_name="fake-nousage").chat(HISTORY, system="Be brief.")
    assert result.usage == estimated(["Be brief.", "hi"], CHAT_TEXT)


def test_it_passes_tools_through_and_returns_tool_calls(fake_provider, cohere):
    result = cohere(model_name="fake-tools").chat(
        HISTORY, tools=TOOLS, gen_conf={"tool_choice": "required"}
    )
    assert fake_provider.last_request.json["tools"] == TOOLS
    assert fake_provider.last_request.json["tool_choice"] == "REQUIRED"
    assert result.tool_calls == [TOOL_CALL]
    assert result.finish_reason == "tool_calls"
    assert result.text == ""


def test_it_sends_tool_results_back(fake_provider, cohere):
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL], "name": "bot"},
        {"role": "tool", "tool_call_id": TOOL_CALL["id"], "content": '{"temp": 21}'},
    ]
    assert cohere().chat(history, tools=TOOLS).text == CHAT_TEXT
    assert fake_provider.last_request.json["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": TOOL_CALL["id"], "content": '{"temp": 21}'},
    ]


# --- streaming ---


def test_it_streams_text_deltas_and_the_final_usage(fake_provider, cohere):
    stream = cohere().chat_streamly(HISTORY)
    assert list(stream) == CHAT_PIECES
    assert fake_provider.last_request.json["stream"] is True
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED
    assert stream.finish_reason == "stop"
    assert stream.done
    assert stream.error is None


def test_it_streams_tool_calls(cohere):
    stream = cohere(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [TOOL_CALL]
    assert stream.finish_reason == "tool_calls"


def test_a_stream_closed_early_still_has_usage(cohere):
    stream = cohere().chat_streamly(HISTORY)
    assert next(stream) == "Hello"
    stream.close()
    assert stream.closed
    assert not stream.done
    assert stream.usage == estimated(["hi"], "Hello")


def test_a_stream_failing_midway_raises_and_keeps_usage(cohere):
    stream = cohere(model_name="fake-drop").chat_streamly(HISTORY)
    received = []
    with pytest.raises(ProviderConnectionError):
        for delta in stream:
            received.append(delta)
    assert received == ["Hello", " from"]
    assert isinstance(stream.error, ProviderConnectionError)
    assert stream.usage == estimated(["hi"], "Hello from")


def test_it_raises_when_a_stream_ends_without_message_end(fake_provider, cohere):
    delta = {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}
    fake_provider.script("/cohere/v2/chat", [Reply.stream([sse_event(delta)], "text/event-stream")])
    stream = cohere().chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="before message-end"):
        list(stream)
    assert stream.text == "Hi"


def test_a_stream_retries_a_rate_limit_before_its_first_byte(fake_provider, cohere, sleeps):
    limited = Reply.json({"message": "too many requests"}, 429, headers={"Retry-After": "3"})
    fake_provider.script("/cohere/v2/chat", [limited])
    assert list(cohere().chat_streamly(HISTORY)) == CHAT_PIECES
    assert sleeps == [3.0]


def test_it_chats_asynchronously(cohere):
    result = asyncio.run(cohere().achat(HISTORY))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED


def test_an_async_stream_closed_early_still_has_usage(cohere):
    adapter = cohere()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.usage == estimated(["hi"], "Hello")


# --- embed ---


def test_it_embeds_documents_and_queries_with_their_input_types(fake_provider, cohere):
    adapter = cohere("embedding")
    result = adapter.encode(["a", "bb"])
    request = fake_provider.last_request
    assert request.path == "/cohere/v2/embed"
    assert request.json == {
        "model": "embed-v4.0",
        "texts": ["a", "bb"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert result.vectors == [vector("a", 0, "search_document"), vector("bb", 1, "search_document")]
    assert result.usage == Usage(2 * EMBED_TOKENS_PER_TEXT)
    query = adapter.encode_queries("where?")
    assert fake_provider.last_request.json["input_type"] == "search_query"
    assert query.vectors == [vector("where?", 0, "search_query")]


def test_it_embeds_at_most_96_texts_per_call(fake_provider, cohere):
    result = cohere("embedding").encode([f"text {i}" for i in range(100)])
    sizes = [len(r.json["texts"]) for r in fake_provider.requests_to("/cohere/v2/embed")]
    assert sizes == [96, 4]
    assert result.vectors[97] == vector("text 97", 1, "search_document")
    assert result.usage == Usage(100 * EMBED_TOKENS_PER_TEXT)


def test_it_estimates_embed_usage_when_none_is_billed(cohere):
    result = cohere("embedding", model_name="fake-nousage").encode(["hello world"])
    assert result.usage == Usage(num_tokens_from_string("hello world"), estimated=True)


def test_it_reports_an_embed_response_without_floats(fake_provider, cohere):
    fake_provider.script("/cohere/v2/embed", [Reply.json({"embeddings": {"int8": [[1]]}})])
    with pytest.raises(GenericProviderError, match="no float embeddings"):
        cohere("embedding").encode(["a"])


# --- rerank ---


def test_it_reranks_and_returns_scores_in_input_order(fake_provider, cohere):
    result = cohere("rerank").similarity(QUERY, DOCUMENTS)
    request = fake_provider.last_request
    assert request.path == "/cohere/v2/rerank"
    assert request.json == {
        "model": "rerank-v3.5",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 3,
    }
    assert result.scores == [relevance(QUERY, doc) for doc in DOCUMENTS]
    assert result.scores != sorted(result.scores, reverse=True)  # the fake answered reordered


def test_it_estimates_rerank_usage_as_search_units_are_not_tokens(cohere):
    result = cohere("rerank").similarity(QUERY, DOCUMENTS)
    tokens = num_tokens_from_string(QUERY) * 3 + sum(map(num_tokens_from_string, DOCUMENTS))
    assert result.usage == Usage(tokens, estimated=True)


def test_it_reports_a_missing_rerank_score(fake_provider, cohere):
    reply = Reply.json({"results": [{"index": 1, "relevance_score": 0.5}], "meta": {}})
    fake_provider.script("/cohere/v2/rerank", [reply])
    with pytest.raises(GenericProviderError, match="no score for text 0"):
        cohere("rerank").similarity("q", ["a", "b"])


# --- errors ---


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ("", AuthError),
        ("co-invalid-0123456789abcdef", AuthError),
        ("co-revoked-0123456789abcdef", AuthError),  # Cohere's 498 "invalid token"
        ("co-unpaid-0123456789abcdef", QuotaExceededError),
    ],
)
def test_it_classifies_key_problems_without_retrying(cohere, sleeps, api_key, expected):
    with pytest.raises(expected) as caught:
        cohere(api_key=api_key).chat(HISTORY)
    assert sleeps == []
    assert caught.value.provider == "Cohere"


@pytest.mark.parametrize("model_type", ["chat", "embedding", "rerank"])
def test_it_classifies_a_missing_model(cohere, model_type):
    adapter = cohere(model_type, model_name="missing-model")
    with pytest.raises(ModelError, match="not found"):
        if model_type == "chat":
            adapter.chat(HISTORY)
        elif model_type == "embedding":
            adapter.encode(["a"])
        else:
            adapter.similarity("q", ["a"])


@pytest.mark.parametrize(
    ("api_key", "model_type", "model"),
    [
        ("co-invalid-0123456789abcdef", "chat", "command-r-08-2024"),
        ("co-invalid-0123456789abcdef", "embedding", "embed-v4.0"),
        ("co-revoked-0123456789abcdef", "rerank", "rerank-v3.5"),
        (KEY, "chat", "fake-429"),
        (KEY, "chat", "fake-malformed"),
        (KEY, "chat", "fake-drop"),
        (KEY, "rerank", "missing-model"),
    ],
)
def test_the_key_never_appears_in_an_error(cohere, api_key, model_type, model):
    adapter = cohere(model_type, model_name=model, api_key=api_key)
    with pytest.raises(ProviderError) as caught:
        if model == "fake-drop":
            list(adapter.chat_streamly(HISTORY))
        elif model_type == "chat":
            adapter.chat(HISTORY)
        elif model_type == "embedding":
            adapter.encode(["a"])
        else:
            adapter.similarity("q", ["a"])
    for error in error_chain(caught.value):
        assert api_key not in str(error)
        assert api_key not in repr(error)
    assert api_key not in repr(adapter)


# --- factory ---


def test_it_serves_cohere_for_chat_embedding_and_rerank():
    assert get_adapter_class("chat", "Cohere") is CohereChat
    assert get_adapter_class("embedding", "Cohere") is CohereEmbedding
    assert get_adapter_class("rerank", "Cohere") is CohereRerank


def test_it_calls_the_hosted_api_by_default():
    adapter = build_adapter(model_type="rerank", factory="Cohere", model_name="m", api_key="k")
    assert adapter.base_url == "https://api.cohere.com"
    assert adapter.url("v2/rerank") == "https://api.cohere.com/v2/rerank"
