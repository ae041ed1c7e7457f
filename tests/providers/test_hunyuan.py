import asyncio
import json

import pytest

from providers.adapters import hunyuan
from providers.adapters.hunyuan import tc3_authorization
from providers.errors import (
    AuthError,
    InvalidRequestError,
    MaxRetriesExceededError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_messages, num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider import hunyuan as fake
from tests.fakeprovider.hunyuan import CHAT_PIECES, CHAT_TEXT

from .conftest import error_chain

HISTORY = [{"role": "user", "content": "hi"}]
PATH = "/hunyuan/"
REPORTED = Usage(12, 6, 18)
CREDENTIALS = json.dumps({"hunyuan_sid": fake.SECRET_ID, "hunyuan_sk": fake.SECRET_KEY})
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
OPENAI_TOOL_CALL = {
    "id": "call_fake_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


@pytest.fixture
def make_hunyuan(fake_provider, policy):
    def make(model_name="hunyuan-turbos-latest", api_key=CREDENTIALS, **options):
        options.setdefault("retry_policy", policy)
        return build_adapter(
            model_type="chat",
            factory="Tencent Hunyuan",
            model_name=model_name,
            api_key=api_key,
            base_url=fake_provider.url("/hunyuan"),
            **options,
        )

    return make


# --- the signature ---


def test_the_signer_matches_tencents_documented_example():
    # Tencent's "Signature v3" walkthrough (cvm DescribeInstances), its masked keys included.
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    authorization = tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3*******",
        service="cvm",
        method="POST",
        path="/",
        query="",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Host": "cvm.tencentcloudapi.com",
        },
        payload=payload,
        timestamp=1551113065,
    )
    assert authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    )


def test_it_sends_a_signed_chat_completions_request(fake_provider, make_hunyuan):
    make_hunyuan(region="ap-guangzhou").chat(
        HISTORY, system="Be brief.", gen_conf={"temperature": 0.5, "top_p": 0.9, "quote": 1}
    )
    request = fake_provider.last_request
    assert request.path == PATH
    assert request.headers["x-tc-action"] == "ChatCompletions"
    assert request.headers["x-tc-version"] == "2023-09-01"
    assert request.headers["x-tc-region"] == "ap-guangzhou"
    assert request.headers["authorization"].startswith(
        f"TC3-HMAC-SHA256 Credential={fake.SECRET_ID}/"
    )
    assert "SignedHeaders=content-type;host;x-tc-action," in request.headers["authorization"]
    assert request.json == {
        "Model": "hunyuan-turbos-latest",
        "Messages": [
            {"Role": "system", "Content": "Be brief."},
            {"Role": "user", "Content": "hi"},
        ],
        "Stream": False,
        "Temperature": 0.5,
        "TopP": 0.9,
    }


def test_the_server_rejects_a_wrong_secret_key(make_hunyuan, sleeps):
    credentials = json.dumps({"hunyuan_sid": fake.SECRET_ID, "hunyuan_sk": "not-the-key-0000"})
    with pytest.raises(AuthError, match=r"AuthFailure.SignatureFailure"):
        make_hunyuan(api_key=credentials).chat(HISTORY)
    assert sleeps == []


def test_the_server_rejects_an_unknown_secret_id(make_hunyuan):
    credentials = json.dumps({"hunyuan_sid": "AKIDunknown000000", "hunyuan_sk": fake.SECRET_KEY})
    with pytest.raises(AuthError, match=r"AuthFailure.SecretIdNotFound"):
        make_hunyuan(api_key=credentials).chat(HISTORY)


def test_each_attempt_is_signed_with_a_fresh_timestamp(
    fake_provider, make_hunyuan, monkeypatch, sleeps
):
    now = int(hunyuan.time.time())
    clock = iter([now - 30, now])
    monkeypatch.setattr(hunyuan, "_now", lambda: next(clock))
    fake_provider.script(PATH, [fake.MODELS["fake-internal"]()])
    assert make_hunyuan().chat(HISTORY).text == CHAT_TEXT
    first, second = fake_provider.requests_to(PATH)
    assert (first.headers["x-tc-timestamp"], second.headers["x-tc-timestamp"]) == (
        str(now - 30),
        str(now),
    )
    assert first.headers["authorization"] != second.headers["authorization"]
    assert sleeps == [1.0]


def test_a_stale_timestamp_is_refused_as_expired(make_hunyuan, monkeypatch):
    monkeypatch.setattr(hunyuan, "_now", lambda: int(hunyuan.time.time()) - 3600)
    with pytest.raises(AuthError, match="SignatureExpire"):
        make_hunyuan().chat(HISTORY)


# --- result ---


def test_it_returns_the_text_and_the_reported_usage(make_hunyuan):
    result = make_hunyuan().chat(HISTORY)
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert result.finish_reason == "stop"


def test_it_sends_tools_and_returns_tool_calls(fake_provider, make_hunyuan):
    result = make_hunyuan(model_name="fake-tools").chat(HISTORY, tools=TOOLS)
    assert fake_provider.last_request.json["Tools"] == [
        {
            "Type": "function",
            "Function": {
                "Name": "get_weather",
                "Parameters": json.dumps(TOOLS[0]["function"]["parameters"]),
                "Description": "The weather in a city.",
            },
        }
    ]
    assert result.tool_calls == [OPENAI_TOOL_CALL]
    assert result.finish_reason == "tool_calls"


def test_it_sends_tool_calls_and_results_back(fake_provider, make_hunyuan):
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [OPENAI_TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_fake_1", "content": "Sunny"},
    ]
    make_hunyuan().chat(history, tools=TOOLS)
    assert fake_provider.last_request.json["Messages"][1:] == [
        {
            "Role": "assistant",
            "Content": "",
            "ToolCalls": [
                {
                    "Id": "call_fake_1",
                    "Type": "function",
                    "Function": {"Name": "get_weather", "Arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"Role": "tool", "Content": "Sunny", "ToolCallId": "call_fake_1"},
    ]


def test_it_defaults_to_tencent_clouds_endpoint():
    adapter = build_adapter(
        model_type="chat", factory="Tencent Hunyuan", model_name="hunyuan-lite", api_key=CREDENTIALS
    )
    assert adapter.base_url == "https://hunyuan.tencentcloudapi.com"


def test_missing_credential_fields_are_named():
    with pytest.raises(InvalidRequestError, match=r"missing required field\(s\): hunyuan_sk"):
        build_adapter(
            model_type="chat",
            factory="Tencent Hunyuan",
            model_name="hunyuan-lite",
            api_key=json.dumps({"hunyuan_sid": fake.SECRET_ID}),
        )


# --- errors ---


@pytest.mark.parametrize(
    ("model", "expected", "retried"),
    [
        ("fake-limit", RateLimitError, True),
        ("fake-internal", ServerError, True),
        # An HTML 502 from a gateway: no model server answered (retried, never repeated).
        ("fake-500", ProviderConnectionError, True),
        ("fake-arrears", QuotaExceededError, False),
        ("missing-model", ModelError, False),
        ("fake-not-activated", AuthError, False),
    ],
)
def test_it_classifies_errors_sent_with_http_200(make_hunyuan, sleeps, model, expected, retried):
    with pytest.raises(ProviderError) as caught:
        make_hunyuan(model_name=model).chat(HISTORY)
    error = caught.value
    if retried:
        assert isinstance(error, MaxRetriesExceededError)
        error = error.last_error
        assert sleeps == [1.0, 2.0, 4.0]
    else:
        assert sleeps == []
    assert isinstance(error, expected)
    assert error.provider == "Tencent Hunyuan"


def test_invalid_parameters_are_invalid_requests(make_hunyuan):
    with pytest.raises(InvalidRequestError, match="InvalidParameter: Messages"):
        make_hunyuan().chat([{"role": "user", "content": ""}])


@pytest.mark.parametrize("model", ["fake-limit", "missing-model", "fake-malformed", "fake-drop"])
def test_secrets_never_appear_in_errors(make_hunyuan, model):
    adapter = make_hunyuan(model_name=model)
    with pytest.raises(ProviderError) as caught:
        list(adapter.chat_streamly(HISTORY)) if model == "fake-drop" else adapter.chat(HISTORY)
    for error in error_chain(caught.value):
        for secret in (fake.SECRET_KEY, fake.SECRET_ID):
            assert secret not in str(error)
            assert secret not in repr(error)
    assert fake.SECRET_KEY not in repr(adapter)


# --- streaming ---


def test_it_streams_deltas_and_keeps_the_last_usage(fake_provider, make_hunyuan):
    stream = make_hunyuan().chat_streamly(HISTORY)
    assert list(stream) == CHAT_PIECES
    assert fake_provider.last_request.json["Stream"] is True
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED
    assert stream.finish_reason == "stop"
    assert stream.done


def test_it_streams_tool_calls(make_hunyuan):
    stream = make_hunyuan(model_name="fake-tools").chat_streamly(HISTORY, tools=TOOLS)
    assert list(stream) == []
    assert stream.tool_calls == [OPENAI_TOOL_CALL]
    assert stream.finish_reason == "tool_calls"


def test_a_moderated_stream_ends_with_content_filter(make_hunyuan):
    stream = make_hunyuan(model_name="fake-sensitive").chat_streamly(HISTORY)
    list(stream)
    assert stream.finish_reason == "content_filter"


def test_a_stream_closed_early_keeps_usage(make_hunyuan):
    with make_hunyuan().chat_streamly(HISTORY) as stream:
        assert next(stream) == "Hello"
    assert stream.closed
    # The provider's running total so far is the best report there is.
    assert stream.usage == Usage(12, 1, 13)


def test_a_stream_that_fails_to_start_raises_its_error(make_hunyuan, sleeps):
    with pytest.raises(ModelError, match=r"InvalidParameterValue.Model"):
        make_hunyuan(model_name="missing-model").chat_streamly(HISTORY)
    with pytest.raises(MaxRetriesExceededError):
        make_hunyuan(model_name="fake-limit").chat_streamly(HISTORY)
    assert sleeps == [1.0, 2.0, 4.0]


def test_an_error_chunk_raises_midway(make_hunyuan):
    stream = make_hunyuan(model_name="fake-stream-error").chat_streamly(HISTORY)
    with pytest.raises(ServerError, match="stream broke"):
        list(stream)
    assert stream.text == "Hello"


def test_a_dropped_stream_is_a_connection_error(make_hunyuan):
    stream = make_hunyuan(model_name="fake-drop").chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError):
        list(stream)
    assert stream.text == "Hello"


def test_a_stream_without_a_finish_reason_is_cut_off(make_hunyuan):
    with pytest.raises(ProviderConnectionError, match="before a FinishReason"):
        list(make_hunyuan(model_name="fake-no-finish").chat_streamly(HISTORY))


# --- async ---


def test_it_chats_asynchronously(make_hunyuan):
    result = asyncio.run(make_hunyuan().achat(HISTORY))
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED


def test_an_async_stream_closed_early_keeps_usage(make_hunyuan):
    adapter = make_hunyuan()

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.usage == Usage(12, 1, 13)


def test_async_errors_are_classified(make_hunyuan, sleeps):
    with pytest.raises(QuotaExceededError):
        asyncio.run(make_hunyuan(model_name="fake-arrears").achat(HISTORY))
    with pytest.raises(MaxRetriesExceededError):
        asyncio.run(make_hunyuan(model_name="fake-limit").achat_streamly(HISTORY))
    assert sleeps == [1.0, 2.0, 4.0]


def test_usage_is_estimated_only_without_a_report(fake_provider, make_hunyuan):
    answer = {
        "Response": {
            "Choices": [{"FinishReason": "stop", "Message": {"Content": CHAT_TEXT}}],
            "RequestId": "fake",
        }
    }
    fake_provider.script(PATH, [Reply.json(answer)])
    result = make_hunyuan().chat(HISTORY)
    assert result.usage == Usage(
        num_tokens_from_messages(HISTORY), num_tokens_from_string(CHAT_TEXT), estimated=True
    )
