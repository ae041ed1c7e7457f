"""Quotas: windows, scopes, bypasses and the 80 % warning."""

import logging
from datetime import UTC, datetime

import pytest

from gateway.bundle import LLMBundle
from providers.errors import QuotaExceededError
from tenants.models import Tenant, TenantLLM
from tenants.resolution import invalidate
from usage.models import QuotaCounter
from usage.quotas import config_rule, window_start
from usage.selectors.quotas import quota_used

HISTORY = [{"role": "user", "content": "Hi"}]
SMALL = {"max_tokens": 10}


@pytest.fixture(autouse=True)
def _fresh():
    invalidate(broadcast=False)


def test_windows_follow_the_calendar_of_the_configured_time_zone(settings):
    settings.QUOTA_TIME_ZONE = "Asia/Tokyo"
    moment = datetime(2026, 11, 30, 20, 30, tzinfo=UTC)  # already Dec 1st, 05:30 in Tokyo
    assert window_start("daily", moment) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert window_start("monthly", moment) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert window_start("none", moment) == datetime(1970, 1, 1, tzinfo=UTC)
    settings.QUOTA_TIME_ZONE = "UTC"
    assert window_start("monthly", moment) == datetime(2026, 11, 1, tzinfo=UTC)


def test_a_model_quota_stops_calls_before_the_provider(chat_config, tenant, fake_provider):
    TenantLLM.objects.filter(pk=chat_config.pk).update(token_quota=60, quota_window="daily")
    invalidate()
    bundle = LLMBundle(tenant.pk, "chat")
    bundle.chat(HISTORY, gen_conf=SMALL)
    bundle.chat(HISTORY, gen_conf=SMALL)
    sent = len(fake_provider.requests)
    with pytest.raises(QuotaExceededError, match="token quota of model gpt-4o-mini@OpenAI"):
        bundle.chat(HISTORY, gen_conf=SMALL)
    assert len(fake_provider.requests) == sent
    config = TenantLLM.objects.get(pk=chat_config.pk)
    assert quota_used(rule=config_rule(config)) == 36  # settled with the real usage, 18 a call


def test_last_windows_usage_does_not_count(chat_config, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(token_quota=50, quota_window="daily")
    invalidate()
    QuotaCounter.objects.create(
        scope="tenant",
        scope_id=str(tenant.pk),
        limit=50,
        window_start=datetime(2020, 1, 1, tzinfo=UTC),
        used=10_000,
    )
    assert LLMBundle(tenant.pk, "chat").chat(HISTORY, gen_conf=SMALL).text


def test_unlimited_and_superuser_tenants_bypass(chat_config, tenant, owner):
    Tenant.objects.filter(pk=tenant.pk).update(token_quota=0, unlimited=True)
    invalidate()
    assert LLMBundle(tenant.pk, "chat").chat(HISTORY).text
    Tenant.objects.filter(pk=tenant.pk).update(unlimited=False)
    invalidate()
    with pytest.raises(QuotaExceededError):
        LLMBundle(tenant.pk, "chat").chat(HISTORY)
    owner.is_superuser = True
    owner.save()
    assert LLMBundle(tenant.pk, "chat").chat(HISTORY).text


def test_a_warning_is_logged_once_at_80_percent(chat_config, tenant, caplog):
    Tenant.objects.filter(pk=tenant.pk).update(token_quota=100, quota_window="monthly")
    invalidate()
    bundle = LLMBundle(tenant.pk, "chat")
    with caplog.at_level(logging.WARNING, logger="usage.services.alerts"):
        for _ in range(5):  # 5 x 18 = 90 tokens: crosses 80 once
            bundle.chat(HISTORY, gen_conf=SMALL)
    warnings = [r for r in caplog.records if "used 80 %" in r.getMessage()]
    assert len(warnings) == 1
    assert "tenant" in warnings[0].getMessage()
