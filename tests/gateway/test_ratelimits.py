"""Rate limits (issue 11) through the official openai SDK against the live gateway: RPM and
TPM per key and per tenant, 429 `rate_limit_exceeded` with Retry-After and OpenAI's
x-ratelimit-* headers, no provider call for a refused request, and requests refused for
auth, permission, naming or input never counted. The server counts in the run's Redis (when
REDIS_URL is set), shared with this process's LLMBundle."""

from __future__ import annotations

import time

import openai
import pytest
from django.conf import settings
from openai import OpenAI

from providers.tokens import num_tokens_from_string
from tenants.models import APIToken, Role, TenantMember
from usage import ratelimits

HI = [{"role": "user", "content": "Hi"}]
MODEL = "gpt-4o-mini@OpenAI"
HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
TOKEN_HEADERS = (
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


@pytest.fixture(scope="module", autouse=True)
def _no_counters_of_earlier_runs():
    """Token ids restart with each test database; counters of an earlier run (kept up to two
    minutes) must not be counted against this one's."""
    backend = ratelimits.backend()
    if isinstance(backend, ratelimits.RedisBackend):
        backend.sync.reset()


def _limit_token(cast, *, rpm=None, tpm=None, user=None) -> None:
    token = APIToken.objects.get(user=user or cast.owner)
    token.rpm, token.tpm = rpm, tpm
    token.save()


def _limit_tenant(cast, *, rpm=None, tpm=None) -> None:
    cast.tenant.rpm, cast.tenant.tpm = rpm, tpm
    cast.tenant.save()


def _member(cast) -> OpenAI:
    """The member's key, acting for the owner's tenant."""
    return OpenAI(
        base_url=cast.url,
        api_key=cast.member_token,
        max_retries=0,
        default_headers={"X-Tenant-ID": str(cast.tenant.pk)},
    )


def _chat(client, **kwargs):
    """A chat call with its raw response (headers) and the parsed completion."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HI, **kwargs)
    return raw.headers, raw.parse()


def _refused(call) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        call()
    return caught.value


def test_a_key_over_its_rpm_gets_429_with_openais_headers_and_no_provider_call(
    cast, client, fake_provider
):
    _limit_token(cast, rpm=2)
    first, completion = _chat(client)
    second, _ = _chat(client)
    sent = len(fake_provider.requests)
    refused = _refused(lambda: client.chat.completions.create(model=MODEL, messages=HI))
    streamed = _refused(
        lambda: client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    )

    assert completion.choices[0].message.content
    assert [first[h] for h in HEADERS[:2]] == ["2", "1"]
    assert [second[h] for h in HEADERS[:2]] == ["2", "0"]
    assert second["x-ratelimit-reset-requests"].endswith("s")
    assert not any(h in first for h in TOKEN_HEADERS)  # no token limit: no token headers
    assert len(fake_provider.requests) == sent == 2  # the refused calls reached no provider
    for error in (refused, streamed):
        body = error.response.json()["error"]
        assert body["code"] == "rate_limit_exceeded"
        assert body["type"] == "requests"
        assert "Limit 2, Used 2, Requested 1" in body["message"]
        headers = error.response.headers
        assert 1 <= int(headers["retry-after"]) <= 120
        assert [headers[h] for h in HEADERS[:2]] == ["2", "0"]
        assert headers["x-ratelimit-reset-requests"]


def test_tpm_counts_the_estimate_before_the_call_and_settles_with_the_real_usage(
    cast, client, fake_provider
):
    _limit_token(cast, tpm=600)
    estimate = num_tokens_from_string("Hi") + 200 + 8 * 2  # prompt + max_tokens + framing
    headers, completion = _chat(client, max_tokens=200)
    used = completion.usage.total_tokens  # 18 from the fake provider

    assert headers["x-ratelimit-limit-tokens"] == "600"
    assert headers["x-ratelimit-remaining-tokens"] == str(600 - estimate)
    assert not any(h in headers for h in HEADERS)  # no request limit: no request headers
    # Settled in the background: the next response reads the real usage.
    deadline = time.monotonic() + 10
    while True:
        listed = client.models.with_raw_response.list().headers
        if listed["x-ratelimit-remaining-tokens"] == str(600 - used) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert listed["x-ratelimit-remaining-tokens"] == str(600 - used)

    sent = len(fake_provider.requests)
    too_many = _refused(
        lambda: client.chat.completions.create(model=MODEL, messages=HI, max_tokens=570)
    )
    too_large = _refused(
        lambda: client.chat.completions.create(model=MODEL, messages=HI, max_tokens=700)
    )

    assert len(fake_provider.requests) == sent
    assert too_many.response.json()["error"]["type"] == "tokens"
    assert too_many.response.headers["retry-after"]
    assert too_many.response.headers["x-ratelimit-remaining-tokens"] == str(600 - used)
    assert f"Requested {num_tokens_from_string('Hi') + 570 + 16}" in too_many.message
    # Larger than the limit itself: waiting would not help, so no Retry-After.
    assert "larger than the limit" in too_large.message
    assert "retry-after" not in too_large.response.headers


def test_requests_refused_for_auth_permission_naming_or_input_do_not_count(
    cast, client, fake_provider
):
    _limit_tenant(cast, rpm=1)
    invited = TenantMember.objects.get(user=cast.member, tenant=cast.tenant)
    invited.role = Role.INVITE
    invited.save()
    for _ in range(3):
        wrong = OpenAI(base_url=cast.url, api_key="rgl_deadbeef_" + "A" * 43, max_retries=0)
        with pytest.raises(openai.AuthenticationError):  # 401
            wrong.chat.completions.create(model=MODEL, messages=HI)
        member = _member(cast)
        with pytest.raises(openai.PermissionDeniedError):  # 403
            member.chat.completions.create(model=MODEL, messages=HI)
        with pytest.raises(openai.NotFoundError) as not_found:  # 404
            client.chat.completions.create(model="no-such-model@OpenAI", messages=HI)
        bad = cast.post("/chat/completions", json={"model": MODEL})  # 400: no messages
        assert bad.status_code == 400

    # The caller's refused requests still show its limits, uncharged.
    assert not_found.value.response.headers["x-ratelimit-remaining-requests"] == "1"
    assert bad.headers["x-ratelimit-remaining-requests"] == "1"
    assert fake_provider.requests == []
    headers, _ = _chat(client)  # the one request of this minute
    assert headers["x-ratelimit-remaining-requests"] == "0"
    _refused(lambda: client.chat.completions.create(model=MODEL, messages=HI))
    assert len(fake_provider.requests) == 1


def test_the_tenants_limit_applies_across_its_keys_and_the_tightest_is_reported(
    cast, client, fake_provider
):
    _limit_tenant(cast, rpm=2)
    _limit_token(cast, rpm=10)
    member = _member(cast)

    owner_headers, _ = _chat(client)
    member_headers, _ = _chat(member)
    refused = _refused(lambda: client.chat.completions.create(model=MODEL, messages=HI))
    embeddings = _refused(
        lambda: member.embeddings.create(model="text-embedding-3-small@OpenAI", input="x")
    )

    # The tenant's 2 is tighter than the owner's key's 10.
    assert [owner_headers[h] for h in HEADERS[:2]] == ["2", "1"]
    assert [member_headers[h] for h in HEADERS[:2]] == ["2", "0"]
    assert "tenant" in refused.message
    assert embeddings.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake_provider.requests) == 2


def test_a_key_limit_tighter_than_the_tenants_is_the_one_reported(cast, client):
    _limit_tenant(cast, rpm=50, tpm=100_000)
    _limit_token(cast, rpm=3, tpm=200_000)
    headers, _ = _chat(client)

    assert [headers[h] for h in HEADERS[:2]] == ["3", "2"]
    assert headers["x-ratelimit-limit-tokens"] == "100000"


def test_llmbundle_respects_the_tenant_limit_shared_with_the_gateway(cast, client):
    from gateway.bundle import LLMBundle

    if not settings.RATELIMIT_REDIS_URL:
        pytest.skip("without Redis each process counts its own (see test_ratelimits_storage)")
    _limit_tenant(cast, rpm=2)
    bundle = LLMBundle(cast.tenant.pk, "chat")
    bundle.chat(HI)  # in this process
    headers, _ = _chat(client)  # in the server's: the same counter

    with pytest.raises(ratelimits.RateLimitExceeded) as caught:
        bundle.chat(HI)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.kind == "requests"
    assert caught.value.retry_after > 0
