"""Quota counters in Redis (issue 12 Must 5) and on the database path, seeded from the ledger
(issue 8: a quota set mid-window counts the window's usage already there)."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from gateway.bundle import LLMBundle
from providers.errors import QuotaExceededError
from tenants.models import Tenant, TenantLLM
from tenants.resolution import invalidate
from usage.quotas import config_rule, tenant_rule, window_start
from usage.records import UsageRecord
from usage.selectors.quotas import quota_ledger_used, quota_used
from usage.services.ledger import apply_records
from usage.services.quota_redis import counter_key, quota_store, reset_store
from usage.services.quotas import (
    aquota_reserve,
    aquota_settle,
    quota_reconcile,
    quota_release,
    quota_reserve,
    quota_settle,
)

HISTORY = [{"role": "user", "content": "Hi"}]
SMALL = {"max_tokens": 10}
CALL_TOKENS = 18  # what the fake provider reports for a chat call


@pytest.fixture(autouse=True)
def _fresh():
    invalidate(broadcast=False)


@pytest.fixture(params=["redis", "database"])
def backend(request, settings):
    """Each test runs on the Redis path and on the database path."""
    if request.param == "database":
        settings.QUOTA_REDIS_URL = ""
    elif not settings.QUOTA_REDIS_URL:
        pytest.skip("no Redis: set REDIS_URL")
    reset_store()
    return request.param


def ledger_usage(tenant, config, tokens, *, calls=1):
    """Usage already in the ledger (as the writer leaves it), `tokens` per call."""
    apply_records(
        [
            UsageRecord(
                tenant_id=str(tenant.pk),
                tenant_llm_id=config.pk,
                factory="OpenAI",
                llm_name=config.llm_name,
                model_type="chat",
                prompt_tokens=tokens,
                total_tokens=tokens,
                cost="0.001",
            )
            for _ in range(calls)
        ]
    )


def set_quota(tenant, quota, window="monthly"):
    tenant = Tenant.objects.get(pk=tenant.pk)
    tenant.token_quota = quota
    tenant.quota_window = window
    tenant.save()
    invalidate()
    return tenant


@pytest.mark.django_db(transaction=True)
def test_racing_reservations_take_exactly_the_quota(backend, tenant):
    tenant = set_quota(tenant, 1_000)
    rule = tenant_rule(tenant)
    outcomes = []

    def call(_):
        try:
            reservation = quota_reserve(rules=(rule,), tokens=100)
        except QuotaExceededError:
            outcomes.append("refused")
        else:
            quota_settle(reservation=reservation, actual_tokens=100)
            outcomes.append("ok")
        finally:
            connection.close()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(call, range(160)))
    assert outcomes.count("ok") == 10  # 16 threads racing for the last tokens: no overspend
    assert quota_used(rule=rule) == 1_000


@pytest.mark.django_db(transaction=True)
def test_racing_reservations_on_an_event_loop_take_exactly_the_quota(tenant, settings):
    import asyncio

    if not settings.QUOTA_REDIS_URL:
        pytest.skip("no Redis: set REDIS_URL")
    reset_store()
    rule = tenant_rule(set_quota(tenant, 1_000))
    quota_release(reservation=quota_reserve(rules=(rule,), tokens=0))  # the counter, seeded

    async def call():
        reservation = await aquota_reserve(rules=(rule,), tokens=100)
        assert reservation is not None and reservation.backend == "redis"
        await aquota_settle(reservation=reservation, actual_tokens=100)

    async def race():
        return await asyncio.gather(*(call() for _ in range(40)), return_exceptions=True)

    outcomes = asyncio.run(race())
    assert [o for o in outcomes if o is not None and not isinstance(o, QuotaExceededError)] == []
    assert outcomes.count(None) == 10  # 40 calls in flight for the last tokens: no overspend
    assert quota_used(rule=rule) == 1_000


def test_a_quota_set_mid_window_counts_the_ledger(
    backend, tenant, chat_config, fake_provider, api_for, owner
):
    ledger_usage(tenant, chat_config, 400, calls=2)  # 800 tokens before any quota
    tenant = set_quota(tenant, 850)
    quota = api_for(owner).get("/api/v1/usage/quota").json()["data"]["tenant"]
    assert (quota["quota"], quota["used"], quota["remaining"]) == (850, 800, 50)
    sent = len(fake_provider.requests)
    with pytest.raises(QuotaExceededError, match="800 tokens of 850 tokens used this month"):
        LLMBundle(tenant.pk, "chat").chat(HISTORY, gen_conf={"max_tokens": 100})
    assert len(fake_provider.requests) == sent  # refused before the provider
    # A smaller call fits in what is left, and is counted on top of the ledger's usage.
    LLMBundle(tenant.pk, "chat").chat(HISTORY, gen_conf={"max_tokens": 10})
    assert quota_used(rule=tenant_rule(tenant)) == 800 + CALL_TOKENS


def test_a_changed_quota_starts_again_from_the_ledger(backend, tenant, chat_config):
    tenant = set_quota(tenant, 1_000)
    ledger_usage(tenant, chat_config, 300)
    first = quota_reserve(rules=(tenant_rule(tenant),), tokens=10)
    quota_settle(reservation=first, actual_tokens=10)
    assert quota_used(rule=tenant_rule(tenant)) == 310  # seeded 300 + this call (not yet in
    tenant = set_quota(tenant, 2_000)  # ... the ledger): the new quota reads the ledger
    assert quota_used(rule=tenant_rule(tenant)) == 300
    quota_settle(reservation=quota_reserve(rules=(tenant_rule(tenant),), tokens=5), actual_tokens=5)
    assert quota_used(rule=tenant_rule(tenant)) == 305


def test_a_model_quota_counts_only_that_models_ledger(backend, tenant, chat_config, catalog):
    from providers.models import LLMFactory

    other = TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
    )
    ledger_usage(tenant, chat_config, 70)
    ledger_usage(tenant, other, 500)
    TenantLLM.objects.filter(pk=chat_config.pk).update(token_quota=100, quota_window="daily")
    rule = config_rule(TenantLLM.objects.select_related("factory").get(pk=chat_config.pk))
    assert quota_ledger_used(rule=rule, start=window_start("daily")) == 70
    with pytest.raises(QuotaExceededError):
        quota_reserve(rules=(rule,), tokens=31)
    quota_reserve(rules=(rule,), tokens=30)


def test_all_rules_or_none(backend, tenant, chat_config):
    tenant = set_quota(tenant, 1_000)
    TenantLLM.objects.filter(pk=chat_config.pk).update(token_quota=50)
    rules = (
        tenant_rule(tenant),
        config_rule(TenantLLM.objects.select_related("factory").get(pk=chat_config.pk)),
    )
    with pytest.raises(QuotaExceededError, match="model gpt-4o-mini@OpenAI"):
        quota_reserve(rules=rules, tokens=60)
    assert [quota_used(rule=rule) for rule in rules] == [0, 0]  # the tenant's was not taken


@pytest.mark.django_db(transaction=True)
def test_steady_state_is_one_script_each_way_and_no_query(
    tenant, private_redis, settings, django_assert_num_queries
):
    settings.QUOTA_REDIS_URL = private_redis.url
    reset_store()
    rule = tenant_rule(set_quota(tenant, 10**9))
    quota_settle(reservation=quota_reserve(rules=(rule,), tokens=100), actual_tokens=18)
    client = quota_store().client
    before = client.info("commandstats")
    with django_assert_num_queries(0):
        for _ in range(20):
            quota_settle(reservation=quota_reserve(rules=(rule,), tokens=100), actual_tokens=18)
    after = client.info("commandstats")
    assert after["cmdstat_evalsha"]["calls"] - before["cmdstat_evalsha"]["calls"] == 40
    others = {
        name: stats["calls"] - before.get(name, {"calls": 0})["calls"]
        for name, stats in after.items()
        # INFO itself, and the commands the two scripts run inside Redis.
        if name.split("_", 1)[1] not in ("evalsha", "info", "hget", "hincrby", "hset", "exists")
    }
    assert not any(others.values()), others
    assert quota_used(rule=rule) == 21 * 18


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_database_path_counts_what_redis_counted(
    tenant, chat_config, fake_provider, private_redis, settings, no_usage_redis
):
    from usage.services.events import usage_drain

    settings.QUOTA_REDIS_URL = private_redis.url
    reset_store()
    set_quota(tenant, 95)
    bundle = LLMBundle(tenant.pk, "chat")
    for _ in range(3):  # each reserves 27 tokens and uses 18
        bundle.chat(HISTORY, gen_conf=SMALL)
    usage_drain()
    assert quota_used(rule=tenant_rule(Tenant.objects.get(pk=tenant.pk))) == 54
    private_redis.stop()
    bundle.chat(HISTORY, gen_conf=SMALL)  # 54 + 27 fits: the database counter starts at 54
    sent = len(fake_provider.requests)
    with pytest.raises(QuotaExceededError, match="72 tokens of 95"):
        bundle.chat(HISTORY, gen_conf=SMALL)
    assert len(fake_provider.requests) == sent
    connection.close()


def test_reconciliation_brings_redis_back_to_the_ledger(tenant, chat_config, settings, usage_redis):
    settings.QUOTA_REDIS_URL = usage_redis.url  # its usage stream is empty: nothing waits
    reset_store()
    rule = tenant_rule(set_quota(tenant, 10_000))
    key = counter_key(rule, window_start(rule.window))
    quota_settle(reservation=quota_reserve(rules=(rule,), tokens=100), actual_tokens=40)
    held = quota_reserve(rules=(rule,), tokens=100)  # a call in flight: 100 held
    ledger_usage(tenant, chat_config, 500)  # recorded while Redis did not count it
    quota_reconcile(idle_seconds=600)
    assert quota_used(rule=rule) == 600  # the ledger's 500 plus what is held
    store = quota_store()
    store.client.hset(key, "t", 0)  # idle for long: the held call died; exact to the ledger
    quota_reconcile(idle_seconds=600)
    assert quota_used(rule=rule) == 500
    quota_settle(reservation=held, actual_tokens=0)


def test_a_settlement_shares_the_next_commands_write_or_goes_alone_soon(tenant, settings):
    import asyncio

    from usage.services import quota_redis

    if not settings.QUOTA_REDIS_URL:
        pytest.skip("no Redis: set REDIS_URL")
    reset_store()
    rule = tenant_rule(set_quota(tenant, 1_000))
    quota_release(reservation=quota_reserve(rules=(rule,), tokens=0))  # the counter, seeded

    async def calls():
        first = await aquota_reserve(rules=(rule,), tokens=100)
        pipe = quota_store()._pipes[asyncio.get_running_loop()]
        writes = []
        real_write = pipe.transport.write
        pipe.transport.write = lambda data: (writes.append(data), real_write(data))[1]
        settled = asyncio.ensure_future(aquota_settle(reservation=first, actual_tokens=10))
        await asyncio.sleep(0)  # the settlement is sent (deferred), not yet written
        assert writes == [] and len(pipe.deferred) == 1
        second = await aquota_reserve(rules=(rule,), tokens=100)  # one write carries both
        await settled
        assert len(writes) == 1 and writes[0].count(b"EVALSHA") == 2
        assert quota_used(rule=rule) == 110  # in order: settled, then reserved
        started = time.monotonic()
        await aquota_settle(reservation=second, actual_tokens=20)  # alone: written soon
        assert time.monotonic() - started < 0.5
        assert len(writes) == 2 and pipe.deferred == []
        # A settlement cancelled while it waits (its loop closing) is still written.
        third = await aquota_reserve(rules=(rule,), tokens=5)
        pending = asyncio.ensure_future(aquota_settle(reservation=third, actual_tokens=1))
        await asyncio.sleep(0)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert len(writes) == 4 and pipe.deferred == []

    asyncio.run(calls())
    assert quota_redis.DEFER_SECONDS < 0.5
    deadline = time.monotonic() + 2
    while quota_used(rule=rule) != 31 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert quota_used(rule=rule) == 31
