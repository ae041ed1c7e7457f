"""LLMBundle: resolution, caching, and one usage event per call (streams included)."""

import gc
import json
from decimal import Decimal

import pytest
from django.test import override_settings

from gateway.bundle import LLMBundle, ModelNotAuthorized, increase_usage
from providers.errors import ModelError
from providers.models import LLMFactory
from tenants.models import TenantLLM
from tenants.resolution import invalidate
from usage.models import UsageEvent
from usage.services.events import usage_drain

HISTORY = [{"role": "user", "content": "Hi"}]
CALL_TOKENS = 18  # the fake OpenAI chat reports 12 prompt + 6 completion tokens


@pytest.fixture(autouse=True)
def _fresh_resolutions():
    invalidate(broadcast=False)
    yield
    invalidate(broadcast=False)


def events():
    usage_drain(claim_idle_ms=0)
    return list(UsageEvent.objects.order_by("created_at"))


def test_it_resolves_name_at_factory_bare_name_and_the_default(chat_config, tenant):
    for name in ("gpt-4o-mini@OpenAI", "gpt-4o-mini", None):
        bundle = LLMBundle(tenant.pk, "chat", name)
        assert bundle.resolved.config_id == chat_config.pk
        assert bundle.resolved.full_name == "gpt-4o-mini@OpenAI"


def test_it_refuses_a_model_the_tenant_has_not_configured(chat_config, tenant):
    with pytest.raises(ModelNotAuthorized, match=r"Model\(claude-x@Anthropic\) not authorized"):
        LLMBundle(tenant.pk, "chat", "claude-x@Anthropic")
    TenantLLM.objects.filter(pk=chat_config.pk).update(status="0")
    invalidate()
    with pytest.raises(ModelNotAuthorized):
        LLMBundle(tenant.pk, "chat", "gpt-4o-mini@OpenAI")


def test_it_falls_back_to_the_system_default(tenant, catalog, fake_provider):
    config = {
        "factory": "OpenAI",
        "api_key": "sk-system-default-0000000001",
        "base_url": fake_provider.url("/v1"),
        "default_models": {"chat_model": "gpt-4o"},
    }
    with override_settings(USER_DEFAULT_LLM=json.dumps(config)):
        bundle = LLMBundle(tenant.pk, "chat")
        assert bundle.resolved.config_id is None
        assert bundle.resolved.full_name == "gpt-4o@OpenAI"
        assert bundle.chat(HISTORY).text
    assert fake_provider.requests[-1].bearer == "sk-system-default-0000000001"


def test_a_steady_state_call_makes_no_query_before_the_provider(
    chat_config, tenant, django_assert_num_queries, no_usage_redis
):
    bundle = LLMBundle(tenant.pk, "chat")
    bundle.chat(HISTORY)  # warm: resolution cached
    with django_assert_num_queries(0):
        result = LLMBundle(tenant.pk, "chat").chat(HISTORY)
    assert result.usage.total_tokens == CALL_TOKENS


def test_a_changed_config_is_seen_by_the_next_call(chat_config, tenant, fake_provider):
    bundle = LLMBundle(tenant.pk, "chat")
    bundle.chat(HISTORY)
    chat_config.api_key = "sk-rotated-key-0000000000002"
    chat_config.save()
    bundle.chat(HISTORY)
    assert fake_provider.requests[-1].bearer == "sk-rotated-key-0000000000002"


@pytest.mark.django_db(transaction=True)
def test_every_call_records_one_event_with_cost(chat_config, tenant, no_usage_redis):
    bundle = LLMBundle(tenant.pk, "chat")
    result = bundle.chat(HISTORY)
    (event,) = events()
    assert (event.prompt_tokens, event.completion_tokens, event.total_tokens) == (12, 6, 18)
    assert event.tenant_id == tenant.pk and event.tenant_llm_id == chat_config.pk
    assert event.outcome == "ok" and not event.estimated
    llm = chat_config.factory.llms.get(llm_name="gpt-4o-mini")
    expected = (12 * llm.input_price + 6 * llm.output_price) / 1_000_000
    assert abs(event.cost - expected) < Decimal("0.00000001")
    assert result.usage.total_tokens == 18
    chat_config.refresh_from_db()
    assert chat_config.used_tokens == 18


@pytest.mark.django_db(transaction=True)
def test_streams_are_recorded_when_finished_closed_or_abandoned(
    chat_config, tenant, no_usage_redis
):
    bundle = LLMBundle(tenant.pk, "chat")
    full = bundle.chat_streamly(HISTORY)
    text = "".join(full)
    assert text
    early = bundle.chat_streamly(HISTORY)
    next(early)
    early.close()
    abandoned = bundle.chat_streamly(HISTORY)
    next(abandoned)
    del abandoned
    gc.collect()
    recorded = events()
    assert len(recorded) == 3
    assert recorded[0].total_tokens == CALL_TOKENS and not recorded[0].estimated
    # Cut short: the provider's final usage never came, so the usage so far is estimated.
    assert all(e.total_tokens > 0 for e in recorded[1:])


@pytest.mark.django_db(transaction=True)
def test_a_failed_call_is_recorded_as_an_error(tenant, catalog, fake_provider, no_usage_redis):
    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="missing-model",
        model_type="chat",
        api_key="sk-x-000000000000000001",
        api_base=fake_provider.url("/v1"),
    )
    invalidate()
    with pytest.raises(ModelError, match="does not exist") as raised:
        LLMBundle(tenant.pk, "chat", "missing-model@OpenAI").chat(HISTORY)
    assert type(raised.value) is ModelError
    (event,) = events()
    assert (event.outcome, event.error_code, event.total_tokens) == ("error", "MODEL_ERROR", 0)


@pytest.mark.django_db(transaction=True)
def test_async_chat_and_stream_are_recorded(chat_config, tenant, no_usage_redis):
    import asyncio

    async def run():
        bundle = LLMBundle(tenant.pk, "chat")
        result = await bundle.achat(HISTORY)
        stream = await bundle.achat_streamly(HISTORY)
        pieces = [piece async for piece in stream]
        # The ORM ran in asgiref's worker thread: close its connection, as Django's request
        # handling would, so the test database can be dropped at the end of the session.
        from asgiref.sync import sync_to_async
        from django.db import connection

        await sync_to_async(lambda: connection.close())()
        return result, pieces

    result, pieces = asyncio.run(run())
    assert result.usage.total_tokens == CALL_TOKENS and pieces
    assert [e.total_tokens for e in events()] == [CALL_TOKENS, CALL_TOKENS]


@pytest.mark.django_db(transaction=True)
def test_increase_usage_keeps_ragflows_signature(chat_config, tenant, no_usage_redis):
    assert increase_usage(tenant.pk, "chat", 250, "gpt-4o-mini@OpenAI") is True
    assert increase_usage(tenant.pk, "chat", 5, "nope@OpenAI") is False
    (event,) = events()
    assert event.total_tokens == 250
    chat_config.refresh_from_db()
    assert chat_config.used_tokens == 250


@pytest.mark.django_db(transaction=True)
def test_other_model_types_are_recorded(tenant, catalog, fake_provider, no_usage_redis):
    openai = LLMFactory.objects.get(name="OpenAI")
    for name, model_type in (("text-embedding-3-small", "embedding"), ("tts-1", "tts")):
        TenantLLM.objects.create(
            tenant=tenant,
            factory=openai,
            llm_name=name,
            model_type=model_type,
            api_key="sk-y-000000000000000001",
            api_base=fake_provider.url("/v1"),
        )
    invalidate()
    vectors = LLMBundle(tenant.pk, "embedding", "text-embedding-3-small").encode(["a", "b"])
    assert len(vectors.vectors) == 2
    audio = b"".join(LLMBundle(tenant.pk, "tts", "tts-1").tts("Hello there"))
    assert audio
    recorded = {e.model_type: e for e in events()}
    assert recorded["embedding"].total_tokens == vectors.usage.total_tokens
    assert recorded["tts"].total_tokens > 0 and recorded["tts"].estimated
