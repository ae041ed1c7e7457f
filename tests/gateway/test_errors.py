"""Every error class the SDKs raise, in OpenAI's error shape, and bad input refused before
anything reaches a provider (no call, no quota reserved, no usage recorded)."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tenants.models import Role, TenantMember
from tests.fakeprovider.openai import CHAT_TEXT

HI = [{"role": "user", "content": "Hi"}]


def error_of(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_wrong_or_missing_token_is_an_authentication_error(cast, fake_provider):
    wrong = OpenAI(base_url=cast.url, api_key="rgl_deadbeef_" + "A" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)
    missing = cast.post("/chat/completions", headers={"Authorization": ""}, json={})

    assert error_of(caught.value)["code"] == "invalid_api_key"
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert fake_provider.requests == []


def test_a_revoked_token_is_refused_on_the_next_request(cast, client):
    from tenants.models import APIToken
    from tenants.services.tokens import api_token_revoke

    client.models.list()  # cached by the server now
    token = APIToken.objects.get(user=cast.owner)
    api_token_revoke(token=token)

    # The server sees the revocation at its next look at the shared generation (<= 1 s).
    import time

    deadline = time.monotonic() + 5
    while True:
        try:
            client.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked token is still accepted"
        time.sleep(0.1)


def member_client(cast) -> OpenAI:
    return OpenAI(
        base_url=cast.url,
        api_key=cast.member_token,
        max_retries=0,
        default_headers={"X-Tenant-ID": str(cast.tenant.pk)},
    )


def test_an_invited_member_is_denied(cast, fake_provider):
    membership = TenantMember.objects.get(user=cast.member, tenant=cast.tenant)
    membership.role = Role.INVITE
    membership.save()  # the server's cached membership is dropped (within a second)
    member = member_client(cast)

    with pytest.raises(openai.PermissionDeniedError) as caught:
        member.chat.completions.create(model="default", messages=HI)

    assert error_of(caught.value)["code"] == "permission_denied"
    assert fake_provider.requests == []


def test_a_member_calls_the_tenants_models(cast):
    member = member_client(cast)

    assert (
        member.chat.completions.create(model="default", messages=HI).choices[0].message.content
        == CHAT_TEXT
    )


def test_a_tenant_of_someone_else_is_not_found(cast):
    outsider = OpenAI(
        base_url=cast.url,
        api_key=cast.outsider_token,
        max_retries=0,
        default_headers={"X-Tenant-ID": str(cast.tenant.pk)},
    )
    with pytest.raises(openai.NotFoundError) as caught:
        outsider.chat.completions.create(model="default", messages=HI)

    assert error_of(caught.value)["code"] == "tenant_not_found"


def test_an_unknown_model_is_not_found_with_how_to_name_models(client, fake_provider):
    for model in ("gpt-5@OpenAI", "nothing", "gpt-4o-mini@NoSuchFactory"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model=model, messages=HI)

        error = error_of(caught.value)
        assert error["code"] == "model_not_found"
        assert "name@factory" in error["message"]
    assert fake_provider.requests == []


def test_an_ambiguous_bare_name_is_not_found_naming_the_choices(cast, client, fake_provider):
    from providers.models import LLMFactory
    from tenants.models import TenantLLM

    TenantLLM.objects.create(
        tenant=cast.tenant,
        factory=LLMFactory.objects.get_or_create(name="DeepSeek")[0],
        llm_name="gpt-4o-mini",
        model_type="chat",
        api_key="sk-other",
        api_base=fake_provider.url("/v1"),
    )

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    message = error_of(caught.value)["message"]
    assert "gpt-4o-mini@DeepSeek" in message and "gpt-4o-mini@OpenAI" in message


def test_a_model_of_another_type_is_a_bad_request_naming_its_type(client, fake_provider):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="text-embedding-3-small@OpenAI", messages=HI)
    with pytest.raises(openai.BadRequestError) as embedding:
        client.embeddings.create(model="gpt-4o-mini@OpenAI", input="x")

    assert "is a embedding model" in error_of(caught.value)["message"]
    assert "is a chat model" in error_of(embedding.value)["message"]
    assert fake_provider.requests == []


BAD_CHAT = [
    ({"messages": HI}, "model"),
    ({"model": "default"}, "messages"),
    ({"model": 42, "messages": HI}, "model"),
    ({"model": "default", "messages": "Hi"}, "messages"),
    ({"model": "default", "messages": []}, "messages"),
    ({"model": "default", "messages": [{"role": "robot", "content": "x"}]}, "messages"),
    ({"model": "default", "messages": [{"role": "user", "content": 5}]}, "messages"),
    ({"model": "default", "messages": HI, "temperature": "hot"}, "temperature"),
    ({"model": "default", "messages": HI, "temperature": 3}, "temperature"),
    ({"model": "default", "messages": HI, "max_tokens": 0}, "max_tokens"),
    ({"model": "default", "messages": HI, "stop": [1]}, "stop"),
    ({"model": "default", "messages": HI, "stream": "yes"}, "stream"),
    (
        {"model": "default", "messages": HI, "stream_options": {"include_usage": True}},
        "stream_options",
    ),
    ({"model": "default", "messages": HI, "tools": [{"type": "function"}]}, "tools"),
    ({"model": "default", "messages": HI, "response_format": {"type": "xml"}}, "response_format"),
    ({"model": "default", "messages": HI, "n": 3}, "n"),
]


def test_bad_chat_input_is_a_400_before_any_call(cast, fake_provider):
    for body, param in BAD_CHAT:
        reply = cast.post("/chat/completions", json=body)

        assert reply.status_code == 400, (body, reply.text)
        error = reply.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param), body
    assert fake_provider.requests == []
    assert cast.events(0, timeout=0) == []


BAD_OTHERS = [
    ("/embeddings", {"model": "default", "input": ""}, "input"),
    ("/embeddings", {"model": "default", "input": []}, "input"),
    ("/embeddings", {"model": "default", "input": [1, 2, 3]}, "input"),
    (
        "/embeddings",
        {"model": "default", "input": "x", "encoding_format": "int8"},
        "encoding_format",
    ),
    ("/embeddings", {"model": "default", "input": "x", "dimensions": -1}, "dimensions"),
    ("/rerank", {"model": "default", "query": "", "documents": ["a"]}, "query"),
    ("/rerank", {"model": "default", "query": "q", "documents": []}, "documents"),
    ("/audio/speech", {"model": "tts-1", "voice": "alloy"}, "input"),
    (
        "/audio/speech",
        {"model": "tts-1", "input": "x", "response_format": "midi"},
        "response_format",
    ),
]


def test_bad_input_of_the_other_endpoints_is_a_400(cast, fake_provider):
    for path, body, param in BAD_OTHERS:
        reply = cast.post(path, json=body)

        assert reply.status_code == 400, (path, body, reply.text)
        assert reply.json()["error"]["param"] == param, (path, body)
    assert fake_provider.requests == []


def test_unknown_fields_are_ignored_as_openai_ignores_them(cast):
    reply = cast.post(
        "/chat/completions",
        json={"model": "default", "messages": HI, "frobnicate": True, "metadata": {"a": "b"}},
    )

    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == CHAT_TEXT


def test_a_body_that_is_not_json_is_a_400(cast, fake_provider):
    reply = cast.post(
        "/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert reply.status_code == 400
    assert "JSON" in reply.json()["error"]["message"]


def test_integers_past_64_bits_are_passed_on_exactly(cast, fake_provider):
    # Not rounded to a float on the way (orjson's reader would): the provider judges them.
    body = (
        b'{"model": "default", "seed": 123456789012345678901234567890,'
        b' "messages": [{"role": "user", "content": "Hi"}]}'
    )
    reply = cast.post(
        "/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )

    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == CHAT_TEXT
    assert fake_provider.last_request.json["seed"] == 123456789012345678901234567890


def test_an_upload_over_the_limit_is_a_413_unread(client, cast, fake_provider):
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("big.wav", b"\x00" * (20 * 1024 * 1024))
        )

    assert caught.value.status_code == 413
    assert error_of(caught.value)["code"] == "request_too_large"
    assert fake_provider.requests == []


def test_a_tenant_at_its_quota_gets_429_and_the_provider_sees_nothing(cast, client, fake_provider):
    cast.tenant.token_quota = 10
    cast.tenant.save()

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="default", messages=HI)

    error = error_of(caught.value)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert fake_provider.requests == []


def test_a_provider_rate_limit_is_a_429_with_its_retry_after(client):
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="fake-429@OpenAI", messages=HI)

    assert error_of(caught.value)["code"] == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "2"


def test_a_provider_failure_is_a_502_with_its_message_scrubbed(client, cast):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="fake-500@OpenAI", messages=HI)

    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "upstream_error"
    assert "The server had an error" in error["message"]
    assert "sk-gateway-openai-0001" not in caught.value.response.text
    [event] = cast.events(1)
    assert event.outcome == "error"


def test_a_provider_timeout_is_a_504(client):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="fake-slow@OpenAI", messages=HI)

    assert caught.value.status_code == 504
    assert error_of(caught.value)["code"] == "upstream_timeout"


def test_a_refused_provider_key_is_a_502_not_the_callers_401(cast, client, fake_provider):
    from tenants.models import TenantLLM

    TenantLLM.objects.filter(tenant=cast.tenant, llm_name="gpt-4o-mini").update(api_key="")
    config = TenantLLM.objects.get(tenant=cast.tenant, llm_name="gpt-4o-mini")
    config.api_key = "sk-invalid-stored-key-123"
    config.save()

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)

    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "upstream_auth_error"
    assert "sk-invalid-stored-key-123" not in caught.value.response.text


def test_unknown_openai_paths_are_openai_404s_and_other_v1_paths_are_left_alone(cast):
    import httpx

    unknown = cast.post("/images/generations", json={})
    method = httpx.get(
        f"{cast.url}/chat/completions", headers={"Authorization": f"Bearer {cast.token}"}
    )
    ragflow = httpx.get(f"{cast.url}/llm/my_llms")

    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"
    assert method.status_code == 405
    assert "error" not in (
        ragflow.json()
        if ragflow.headers.get("content-type", "").startswith("application/json")
        else {}
    )


def test_tools_for_a_factory_without_them_are_a_400_naming_it(cast, client, fake_provider):
    from providers.models import LLMFactory
    from tenants.models import TenantLLM

    TenantLLM.objects.create(
        tenant=cast.tenant,
        factory=LLMFactory.objects.get_or_create(name="BaiduYiyan")[0],
        llm_name="ernie-4.0-8k",
        model_type="chat",
        api_key='{"yiyan_ak": "ak-gateway", "yiyan_sk": "sk-gateway"}',
        api_base=fake_provider.url("/baidu"),
    )
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="ernie-4.0-8k@BaiduYiyan", messages=HI, tools=[tool])

    assert "BaiduYiyan" in error_of(caught.value)["message"]
    assert fake_provider.requests == []
