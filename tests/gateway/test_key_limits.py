"""An application key's own token quota and budget, through the official openai SDK: a call
that would pass either is refused with 429 `insufficient_quota` before any provider call."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from openai import OpenAI

from providers.models import LLM, LLMFactory
from tenants.models import APIToken
from tenants.services.tokens import api_token_issue

HI = [{"role": "user", "content": "Hi"}]


def key_with(cast, **limits) -> OpenAI:
    """A new application key of the cast's tenant (loaded by the server on first use)."""
    token, raw = api_token_issue(user=cast.owner, name="app")
    APIToken.objects.filter(pk=token.pk).update(tenant=cast.tenant, **limits)
    return OpenAI(base_url=cast.url, api_key=raw, max_retries=0, timeout=30)


def test_a_key_token_quota_refuses_before_the_provider(cast, client, fake_provider):
    limited = key_with(cast, token_quota=40, quota_window="daily")
    limited.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI, max_tokens=10)
    sent = len(fake_provider.requests_to("/v1/chat/completions"))
    with pytest.raises(openai.RateLimitError) as caught:  # 18 used + 27 reserved > 40
        limited.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI, max_tokens=10)
    error = caught.value.response.json()["error"]
    assert caught.value.status_code == 429
    assert (error["code"], error["type"]) == ("insufficient_quota", "insufficient_quota")
    assert "token quota of key" in error["message"]
    assert len(fake_provider.requests_to("/v1/chat/completions")) == sent
    # The tenant's other keys are not limited by this one's quota.
    client.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI, max_tokens=10)


def test_a_key_budget_refuses_before_the_provider(cast, fake_provider):
    LLM.objects.update_or_create(
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o-mini",
        defaults={
            "model_type": "chat",
            "model_types": ["chat"],
            "input_price": Decimal("0.15"),
            "output_price": Decimal("0.6"),
        },
    )
    limited = key_with(cast, budget=Decimal("0.0001"))
    limited.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI, max_tokens=10)
    sent = len(fake_provider.requests_to("/v1/chat/completions"))
    with pytest.raises(openai.RateLimitError) as caught:  # up to $0.0006: over $0.0001
        limited.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI, max_tokens=1000)
    error = caught.value.response.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert "budget of key" in error["message"]
    assert len(fake_provider.requests_to("/v1/chat/completions")) == sent
