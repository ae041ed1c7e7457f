import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from providers.adapters import baidu
from providers.errors import (
    AuthError,
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
from tests.fakeprovider import baidu as fake
from tests.fakeprovider.baidu import CHAT_PIECES, CHAT_TEXT

from .conftest import error_chain

HISTORY = [{"role": "user", "content": "hi"}]
TOKEN_PATH = "/baidu/oauth/2.0/token"
CHAT_PREFIX = "/baidu/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
REPORTED = Usage(12, 6, 18)
CREDENTIALS = json.dumps({"yiyan_ak": fake.API_KEY, "yiyan_sk": fake.SECRET_KEY})


@pytest.fixture(autouse=True)
def _fresh_tokens():
    baidu.tokens.clear()
    yield
    baidu.tokens.clear()


@pytest.fixture
def make_baidu(fake_provider, policy):
    def make(model_type="chat", model_name="ERNIE-4.0-8K", api_key=CREDENTIALS, **options):
        options.setdefault("retry_policy", policy)
        return build_adapter(
            model_type=model_type,
            factory="BaiduYiyan",
            model_name=model_name,
            api_key=api_key,
            base_url=fake_provider.url("/baidu"),
            **options,
        )

    return make


def estimated(prompt, completion):
    return Usage(num_tokens_from_string(prompt), num_tokens_from_string(completion), estimated=True)


# --- request and result ---


def test_it_exchanges_the_keys_for_a_token_then_chats(fake_provider, make_baidu):
    result = make_baidu().chat(
        HISTORY, system="Be brief.", gen_conf={"temperature": 0.3, "max_tokens": 64, "quote": 1}
    )
    token_request, chat_request = fake_provider.requests
    assert token_request.path == TOKEN_PATH
    assert token_request.query == {
        "grant_type": "client_credentials",
        "client_id": fake.API_KEY,
        "client_secret": fake.SECRET_KEY,
    }
    assert chat_request.path == CHAT_PREFIX + "completions_pro"
    assert chat_request.query == {"access_token": fake.ISSUED[-1]}
    assert chat_request.json == {
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be brief.",
        "temperature": 0.3,
        "max_output_tokens": 64,
    }
    assert result.text == CHAT_TEXT
    assert result.usage == REPORTED
    assert result.finish_reason == "stop"


@pytest.mark.parametrize(
    ("model", "endpoint"),
    [
        ("ERNIE-3.5-8K", "completions"),
        ("ERNIE-Speed-8K", "ernie_speed"),
        ("ERNIE-Speed-128K", "ernie-speed-128k"),
        ("ernie-4.0-turbo-8k", "ernie-4.0-turbo-8k"),
    ],
)
def test_it_calls_the_endpoint_serving_the_model(fake_provider, make_baidu, model, endpoint):
    make_baidu(model_name=model).chat(HISTORY)
    assert fake_provider.last_request.path == CHAT_PREFIX + endpoint


def test_it_maps_generation_options(fake_provider, make_baidu):
    make_baidu().chat(
        [{"role": "system", "content": "Use French."}, *HISTORY],
        gen_conf={"temperature": 0, "top_p": 0.8, "presence_penalty": 0.4, "stop": "END"},
    )
    body = fake_provider.last_request.json
    assert body["system"] == "Use French."
    assert body["messages"] == HISTORY
    assert body["temperature"] == 0.01  # ERNIE refuses 0
    assert body["top_p"] == 0.8
    assert body["penalty_score"] == pytest.approx(1.2)
    assert body["stop"] == ["END"]


def test_it_merges_turns_so_roles_alternate(fake_provider, make_baidu):
    history = [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "ok"},
    ]
    assert make_baidu().chat(history).text == CHAT_TEXT
    assert fake_provider.last_request.json["messages"] == [
        {"role": "user", "content": "hi\nagain"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "ok"},
    ]


def test_it_estimates_usage_when_none_is_reported(make_baidu):
    result = make_baidu(model_name="fake-nousage").chat(HISTORY)
    assert result.usage == estimated("hi", CHAT_TEXT)


def test_it_refuses_tools(make_baidu, fake_provider):
    with pytest.raises(InvalidRequestError, match="tool calling is not supported"):
        make_baidu().chat(HISTORY, tools=[{"type": "function", "function": {"name": "f"}}])
    assert fake_provider.requests == []


# --- the access token ---


def test_one_token_serves_many_calls(fake_provider, make_baidu):
    make_baidu().chat(HISTORY)
    make_baidu(model_name="ERNIE-3.5-8K").chat(HISTORY)
    make_baidu("embedding", model_name="Embedding-V1").encode(["a"])
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 1


def test_concurrent_first_calls_share_one_token_request(fake_provider, make_baidu):
    adapter = make_baidu()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: adapter.chat(HISTORY).text, range(6)))
    assert results == [CHAT_TEXT] * 6
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 1


def test_an_expired_token_is_replaced_once(fake_provider, make_baidu, sleeps):
    adapter = make_baidu()
    adapter.chat(HISTORY)
    fake.revoke_all()
    assert adapter.chat(HISTORY).text == CHAT_TEXT
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 2
    chats = fake_provider.requests_to(CHAT_PREFIX + "completions_pro")
    assert [r.query["access_token"] for r in chats] == [fake.ISSUED[-2]] * 2 + [fake.ISSUED[-1]]
    assert sleeps == []


def test_a_token_refused_again_is_an_auth_error(fake_provider, make_baidu, sleeps):
    refused = Reply.json(
        {"error_code": 110, "error_msg": "Access token invalid or no longer valid"}
    )
    fake_provider.script(CHAT_PREFIX + "completions_pro", [refused, refused])
    with pytest.raises(AuthError, match="error 110: Access token invalid"):
        make_baidu().chat(HISTORY)
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 2
    assert sleeps == []


def test_an_http_401_also_refreshes_the_token(fake_provider, make_baidu):
    fake_provider.script(CHAT_PREFIX + "completions_pro", [Reply.json({"error": "x"}, 401)])
    assert make_baidu().chat(HISTORY).text == CHAT_TEXT
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"yiyan_ak": fake.API_KEY, "yiyan_sk": "wrong-secret-0000"},
        {"yiyan_ak": "unknown-api-key-0000", "yiyan_sk": fake.SECRET_KEY},
    ],
)
def test_refused_keys_are_an_auth_error(make_baidu, sleeps, fields):
    # ("secret" is a piece of the fake's secret key, so it is scrubbed from the message too.)
    with pytest.raises(AuthError, match=r"refused the API key / .* key pair.*invalid_client"):
        make_baidu(api_key=json.dumps(fields)).chat(HISTORY)
    assert sleeps == []


def test_missing_credential_fields_are_named():
    with pytest.raises(InvalidRequestError, match=r"missing required field\(s\): yiyan_ak"):
        build_adapter(
            model_type="chat",
            factory="BaiduYiyan",
            model_name="ERNIE-4.0-8K",
            api_key=json.dumps({"yiyan_sk": fake.SECRET_KEY}),
        )
    with pytest.raises(InvalidRequestError, match=r"yiyan_ak, yiyan_sk"):
        build_adapter(model_type="embedding", factory="BaiduYiyan", model_name="x", api_key="")


def test_the_default_base_url_is_baidus():
    adapter = build_adapter(
        model_type="chat", factory="BaiduYiyan", model_name="ERNIE-4.0-8K", api_key=CREDENTIALS
    )
    assert adapter.base_url == "https://aip.baidubce.com"


# --- errors ---


@pytest.mark.parametrize(
    ("endpoint", "expected", "retried"),
    [
        ("fake-qps", RateLimitError, True),
        ("fake-rpm", RateLimitError, True),
        ("fake-daily", RateLimitError, True),
        ("fake-internal", ServerError, True),
        ("fake-500", ServerError, True),
        ("fake-invalid", InvalidRequestError, False),
        ("fake-no-permission", AuthError, False),
    ],
)
def test_it_classifies_errors_sent_with_http_200(make_baidu, sleeps, endpoint, expected, retried):
    with pytest.raises(ProviderError) as caught:
        make_baidu(model_name=endpoint).chat(HISTORY)
    error = caught.value
    if retried:
        assert isinstance(error, MaxRetriesExceededError)
        error = error.last_error
        assert sleeps == [1.0, 2.0, 4.0]
    else:
        assert sleeps == []
    assert isinstance(error, expected)
    assert error.provider == "BaiduYiyan"


def test_a_missing_endpoint_is_a_model_error(fake_provider, make_baidu):
    fake_provider.script(
        CHAT_PREFIX + "completions_pro",
        [Reply.json({"error_code": 3, "error_msg": "Unsupported openapi method"})],
    )
    with pytest.raises(ModelError, match="Unsupported openapi method"):
        make_baidu().chat(HISTORY)


@pytest.mark.parametrize("endpoint", ["fake-qps", "fake-invalid", "fake-unknown-code", "fake-drop"])
def test_keys_and_tokens_never_appear_in_errors(make_baidu, endpoint):
    adapter = make_baidu(model_name=endpoint)
    with pytest.raises(ProviderError) as caught:
        list(adapter.chat_streamly(HISTORY)) if endpoint == "fake-drop" else adapter.chat(HISTORY)
    for error in error_chain(caught.value):
        for secret in (fake.API_KEY, fake.SECRET_KEY, *fake.ISSUED):
            assert secret not in str(error)
            assert secret not in repr(error)


def test_a_token_echoed_by_the_provider_is_scrubbed(fake_provider, make_baidu):
    def echo(request):
        token = request.query["access_token"]
        return Reply.json({"error_code": 336003, "error_msg": f"bad request with {token}"})

    fake_provider.script(CHAT_PREFIX + "completions_pro", [echo])
    with pytest.raises(InvalidRequestError) as caught:
        make_baidu().chat(HISTORY)
    assert fake.ISSUED[-1] not in str(caught.value)
    assert "bad request with ***" in str(caught.value)


# --- streaming ---


def test_it_streams_results_until_is_end(fake_provider, make_baidu):
    stream = make_baidu().chat_streamly(HISTORY)
    assert list(stream) == CHAT_PIECES
    assert fake_provider.last_request.json["stream"] is True
    assert stream.text == CHAT_TEXT
    assert stream.usage == REPORTED  # the last report, not a sum of them
    assert stream.finish_reason == "stop"
    assert stream.done


def test_a_stream_closed_early_keeps_usage(make_baidu):
    with make_baidu(model_name="fake-nousage").chat_streamly(HISTORY) as stream:
        assert next(stream) == "Hello"
    assert stream.closed
    assert stream.usage == estimated("hi", "Hello")


def test_a_stream_that_fails_to_start_raises_its_error(fake_provider, make_baidu, sleeps):
    stream = make_baidu(model_name="fake-invalid")
    with pytest.raises(InvalidRequestError, match="336003"):
        stream.chat_streamly(HISTORY)
    assert sleeps == []


def test_a_stream_refreshes_an_expired_token(fake_provider, make_baidu):
    adapter = make_baidu()
    adapter.chat(HISTORY)
    fake.revoke_all()
    assert list(adapter.chat_streamly(HISTORY)) == CHAT_PIECES
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 2


def test_a_stream_without_is_end_is_cut_off(make_baidu):
    stream = make_baidu(model_name="fake-no-end").chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError, match="before is_end"):
        list(stream)
    assert stream.text == "Hello from the"


def test_a_dropped_stream_is_a_connection_error(make_baidu):
    stream = make_baidu(model_name="fake-drop").chat_streamly(HISTORY)
    with pytest.raises(ProviderConnectionError):
        list(stream)
    assert stream.text == "Hello"


# --- async ---


def test_it_chats_asynchronously(fake_provider, make_baidu):
    adapter = make_baidu()
    assert asyncio.run(adapter.achat(HISTORY)).usage == REPORTED
    fake.revoke_all()
    assert asyncio.run(adapter.achat(HISTORY)).text == CHAT_TEXT
    assert len(fake_provider.requests_to(TOKEN_PATH)) == 2


def test_an_async_stream_closed_early_keeps_usage(make_baidu):
    adapter = make_baidu(model_name="fake-nousage")

    async def run():
        async with await adapter.achat_streamly(HISTORY) as stream:
            await anext(stream)
        return stream

    stream = asyncio.run(run())
    assert stream.closed
    assert stream.usage == estimated("hi", "Hello")


# --- embeddings ---


def test_it_embeds_through_the_embeddings_endpoint(fake_provider, make_baidu):
    result = make_baidu("embedding", model_name="bge-large-zh").encode(["hello", "hi"])
    request = fake_provider.last_request
    assert request.path == "/baidu/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/bge_large_zh"
    assert request.json == {"input": ["hello", "hi"]}
    assert result.vectors == [[0.5, 0.5, 0.0], [0.2, 0.5, 1.0]]
    assert result.usage == Usage(2 * fake.EMBEDDING_TOKENS_PER_INPUT)


def test_it_embeds_in_batches_of_sixteen(fake_provider, make_baidu):
    result = make_baidu("embedding", model_name="Embedding-V1").encode(["x"] * 20)
    assert len(result.vectors) == 20
    embed_calls = [r for r in fake_provider.requests if "/embeddings/" in r.path]
    assert [len(r.json["input"]) for r in embed_calls] == [16, 4]
