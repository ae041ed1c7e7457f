import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from botocore import auth as botocore_auth

from providers.adapters import aws
from providers.adapters.bedrock import BedrockChat, BedrockEmbedding
from providers.errors import (
    AuthError,
    GenericProviderError,
    InvalidRequestError,
    MaxRetriesExceededError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider import bedrock as fake
from tests.fakeprovider.bedrock import CHAT_PIECES, CHAT_TEXT

from .conftest import error_chain

HISTORY = [{"role": "user", "content": "hi"}]
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CONVERSE_PATH = "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
STREAM_PATH = CONVERSE_PATH + "-stream"
REPORTED = Usage(12, 6, 18)
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
KEYS = {"bedrock_ak": fake.ACCESS_KEY, "bedrock_sk": fake.SECRET_KEY, "bedrock_region": "us-east-1"}


def credentials(**fields):
    return json.dumps({**KEYS, **fields})


@pytest.fixture(autouse=True)
def _no_cached_roles():
    aws.assumed_roles.clear()
    yield
    aws.assumed_roles.clear()


@pytest.fixture
def make_bedrock(fake_provider, policy):
    def make(model_type="chat", model_name=MODEL, api_key=None, **options):
        options.setdefault("retry_policy", policy)
        options.setdefault("sts_base_url", fake_provider.url("/sts"))
        return build_adapter(
            model_type=model_type,
            factory="Bedrock",
            model_name=model_name,
            api_key=credentials() if api_key is None else api_key,
            base_url=fake_provider.url("/bedrock"),
            **options,
        )

    return make


def estimated(prompt, completion):
    return Usage(num_tokens_from_string(prompt), num_tokens_from_string(completion), estimated=True)


# --- request and result ---


def test_it_sends_a_signed_converse_request(fake_provider, make_bedrock):
    make_bedrock().chat(
        HISTORY,
        system="Be brief.",
        gen_conf={"temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "quote": True},
    )
    request = fake_provider.last_request
    assert request.path == CONVERSE_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={fake.ACCESS_KEY}/{request.headers['x-amz-date'][:8]}"
        "/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    assert request.json == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9},
    }


def test_it_returns_the_text_and_the_reported_usage(make_bedrock):
    result = make_bedrock().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert result.finish_reason == "stop"
    assert result.tool_calls is None


def test_it_estimates_usage_when_none_is_reported(make_bedrock):
    result = make_bedrock(model_name="fake-nousage").chat(HISTORY, system="Be brief.")
    assert result.usage == Usage(
        num_tokens_from_string("Be brief.") + num_tokens_from_string("hi"),
        num_tokens_from_string(CHAT_TEXT),
        estimated=True,
    )


def test_it_merges_turns_so_roles_alternate(fake_provider, make_bedrock):
    history = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "ok"},
    ]
    make_bedrock().chat(history)
    body = fake_provider.last_request.json
    assert body["system"] == [{"text": "Answer in French."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "hi"}, {"text": "again"}]},
        {"role": "assistant", "content": [{"text": "Bonjour"}]},
        {"role": "user", "content": [{"text": "ok"}]},
    ]


def test_it_sends_tools_and_returns_tool_calls(fake_provider, make_bedrock):
    result = make_bedrock(model_name="fake-tools").chat(
        HISTORY, tools=TOOLS, gen_conf={"tool_choice": "auto"}
    )
    assert fake_provider.last_request.json["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "inputSchema": {"json": TOOLS[0]["function"]["parameters"]},
                }
            }
        ],
        "toolChoice": {"auto": {}},
    }
    assert result.tool_calls == [
        {
            "id": "tooluse_fake_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert result.finish_reason == "tool_calls"


def test_it_sends_tool_calls_and_results_back(fake_provider, make_bedrock):
    call = {
        "id": "tooluse_fake_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "tooluse_fake_1", "content": "Sunny"},
    ]
    make_bedrock().chat(history, tools=TOOLS)
    assert fake_provider.last_request.json["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_fake_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_fake_1", "content": [{"text": "Sunny"}]}}
            ],
        },
    ]


def test_it_sends_images_as_base64_blocks(fake_provider, make_bedrock):
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "text", "text": "What is this?"},
    ]
    make_bedrock().chat([{"role": "user", "content": content}])
    assert fake_provider.last_request.json["messages"][0]["content"] == [
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
        {"text": "What is this?"},
    ]
    with pytest.raises(InvalidRequestError, match="data URLs"):
        make_bedrock().chat(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x"}}],
                }
            ]
        )


def test_it_defaults_to_the_regional_endpoint():
    adapter = build_adapter(
        model_type="chat", factory="Bedrock", model_name=MODEL, api_key=credentials()
    )
    assert isinstance(adapter, BedrockChat)
    assert adapter.base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    eu = build_adapter(
        model_type="embedding",
        factory="Bedrock",
        model_name="amazon.titan-embed-text-v2:0",
        api_key=credentials(bedrock_region="eu-central-1"),
    )
    assert isinstance(eu, BedrockEmbedding)
    assert eu.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"


# --- signing ---


def test_the_server_rejects_a_wrong_secret(make_bedrock, sleeps):
    with pytest.raises(AuthError, match="signature we calculated does not match"):
        make_bedrock(api_key=credentials(bedrock_sk="not-the-secret-0123456789")).chat(HISTORY)
    assert sleeps == []


def test_the_server_rejects_an_unknown_key(make_bedrock):
    with pytest.raises(AuthError, match="security token included in the request is invalid"):
        make_bedrock(api_key=credentials(bedrock_ak="AKIAUNKNOWN000000000")).chat(HISTORY)


def test_each_attempt_is_signed_afresh(fake_provider, make_bedrock, monkeypatch, sleeps):
    start = datetime.now(UTC).replace(microsecond=0)
    clock = iter([start, start + timedelta(seconds=7)])
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: next(clock))
    fake_provider.script(CONVERSE_PATH, [fake.MODELS["fake-503"]()])
    assert make_bedrock().chat(HISTORY).text == CHAT_TEXT
    first, second = fake_provider.requests_to(CONVERSE_PATH)
    assert first.headers["x-amz-date"] == start.strftime("%Y%m%dT%H%M%SZ")
    assert second.headers["x-amz-date"] == (start + timedelta(seconds=7)).strftime("%Y%m%dT%H%M%SZ")
    assert first.headers["authorization"] != second.headers["authorization"]
    assert sleeps == [1.0]


# --- errors ---


@pytest.mark.parametrize(
    ("model", "expected", "retried"),
    [
        ("fake-429", RateLimitError, True),
        ("fake-500", ServerError, True),
        ("fake-503", ServerError, True),
        ("missing-model", ModelError, False),
        ("fake-invalid", InvalidRequestError, False),
    ],
)
def test_it_classifies_bedrock_errors(make_bedrock, sleeps, model, expected, retried):
    with pytest.raises(ProviderError) as caught:
        make_bedrock(model_name=model).chat(HISTORY)
    error = caught.value
    if retried:
        assert isinstance(error, MaxRetriesExceededError)
        error = error.last_error
        assert len(sleeps) == 3
    else:
        assert sleeps == []
    assert isinstance(error, expected)
    assert error.provider == "Bedrock"


def test_access_denied_is_an_auth_error(make_bedrock, sleeps):
    with pytest.raises(AuthError, match="not authorized to perform: bedrock:InvokeModel"):
        make_bedrock(api_key=credentials(bedrock_ak=fake.DENIED_KEY)).chat(HISTORY)
    assert sleeps == []


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"bedrock_region": "us-east-1"}, "bedrock_ak, bedrock_sk"),
        ({"bedrock_ak": fake.ACCESS_KEY, "bedrock_sk": fake.SECRET_KEY}, "bedrock_region"),
        ({**KEYS, "auth_mode": "iam_role"}, "aws_role_arn"),
    ],
)
def test_missing_credential_fields_are_named(fields, missing):
    with pytest.raises(InvalidRequestError, match=f"missing required field\\(s\\): {missing}"):
        build_adapter(
            model_type="chat", factory="Bedrock", model_name=MODEL, api_key=json.dumps(fields)
        )


def test_it_refuses_to_lend_the_servers_own_identity():
    with pytest.raises(InvalidRequestError, match="auth_mode 'assume_role' is not supported"):
        build_adapter(
            model_type="chat",
            factory="Bedrock",
            model_name=MODEL,
            api_key=json.dumps({"auth_mode": "assume_role", "bedrock_region": "us-east-1"}),
        )


@pytest.mark.parametrize("model", ["fake-429", "missing-model", "fake-malformed", "fake-drop"])
def test_secrets_never_appear_in_errors(make_bedrock, model):
    adapter = make_bedrock(model_name=model)
    with pytest.raises(ProviderError) as caught:
        list(adapter.chat_streamly(HISTORY)) if model == "fake-drop" else adapter.chat(HISTORY)
    for error in error_chain(caught.value):
        for secret in (fake.SECRET_KEY, fake.ACCESS_KEY):
            assert secret not in str(error)
            assert secret not in repr(error)
    assert fake.SECRET_KEY not in repr(adapter)


# --- streaming ---


def test_it_decodes_the_event_stream(fake_provider, make_bedrock):
    stream = make_bedrock().chat_streamly(HISTORY)
    assert list(stream) == CHAT_PIECES
    request = fake_provider.last_request
    assert request.path == STREAM_PATH
    assert request.json["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED
    assert stream.finish_reason == "stop"
    assert stream.done


def test_it_streams_tool_calls(make_bedrock):
    stream = make_bedrock(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [
        {
            "id": "tooluse_fake_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert stream.finish_reason == "tool_calls"


def test_a_stream_closed_early_keeps_usage(make_bedrock):
    with make_bedrock().chat_streamly(HISTORY) as stream:
        assert next(stream) == "Hello"
    assert stream.closed
    assert not stream.done
    assert stream.usage == estimated("hi", "Hello")


def test_an_exception_frame_raises_midway(make_bedrock):
    stream = make_bedrock(model_name="fake-stream-throttled").chat_streamly(HISTORY)
    with pytest.raises(RateLimitError, match="throttlingException: Too many tokens"):
        list(stream)
    assert stream.text == "Hello"
    assert isinstance(stream.error, RateLimitError)


def test_a_dropped_stream_is_a_connection_error(make_bedrock):
    stream = make_bedrock(model_name="fake-drop").chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError):
        list(stream)
    assert stream.text == "Hello from"
    assert stream.usage.estimated


def test_a_stream_without_message_stop_is_cut_off(make_bedrock):
    with pytest.raises(ProviderConnectionError, match="before messageStop"):
        list(make_bedrock(model_name="fake-no-stop").chat_streamly(HISTORY))


def test_a_frame_with_a_bad_crc_is_refused(make_bedrock):
    with pytest.raises(GenericProviderError, match="bad event-stream frame"):
        list(make_bedrock(model_name="fake-bad-crc").chat_streamly(HISTORY))


def test_a_stream_retries_errors_before_its_first_byte(fake_provider, make_bedrock, sleeps):
    fake_provider.script(STREAM_PATH, [fake.MODELS["fake-503"]()])
    assert list(make_bedrock().chat_streamly(HISTORY)) == CHAT_PIECES
    assert sleeps == [1.0]
    first, second = fake_provider.requests_to(STREAM_PATH)
    assert first.headers["authorization"] and second.headers["authorization"]


# --- async ---


def test_it_chats_asynchronously(fake_provider, make_bedrock):
    result = asyncio.run(make_bedrock().achat(HISTORY, system="Be brief."))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert fake_provider.last_request.json["system"] == [{"text": "Be brief."}]


def test_an_async_stream_closed_early_keeps_usage(make_bedrock):
    adapter = make_bedrock()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.usage == estimated("hi", "Hello")


# --- iam_role ---


def test_iam_role_signs_with_assumed_credentials(fake_provider, make_bedrock):
    adapter = make_bedrock(api_key=credentials(auth_mode="iam_role", aws_role_arn=fake.ROLE_ARN))
    assert adapter.chat(HISTORY).text == CHAT_TEXT
    assert adapter.chat(HISTORY).text == CHAT_TEXT
    sts = fake_provider.requests_to("/sts/")
    assert len(sts) == 1  # the temporary credentials are reused
    assert "Credential=" + fake.ACCESS_KEY in sts[0].headers["authorization"]
    assert "/us-east-1/sts/aws4_request" in sts[0].headers["authorization"]
    calls = fake_provider.requests_to(CONVERSE_PATH)
    assert all("Credential=" + fake.SESSION_KEY in c.headers["authorization"] for c in calls)
    assert all(c.headers["x-amz-security-token"] == fake.SESSION_TOKEN for c in calls)


def test_iam_role_works_asynchronously(make_bedrock):
    adapter = make_bedrock(api_key=credentials(auth_mode="iam_role", aws_role_arn=fake.ROLE_ARN))
    assert asyncio.run(adapter.achat(HISTORY)).text == CHAT_TEXT


def test_a_refused_role_is_an_auth_error(make_bedrock):
    role = "arn:aws:iam::123456789012:role/someone-else"
    adapter = make_bedrock(api_key=credentials(auth_mode="iam_role", aws_role_arn=role))
    with pytest.raises(
        AuthError, match=r"could not assume .*not authorized to perform: sts:Assume"
    ):
        adapter.chat(HISTORY)


# --- embeddings ---


def test_it_embeds_with_titan_one_text_per_call(fake_provider, make_bedrock):
    adapter = make_bedrock("embedding", model_name="amazon.titan-embed-text-v2:0")
    result = adapter.encode(["hello", "hi"])
    assert result.vectors == [[0.5, 0.5], [0.2, 0.5]]
    assert result.usage == Usage(2 * fake.TITAN_TOKENS)
    requests = fake_provider.requests_to("/bedrock/model/amazon.titan-embed-text-v2%3A0/invoke")
    assert [r.json for r in requests] == [{"inputText": "hello"}, {"inputText": "hi"}]


def test_it_embeds_with_cohere_by_input_type(fake_provider, make_bedrock):
    adapter = make_bedrock("embedding", model_name="cohere.embed-multilingual-v3")
    result = adapter.encode(["hello", "hi"])
    assert result.vectors == [[0.5, 0.25, 0.0], [0.2, 0.25, 1.0]]
    assert result.usage == Usage(2 * fake.COHERE_TOKENS_PER_TEXT)
    assert fake_provider.last_request.json == {
        "texts": ["hello", "hi"],
        "input_type": "search_document",
    }
    adapter.encode_queries("hello")
    assert fake_provider.last_request.json["input_type"] == "search_query"


def test_embedding_errors_are_classified(fake_provider, make_bedrock):
    path = "/bedrock/model/cohere.embed-english-v3/invoke"
    fake_provider.script(path, [fake.MODELS["missing-model"]()])
    with pytest.raises(ModelError):
        make_bedrock("embedding", model_name="cohere.embed-english-v3").encode(["x"])
    fake_provider.script(path, [Reply.json({"embeddings": [[1.0]]})])
    with pytest.raises(GenericProviderError, match="1 vectors for 2 texts"):
        make_bedrock("embedding", model_name="cohere.embed-english-v3").encode(["x", "y"])


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (429, "ModelNotReadyException", "SERVER_ERROR"),
        (400, "ThrottlingException", "RATE_LIMIT_EXCEEDED"),
        (400, "AccessDeniedException", "AUTH_ERROR"),
    ],
)
def test_it_reads_the_error_type_header(fake_provider, make_bedrock, status, error_type, code):
    # The header wins over the status: Bedrock's 429 "model not ready" is not a rate limit.
    fake_provider.script(CONVERSE_PATH, [fake.error(status, error_type, "no")])
    adapter = make_bedrock(retry_policy=replace(make_bedrock().retry_policy, max_retries=0))
    with pytest.raises(ProviderError) as caught:
        adapter.chat(HISTORY)
    assert caught.value.code == code
