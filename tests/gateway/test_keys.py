"""Application keys on the live gateway, through the official openai SDK: scopes, allowed
models (refused and unlisted), expiry, revocation in the server's process, the bound tenant."""

from __future__ import annotations

import time
from datetime import timedelta

import openai
import pytest
from django.utils import timezone
from openai import OpenAI

from tenants.models import APIToken, Role, TenantMember
from tenants.selectors import tenant_owned_by
from tenants.services.tokens import api_token_create, api_token_revoke, api_token_update

HI = [{"role": "user", "content": "Hi"}]


def sdk(cast, raw: str, **headers) -> OpenAI:
    return OpenAI(
        base_url=cast.url, api_key=raw, max_retries=0, timeout=30, default_headers=headers
    )


def key(cast, **settings) -> tuple[APIToken, str]:
    settings.setdefault("name", "app")
    return api_token_create(user=cast.owner, tenant=cast.tenant, **settings)


def eventually(check, timeout: float = 5.0):
    """The server drops cached identities within a second of a change (shared generation)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_key_without_invoke_scope_is_403_and_calls_nothing(cast, fake_provider):
    _, raw = key(cast, scopes=["manage"])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(cast, raw).chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)

    error = caught.value.response.json()["error"]
    assert error["code"] == "permission_denied" and "invoke" in error["message"]
    assert fake_provider.requests == []


def test_a_model_outside_the_keys_list_is_403_naming_it_and_is_not_listed(cast, fake_provider):
    _, raw = key(cast, models=["gpt-4o-mini@OpenAI", "*@Cohere"])
    client = sdk(cast, raw)

    listed = sorted(model.id for model in client.models.list())
    assert listed == ["gpt-4o-mini@OpenAI", "rerank-v3.5@Cohere"]
    ok = client.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)
    assert ok.choices[0].message.content
    for model in ("claude-sonnet-4-5@Anthropic", "fake-tools"):
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model=model, messages=HI)
        error = caught.value.response.json()["error"]
        assert error["code"] == "permission_denied"
        assert error["message"].startswith("This API key may not use the model ")
        assert model.split("@")[0] in error["message"]
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="text-embedding-3-small@OpenAI", input=["a"])
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="default", input=["a"])  # the default resolves to it
    with pytest.raises(openai.PermissionDeniedError):
        client.models.retrieve("gemini-2.5-flash@Gemini")
    assert len(fake_provider.requests) == 1  # only the allowed call went upstream


def test_a_changed_model_list_applies_within_a_second(cast):
    token, raw = key(cast, models=["gpt-4o-mini@OpenAI"])
    client = sdk(cast, raw)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini@OpenAI"]
    api_token_update(token=token, models=["*@Anthropic"])

    def listed():
        assert [m.id for m in client.models.list()] == ["claude-sonnet-4-5@Anthropic"]

    eventually(listed)


def test_an_expired_key_is_401(cast):
    token, raw = key(cast, expires_at=timezone.now() + timedelta(seconds=1.5))
    client = sdk(cast, raw)
    client.models.list()  # cached by the server with its expiry
    time.sleep(1.6)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert APIToken.objects.get(pk=token.pk).revoked_at is None


def test_a_revoked_key_is_refused_by_the_server_process(cast):
    token, raw = key(cast)
    client = sdk(cast, raw)
    client.models.list()  # the server (another process) has it cached now
    api_token_revoke(token=token)  # this process: the shared generation is bumped

    def refused():
        try:
            client.models.list()
        except openai.AuthenticationError:
            return
        raise AssertionError("the revoked key is still accepted")

    eventually(refused)


def test_an_application_key_acts_only_for_its_tenant(cast, fake_provider):
    from django.contrib.auth import get_user_model

    other_owner = get_user_model().objects.create_user(username="gw-other@example.com")
    other = tenant_owned_by(user=other_owner)
    TenantMember.objects.create(user=cast.owner, tenant=other, role=Role.ADMIN)
    _, raw = key(cast)

    with pytest.raises(openai.NotFoundError) as caught:
        sdk(cast, raw, **{"X-Tenant-ID": str(other.pk)}).models.list()
    assert caught.value.response.json()["error"]["code"] == "tenant_not_found"
    own = sdk(cast, raw, **{"X-Tenant-ID": str(cast.tenant.pk)}).models.list()
    assert len(list(own)) > 0


def test_personal_tokens_keep_both_scopes_and_every_model(cast, client):
    assert len(list(client.models.list())) == 13
