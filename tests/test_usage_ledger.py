"""Exactly-once accounting under load and faults, on the real database and a real Redis."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Sum

from gateway.bundle import LLMBundle
from providers.errors import QuotaExceededError
from tenants.models import Tenant, TenantLLM
from tenants.resolution import invalidate
from usage.buffer import LocalBuffer, redis_buffer
from usage.models import UsageEvent, UsageHourly
from usage.records import UsageRecord
from usage.services.events import usage_drain
from usage.services.ledger import apply_records

HISTORY = [{"role": "user", "content": "Hi"}]
CALL_TOKENS = 18


def records_for(config, n, tokens=10):
    return [
        UsageRecord(
            tenant_id=str(config.tenant_id),
            tenant_llm_id=config.pk,
            factory="OpenAI",
            llm_name=config.llm_name,
            model_type="chat",
            prompt_tokens=tokens - 3,
            completion_tokens=3,
            total_tokens=tokens,
            cost="0.00001",
        )
        for _ in range(n)
    ]


def totals(config):
    config.refresh_from_db()
    events = UsageEvent.objects.aggregate(n=Sum("total_tokens"))["n"] or 0
    hourly = UsageHourly.objects.aggregate(n=Sum("total_tokens"))["n"] or 0
    return config.used_tokens, events, hourly, UsageEvent.objects.count()


def test_replaying_a_batch_changes_nothing(chat_config):
    batch = records_for(chat_config, 50)
    first = apply_records(batch)
    assert (first.inserted, first.duplicates) == (50, 0)
    assert totals(chat_config) == (500, 500, 500, 50)
    again = apply_records(batch[10:] + records_for(chat_config, 5))
    assert (again.inserted, again.duplicates) == (5, 40)
    assert totals(chat_config) == (550, 550, 550, 55)
    hourly = UsageHourly.objects.get()
    assert (hourly.calls, hourly.prompt_tokens, hourly.completion_tokens) == (55, 385, 165)


def test_a_batch_of_plain_tuples_off_the_stream_is_applied_alike(chat_config):
    batch = [record.as_tuple() for record in records_for(chat_config, 4)]
    assert (apply_records(batch).inserted, apply_records(batch).duplicates) == (4, 4)
    assert totals(chat_config) == (40, 40, 40, 4)


def test_a_batch_adds_to_every_configs_counter_in_one_update(chat_config, tenant):
    from django.test.utils import CaptureQueriesContext

    other = TenantLLM.objects.create(
        tenant=tenant, factory=chat_config.factory, llm_name="gpt-4o", model_type="chat"
    )
    batch = records_for(chat_config, 3, tokens=10) + records_for(other, 2, tokens=7)
    with CaptureQueriesContext(connection) as queries:
        apply_records(batch)
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "tenants_tenantllm"')]
    assert len(updates) == 1
    chat_config.refresh_from_db()
    other.refresh_from_db()
    assert (chat_config.used_tokens, other.used_tokens) == (30, 14)


def test_events_of_a_deleted_config_keep_their_tokens(chat_config, tenant):
    batch = records_for(chat_config, 3)
    config_id = chat_config.pk
    TenantLLM.objects.filter(pk=config_id).delete()
    assert apply_records(batch).inserted == 3
    # The events keep their tokens and the id of the config that served them, as recorded.
    assert UsageEvent.objects.filter(tenant_llm_id=config_id).count() == 3
    assert UsageEvent.objects.aggregate(t=Sum("total_tokens"))["t"] == 30
    assert UsageHourly.objects.get().total_tokens == 30


@pytest.mark.django_db(transaction=True)
def test_a_tenant_deleted_while_a_writer_holds_its_batch_leaves_no_usage(chat_config, tenant):
    """The usage tables have no foreign key: the writer's lock and the deletion's purge keep
    rows of a deleted tenant out, even when the batch commits while the deletion waits."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite writes one transaction at a time)")
    from django.db import transaction

    from usage.models import UsageDaily

    applied, commit = threading.Event(), threading.Event()

    def writer():
        try:
            with transaction.atomic():
                apply_records(records_for(chat_config, 20))
                applied.set()
                commit.wait(10)
        finally:
            connection.close()

    def deleter():
        try:
            Tenant.objects.get(pk=tenant.pk).delete()
        finally:
            connection.close()

    writing = threading.Thread(target=writer)
    writing.start()
    assert applied.wait(10)
    deleting = threading.Thread(target=deleter)
    deleting.start()
    deleting.join(0.5)
    assert deleting.is_alive()  # waiting for the writer's batch
    commit.set()
    writing.join(10)
    deleting.join(10)
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    for model in (UsageEvent, UsageHourly, UsageDaily):
        assert not model.objects.filter(tenant_id=tenant.pk).exists(), model.__name__


@pytest.mark.django_db(transaction=True)
def test_a_writer_killed_after_applying_is_replayed_without_double_counting(
    chat_config, usage_redis
):
    buffer = redis_buffer()
    for record in records_for(chat_config, 120):
        buffer.push(record)

    class Killed(Exception):
        pass

    applied_batches = []

    def apply_then_die(records):
        apply_records(records)  # committed...
        applied_batches.append(len(records))
        raise Killed  # ...but the writer dies before acknowledging

    with pytest.raises(Killed):
        buffer.drain(consumer="writer-1", batch_size=50, apply=apply_then_die)
    assert applied_batches == [50]
    assert buffer.pending_count() == 50
    # Another writer takes over the pending entries and the rest.
    result = buffer.drain(consumer="writer-2", batch_size=50, claim_idle_ms=0)
    assert (result.inserted, result.duplicates) == (70, 50)
    assert totals(chat_config) == (1200, 1200, 1200, 120)
    assert buffer.backlog() == 0


@pytest.mark.django_db(transaction=True)
def test_a_writer_killed_inside_its_transaction_loses_nothing(chat_config, usage_redis):
    buffer = redis_buffer()
    for record in records_for(chat_config, 30):
        buffer.push(record)

    def die_midway(records):
        from django.db import transaction

        with transaction.atomic():
            apply_records(records)
            raise RuntimeError("killed before commit")

    with pytest.raises(RuntimeError):
        buffer.drain(consumer="w1", apply=die_midway)
    assert totals(chat_config) == (0, 0, 0, 0)
    buffer.drain(consumer="w2", claim_idle_ms=0)
    assert totals(chat_config) == (300, 300, 300, 30)


@pytest.mark.django_db(transaction=True)
def test_the_local_writer_keeps_events_while_the_database_is_down(chat_config, monkeypatch):
    local = LocalBuffer(batch_size=10)
    for record in records_for(chat_config, 25):
        local.put(record)
    calls = {"n": 0}
    real = apply_records

    def flaky(records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("database is down")
        return real(records)

    monkeypatch.setattr("usage.buffer.apply_records", flaky)
    with pytest.raises(ConnectionError):
        local.flush()
    assert len(local) == 15  # the failed batch went back in front of the queue
    local.flush()
    assert len(local) == 0
    assert totals(chat_config) == (250, 250, 250, 25)


@pytest.mark.django_db(transaction=True)
def test_the_local_writer_thread_applies_events_in_the_background(chat_config, settings):
    settings.USAGE_WRITER_THREAD = True
    local = LocalBuffer(interval=0.05)
    for record in records_for(chat_config, 40):
        local.put(record)
    deadline = time.monotonic() + 10
    while UsageEvent.objects.count() < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    local._stopping = True
    assert totals(chat_config) == (400, 400, 400, 40)


@pytest.mark.timeout(600)  # 16,000 real HTTP calls: about a minute on a 2-core machine
@pytest.mark.django_db(transaction=True)
def test_32_threads_of_500_calls_give_exact_totals(
    chat_config, tenant, usage_redis, fake_provider_process
):
    # The fake provider runs in its own process so that the 32 client threads are the load.
    TenantLLM.objects.filter(pk=chat_config.pk).update(api_base=fake_provider_process.url("/v1"))
    invalidate()
    threads, calls = 32, 500
    errors = []

    def worker():
        try:
            bundle = LLMBundle(tenant.pk, "chat")
            for _ in range(calls):
                bundle.chat(HISTORY)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    stop = threading.Event()

    def writer():  # a concurrent writer, as beat's drain task would be
        while not stop.is_set():
            usage_drain(claim_idle_ms=60_000)
            time.sleep(0.05)
        connection.close()

    drain_thread = threading.Thread(target=writer)
    drain_thread.start()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    stop.set()
    drain_thread.join()
    usage_drain(claim_idle_ms=0)
    assert errors == []
    expected = threads * calls * CALL_TOKENS
    assert totals(chat_config) == (expected, expected, expected, threads * calls)
    assert UsageHourly.objects.aggregate(n=Sum("calls"))["n"] == threads * calls


@pytest.mark.django_db(transaction=True)
def test_calls_succeed_while_redis_is_down_and_totals_are_exact_after(
    chat_config, tenant, usage_redis
):
    bundle = LLMBundle(tenant.pk, "chat")
    for _ in range(20):
        bundle.chat(HISTORY)
    usage_redis.stop()
    for _ in range(30):  # Redis is gone: events go to the database through the local writer
        bundle.chat(HISTORY)
    usage_redis.start()  # it comes back with the 20 events it held
    from usage import recorder

    recorder.reset_redis_state()
    for _ in range(10):
        bundle.chat(HISTORY)
    usage_drain(claim_idle_ms=0)
    expected = 60 * CALL_TOKENS
    assert totals(chat_config) == (expected, expected, expected, 60)


@pytest.mark.django_db(transaction=True)
def test_racing_calls_at_the_quota_edge_overspend_by_at_most_one_call(
    chat_config, tenant, fake_provider, no_usage_redis
):
    quota = 500
    Tenant.objects.filter(pk=tenant.pk).update(token_quota=quota, quota_window="daily")
    invalidate()
    outcomes = {"ok": 0, "refused": 0}
    lock = threading.Lock()

    def call():
        try:
            LLMBundle(tenant.pk, "chat").chat(HISTORY, gen_conf={"max_tokens": 10})
            key = "ok"
        except QuotaExceededError:
            key = "refused"
        finally:
            connection.close()
        with lock:
            outcomes[key] += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: call(), range(64)))
    usage_drain()
    spent = UsageEvent.objects.filter(outcome="ok").aggregate(n=Sum("total_tokens"))["n"]
    assert outcomes["refused"] > 0
    assert spent == outcomes["ok"] * CALL_TOKENS
    assert spent <= quota + CALL_TOKENS
    # Refused calls never reached the provider.
    assert len(fake_provider.requests_to("/v1/chat/completions")) == outcomes["ok"]
    from usage.quotas import tenant_rule
    from usage.selectors.quotas import quota_used

    assert quota_used(rule=tenant_rule(Tenant.objects.get(pk=tenant.pk))) == spent
