"""The contract every adapter keeps, whatever its wire protocol, tested against the fake provider.

- A refused key is an AuthError, never retried, and the key appears in no error.
- A 429 is retried after the Retry-After it carries; retries run out into
  MaxRetriesExceededError.
- A 5xx is retried with exponential backoff until the provider answers.
- A 2xx page that is not JSON is no model server's answer ("could not reach a model server at
  this address"), and broken JSON a GenericProviderError; neither body is ever repeated.
- A provider that does not answer in time is a timeout; a refused connection is a connection
  error, never a bad key.
- A stream reports the provider's usage, or an estimate when the provider sends none; the
  async calls keep the same contract.

What is particular to a wire protocol (request shapes, its own error codes, tokens and
signatures) stays in the family's own test module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from providers import registry
from providers.adapters import aws, baidu
from providers.api_keys import Credentials
from providers.errors import (
    UNREACHABLE,
    AuthError,
    GenericProviderError,
    MaxRetriesExceededError,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
)
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider import anthropic as fake_anthropic
from tests.fakeprovider import baidu as fake_baidu
from tests.fakeprovider import bedrock as fake_bedrock
from tests.fakeprovider import cohere as fake_cohere
from tests.fakeprovider import fishaudio as fake_fish
from tests.fakeprovider import gemini as fake_gemini
from tests.fakeprovider import hunyuan as fake_hunyuan
from tests.fakeprovider import mistral_ocr as fake_mistral
from tests.fakeprovider import ollama as fake_ollama
from tests.fakeprovider import openai as fake_openai
from tests.fakeprovider import tei as fake_tei

from .conftest import KEY, error_chain

HISTORY = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Stream:
    """What a family's fake streams for a chat: its pieces and its usage report."""

    path: str
    pieces: list[str]
    reported: Usage
    no_usage_model: str = "fake-nousage"


@dataclass(frozen=True)
class Family:
    id: str
    model_type: str
    factory: str
    root: str  # the fake provider's prefix for this family: the base URL
    model: str
    key: Any
    bad_key: Any
    path: str  # where a call goes (replies are scripted there)
    stream: Stream | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """The keys, and the secret fields of JSON credentials."""
        return [*Credentials.parse(self.key).secrets(), *Credentials.parse(self.bad_key).secrets()]


def _json(**fields: str) -> str:
    return json.dumps(fields)


BAIDU_CHAT = "/baidu/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions_pro"
BAIDU_KEYS = {"yiyan_ak": fake_baidu.API_KEY, "yiyan_sk": fake_baidu.SECRET_KEY}
HUNYUAN_KEYS = {"hunyuan_sid": fake_hunyuan.SECRET_ID, "hunyuan_sk": fake_hunyuan.SECRET_KEY}
BEDROCK_KEYS = {
    "bedrock_ak": fake_bedrock.ACCESS_KEY,
    "bedrock_sk": fake_bedrock.SECRET_KEY,
    "bedrock_region": "us-east-1",
}
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BEDROCK_CONVERSE = "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
FISH_KEYS = {"fish_audio_ak": fake_fish.API_KEY, "fish_audio_refid": fake_fish.VOICE}
GEMINI_MODELS = "/gemini/v1beta/models/"
USAGE_12_6 = Usage(12, 6, 18)

FAMILIES = [
    Family(
        "openai-chat",
        "chat",
        "OpenAI",
        "/v1",
        "gpt-4o-mini",
        KEY,
        "sk-invalid-0123456789abcdef",
        "/v1/chat/completions",
        Stream("/v1/chat/completions", fake_openai.CHAT_PIECES, USAGE_12_6),
    ),
    Family(
        "azure-chat",
        "chat",
        "Azure-OpenAI",
        "",
        "my-gpt4o",
        "azure-key-0123456789abcdef",
        "sk-invalid-0123456789abcdef",
        "/openai/deployments/my-gpt4o/chat/completions",
    ),
    Family(
        "anthropic-chat",
        "chat",
        "Anthropic",
        "/anthropic",
        "claude-sonnet-4-5",
        "sk-ant-test-0123456789abcdef",
        "sk-ant-invalid-0123456789abcdef",
        fake_anthropic.PATH,
        Stream(fake_anthropic.PATH, fake_anthropic.CHAT_PIECES, Usage(21, 7)),
    ),
    Family(
        "gemini-chat",
        "chat",
        "Gemini",
        "/gemini",
        "gemini-2.5-flash",
        "AIza-test-0123456789abcdef",
        "AIza-invalid-0123456789abcdef",
        GEMINI_MODELS + "gemini-2.5-flash:generateContent",
        Stream(
            GEMINI_MODELS + "gemini-2.5-flash:streamGenerateContent",
            fake_gemini.CHAT_PIECES,
            Usage(9, 6, 15),
        ),
    ),
    Family(
        "ollama-chat",
        "chat",
        "Ollama",
        "/ollama",
        "llama3.2",
        "",
        "ollama-invalid-0123456789abcdef",
        "/ollama/api/chat",
        Stream(
            "/ollama/api/chat",
            fake_ollama.CHAT_PIECES,
            Usage(fake_ollama.PROMPT_EVAL_COUNT, fake_ollama.EVAL_COUNT),
        ),
    ),
    Family(
        "cohere-chat",
        "chat",
        "Cohere",
        "/cohere",
        "command-r-08-2024",
        KEY,
        "co-invalid-0123456789abcdef",
        "/cohere/v2/chat",
        Stream(
            "/cohere/v2/chat",
            fake_cohere.CHAT_PIECES,
            Usage(fake_cohere.BILLED["input_tokens"], fake_cohere.BILLED["output_tokens"]),
        ),
    ),
    Family(
        "baidu-chat",
        "chat",
        "BaiduYiyan",
        "/baidu",
        "ERNIE-4.0-8K",
        json.dumps(BAIDU_KEYS),
        json.dumps({**BAIDU_KEYS, "yiyan_sk": "wrong-secret-key-0000"}),
        BAIDU_CHAT,
        Stream(BAIDU_CHAT, fake_baidu.CHAT_PIECES, USAGE_12_6),
    ),
    Family(
        "hunyuan-chat",
        "chat",
        "Tencent Hunyuan",
        "/hunyuan",
        "hunyuan-turbos-latest",
        json.dumps(HUNYUAN_KEYS),
        json.dumps({**HUNYUAN_KEYS, "hunyuan_sk": "wrong-secret-key-000000000000000"}),
        "/hunyuan/",
        Stream("/hunyuan/", fake_hunyuan.CHAT_PIECES, USAGE_12_6),
    ),
    Family(  # a plain Hunyuan key: Tencent's OpenAI-compatible endpoint
        "hunyuan-openai-chat",
        "chat",
        "Tencent Hunyuan",
        "/hunyuan/v1",
        "hunyuan-turbos-latest",
        fake_hunyuan.API_KEY,
        "sk-wrong-hunyuan-key-0123456789abc",
        "/hunyuan/v1/chat/completions",
        Stream("/hunyuan/v1/chat/completions", fake_openai.CHAT_PIECES, USAGE_12_6),
    ),
    Family(
        "bedrock-chat",
        "chat",
        "Bedrock",
        "/bedrock",
        BEDROCK_MODEL,
        json.dumps(BEDROCK_KEYS),
        json.dumps({**BEDROCK_KEYS, "bedrock_sk": "wrong/secret/key/0123456789abcdef"}),
        BEDROCK_CONVERSE,
        Stream(BEDROCK_CONVERSE + "-stream", fake_bedrock.CHAT_PIECES, USAGE_12_6),
    ),
    Family(
        "openai-embedding",
        "embedding",
        "OpenAI",
        "/v1",
        "text-embedding-3-small",
        KEY,
        "sk-invalid-0123456789abcdef",
        "/v1/embeddings",
    ),
    Family(
        "gemini-embedding",
        "embedding",
        "Gemini",
        "/gemini",
        "gemini-embedding-001",
        "AIza-test-0123456789abcdef",
        "AIza-invalid-0123456789abcdef",
        GEMINI_MODELS + "gemini-embedding-001:batchEmbedContents",
    ),
    Family(
        "ollama-embedding",
        "embedding",
        "Ollama",
        "/ollama",
        "nomic-embed-text",
        "",
        "ollama-invalid-0123456789abcdef",
        "/ollama/api/embed",
    ),
    Family(
        "cohere-embedding",
        "embedding",
        "Cohere",
        "/cohere",
        "embed-v4.0",
        KEY,
        "co-invalid-0123456789abcdef",
        "/cohere/v2/embed",
    ),
    Family(
        "baidu-embedding",
        "embedding",
        "BaiduYiyan",
        "/baidu",
        "Embedding-V1",
        json.dumps(BAIDU_KEYS),
        json.dumps({**BAIDU_KEYS, "yiyan_sk": "wrong-secret-key-0000"}),
        "/baidu/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/embedding-v1",
    ),
    Family(
        "bedrock-embedding",
        "embedding",
        "Bedrock",
        "/bedrock",
        "amazon.titan-embed-text-v2:0",
        json.dumps(BEDROCK_KEYS),
        json.dumps({**BEDROCK_KEYS, "bedrock_sk": "wrong/secret/key/0123456789abcdef"}),
        "/bedrock/model/amazon.titan-embed-text-v2%3A0/invoke",
    ),
    Family(
        "jina-embedding",
        "embedding",
        "Jina",
        "/jina/v1",
        "jina-embeddings-v3",
        KEY,
        "sk-invalid-0123456789abcdef",
        "/jina/v1/embeddings",
    ),
    Family(
        "voyage-embedding",
        "embedding",
        "Voyage AI",
        "/voyage/v1",
        "voyage-3.5",
        KEY,
        "pa-invalid-0123456789abcdef",
        "/voyage/v1/embeddings",
    ),
    Family(
        "tei-embedding",
        "embedding",
        "HuggingFace",
        "/tei-secured",
        "BAAI/bge-m3",
        fake_tei.SECURED_KEY,
        "hf-wrong-0123456789abcdef",
        "/tei-secured/embed",
    ),
    Family(
        "cohere-rerank",
        "rerank",
        "Cohere",
        "/cohere",
        "rerank-v3.5",
        KEY,
        "co-invalid-0123456789abcdef",
        "/cohere/v2/rerank",
    ),
    Family(
        "jina-rerank",
        "rerank",
        "Jina",
        "/jina/v1",
        "jina-reranker-v2",
        KEY,
        "sk-invalid-0123456789abcdef",
        "/jina/v1/rerank",
    ),
    Family(
        "voyage-rerank",
        "rerank",
        "Voyage AI",
        "/voyage/v1",
        "rerank-2.5",
        KEY,
        "pa-invalid-0123456789abcdef",
        "/voyage/v1/rerank",
    ),
    Family(
        "tei-rerank",
        "rerank",
        "HuggingFace",
        "/tei-secured",
        "BAAI/bge-reranker-v2-m3",
        fake_tei.SECURED_KEY,
        "hf-wrong-0123456789abcdef",
        "/tei-secured/rerank",
    ),
    Family(
        "openai-speech2text",
        "speech2text",
        "OpenAI",
        "/v1",
        "whisper-1",
        KEY,
        "sk-invalid-0123456789abcdef",
        "/v1/audio/transcriptions",
    ),
    Family(
        "openai-tts",
        "tts",
        "OpenAI",
        "/v1",
        "tts-1",
        KEY,
        "sk-invalid-0123456789abcdef",
        "/v1/audio/speech",
    ),
    Family(
        "fishaudio-tts",
        "tts",
        "Fish Audio",
        "/fishaudio",
        "s1",
        json.dumps(FISH_KEYS),
        json.dumps({**FISH_KEYS, "fish_audio_ak": "wrong-fish-key-0123456789"}),
        "/fishaudio/v1/tts",
    ),
    Family(
        "mistral-ocr",
        "ocr",
        "Mistral",
        "/mistral/v1",
        "mistral-ocr-latest",
        fake_mistral.API_KEY,
        "wrong-mistral-key-0123456789",
        "/mistral/v1/ocr",
    ),
]
CHAT_FAMILIES = [family for family in FAMILIES if family.stream is not None]

CALLS: dict[str, Callable[[Any], Any]] = {
    "chat": lambda adapter: adapter.chat(HISTORY),
    "embedding": lambda adapter: adapter.encode(["hello"]),
    "rerank": lambda adapter: adapter.similarity("capital", ["Paris", "Berlin"]),
    "speech2text": lambda adapter: adapter.transcription(b"RIFF fake audio", filename="a.wav"),
    "tts": lambda adapter: adapter.tts("Hello").read(),
    "ocr": lambda adapter: adapter.ocr(b"%PDF-1.7 a page"),
}


@pytest.fixture(autouse=True)
def _fresh_tokens_and_roles():
    baidu.tokens.clear()
    aws.assumed_roles.clear()
    yield
    baidu.tokens.clear()
    aws.assumed_roles.clear()


@pytest.fixture
def make(fake_provider, policy):
    def make(family: Family, *, key: Any = None, base_url: str | None = None, **options: Any):
        options = {"retry_policy": policy, **family.options, **options}
        if family.factory == "Bedrock":
            options.setdefault("sts_base_url", fake_provider.url("/sts"))
        return build_adapter(
            model_type=family.model_type,
            factory=family.factory,
            model_name=options.pop("model_name", family.model),
            api_key=family.key if key is None else key,
            base_url=base_url or fake_provider.url(family.root),
            **options,
        )

    return make


def call(family: Family, adapter: Any) -> Any:
    return CALLS[family.model_type](adapter)


def busy(status: int, retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else None
    return Reply.json({"error": {"message": f"busy ({status})"}}, status, headers)


def assert_no_secret(error: BaseException, secrets: list[str]) -> None:
    for link in error_chain(error):
        for secret in secrets:
            assert secret not in str(link)
            assert secret not in repr(link)
            assert all(secret not in str(arg) for arg in link.args)


def ids(families: list[Family]) -> list[Any]:
    return [pytest.param(family, id=family.id) for family in families]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_a_refused_key_is_an_auth_error_never_retried(make, family, sleeps):
    adapter = make(family, key=family.bad_key)
    with pytest.raises(AuthError) as caught:
        call(family, adapter)
    assert sleeps == []
    assert caught.value.provider == family.factory
    assert_no_secret(caught.value, family.secrets)
    assert all(secret not in repr(adapter) for secret in family.secrets)


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_a_429_is_retried_after_its_retry_after(make, family, fake_provider, sleeps):
    fake_provider.script(family.path, [busy(429, "3")])
    assert call(family, make(family))
    assert sleeps == [3.0]
    assert len(fake_provider.requests_to(family.path)) == 2


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_retries_run_out_into_max_retries_exceeded(make, family, fake_provider, sleeps):
    fake_provider.script(family.path, [busy(429, "2")] * 4)
    with pytest.raises(MaxRetriesExceededError) as caught:
        call(family, make(family))
    assert isinstance(caught.value.last_error, RateLimitError)
    assert "RATE_LIMIT_EXCEEDED" in str(caught.value)
    assert sleeps == [2.0, 2.0, 2.0]
    assert len(fake_provider.requests_to(family.path)) == 4
    assert_no_secret(caught.value, family.secrets)


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_a_server_error_is_retried_with_backoff(make, family, fake_provider, sleeps):
    fake_provider.script(family.path, [busy(500), busy(503)])
    assert call(family, make(family))
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_server_errors_run_out_into_max_retries_exceeded(make, family, fake_provider, sleeps):
    fake_provider.script(family.path, [busy(503)] * 4)
    with pytest.raises(MaxRetriesExceededError, match="SERVER_ERROR") as caught:
        call(family, make(family))
    assert isinstance(caught.value.last_error, ServerError)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake_provider.requests_to(family.path)) == 4


@pytest.mark.parametrize("family", ids([f for f in FAMILIES if f.model_type != "tts"]))
def test_a_page_that_is_no_model_servers_answer_is_never_repeated(
    make, family, fake_provider, sleeps
):
    fake_provider.script(family.path, [Reply.raw(b"<html>gateway</html>", 200, "text/html")])
    with pytest.raises(ProviderConnectionError) as caught:
        call(family, make(family))
    assert sleeps == []
    assert caught.value.detail == UNREACHABLE
    assert all("gateway" not in str(link) for link in error_chain(caught.value))
    assert_no_secret(caught.value, family.secrets)


@pytest.mark.parametrize("family", ids([f for f in FAMILIES if f.model_type != "tts"]))
def test_a_broken_json_answer_is_reported_without_its_body(make, family, fake_provider, sleeps):
    fake_provider.script(family.path, [Reply.raw(b'{"broken": "answ', 200)])
    with pytest.raises(GenericProviderError, match="not valid JSON") as caught:
        call(family, make(family))
    assert sleeps == []
    assert all("answ" not in str(link) for link in error_chain(caught.value))


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_a_slow_provider_times_out(make, family, fake_provider, policy):
    fake_provider.script(family.path, [Reply.json({}, delay=3.0)])
    adapter = make(family, retry_policy=replace(policy, timeout=0.3, max_retries=0))
    with pytest.raises(ProviderTimeout):
        call(family, adapter)


@pytest.mark.parametrize("family", ids(FAMILIES))
def test_a_refused_connection_is_a_connection_error_not_a_bad_key(
    make, family, closed_port, policy
):
    adapter = make(
        family,
        base_url=f"http://127.0.0.1:{closed_port}",
        retry_policy=replace(policy, max_retries=0),
    )
    with pytest.raises(ProviderConnectionError) as caught:
        call(family, adapter)
    assert not isinstance(caught.value, AuthError)
    assert caught.value.detail == UNREACHABLE


# --- streams ---------------------------------------------------------------------------------


def estimated(adapter: Any, completion: str) -> Usage:
    prompt = num_tokens_from_string("hi", adapter.encoding)
    return Usage(prompt, num_tokens_from_string(completion, adapter.encoding), estimated=True)


@pytest.mark.parametrize("family", ids(CHAT_FAMILIES))
def test_a_stream_reports_the_providers_usage(make, family):
    stream = make(family).chat_streamly(HISTORY)
    assert list(stream) == family.stream.pieces
    assert stream.text == "".join(family.stream.pieces)
    assert stream.usage == family.stream.reported
    assert not stream.usage.estimated
    assert stream.done
    assert stream.closed
    assert stream.error is None


@pytest.mark.parametrize("family", ids(CHAT_FAMILIES))
def test_a_stream_without_usage_is_estimated(make, family):
    adapter = make(family, model_name=family.stream.no_usage_model)
    stream = adapter.chat_streamly(HISTORY)
    list(stream)
    assert stream.done
    assert stream.reported_usage is None
    assert stream.usage == estimated(adapter, "".join(family.stream.pieces))


@pytest.mark.parametrize("family", ids(CHAT_FAMILIES))
def test_a_stream_cut_midway_raises_and_keeps_what_came(make, family, sleeps):
    stream = make(family, model_name="fake-drop").chat_streamly(HISTORY)
    received = []
    with pytest.raises(ProviderConnectionError) as caught:
        for piece in stream:
            received.append(piece)
    assert received  # the cut came after some text
    assert stream.text == "".join(received)
    assert stream.error is caught.value
    assert stream.closed
    assert not stream.done
    # The usage so far: the provider's last running total, else an estimate of what came.
    assert stream.usage.prompt_tokens > 0
    assert stream.usage.completion_tokens > 0
    assert sleeps == []  # nothing is retried once text reached the caller
    assert_no_secret(caught.value, family.secrets)


@pytest.mark.parametrize("family", ids(CHAT_FAMILIES))
def test_a_stream_retries_until_its_first_byte(make, family, fake_provider, sleeps):
    fake_provider.script(family.stream.path, [busy(503)])
    assert list(make(family).chat_streamly(HISTORY)) == family.stream.pieces
    assert sleeps == [1.0]


# --- async -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ids(CHAT_FAMILIES))
def test_async_calls_keep_the_contract(make, family, fake_provider, sleeps):
    adapter = make(family)
    fake_provider.script(family.path, [busy(500)])
    result = asyncio.run(adapter.achat(HISTORY))
    assert result.text == "".join(family.stream.pieces)

    async def read_stream():
        stream = await adapter.achat_streamly(HISTORY)
        return [piece async for piece in stream], stream

    fake_provider.script(family.stream.path, [busy(503)])
    pieces, stream = asyncio.run(read_stream())
    assert pieces == family.stream.pieces
    assert stream.usage == family.stream.reported
    assert stream.done
    assert sleeps == [1.0, 1.0]
    with pytest.raises(AuthError):
        asyncio.run(make(family, key=family.bad_key).achat(HISTORY))
    fake_provider.script(family.path, [busy(500)] * 4)
    with pytest.raises(MaxRetriesExceededError) as caught:
        asyncio.run(adapter.achat(HISTORY))
    assert isinstance(caught.value.last_error, ServerError)
    assert sleeps == [1.0, 1.0, 1.0, 2.0, 4.0]


# Registered classes whose calls are those of a class above: the vision twins of the chat
# classes, and embedders that differ from a tested one only in addressing or one option.
SAME_CALLS = {
    "OpenAIImage2Text",
    "AzureImage2Text",
    "AzureEmbedding",
    "AnthropicImage2Text",
    "GeminiImage2Text",
    "OllamaImage2Text",
    "NvidiaEmbedding",
}


def test_every_adapter_class_is_held_to_the_contract():
    registered = {cls.__name__ for cls in registry.served_classes()}
    tested = {
        get_adapter_class(f.model_type, f.factory, Credentials.parse(f.key)).__name__
        for f in FAMILIES
    }
    assert registered - tested == SAME_CALLS
