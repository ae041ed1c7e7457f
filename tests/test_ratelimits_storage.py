"""Rate limit counters (usage.ratelimits) on their storages: Redis shared by every process
(here two backends, as two processes have), in-process memory without Redis, the library's
own readers agreeing with our script, settlements, and LLMBundle giving a charge back when
its quota refuses the call."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from usage import ratelimits, ratestore
from usage.ratelimits import MemoryBackend, RateLimitExceeded, RedisBackend, duration

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


def _limits(rpm=None, tpm=None, key_rpm=None, key_tpm=None):
    tenant = uuid.uuid4().hex  # counters of their own
    return ratelimits.limits_for(
        tenant_id=tenant,
        tenant_rpm=rpm,
        tenant_tpm=tpm,
        key_id=int(uuid.uuid4().int % 10**9),
        key_rpm=key_rpm,
        key_tpm=key_tpm,
    )


@pytest.fixture(params=["redis", "memory"])
def use_backend(request, monkeypatch):
    """Each test on both storages (the module's backend swapped for the test)."""
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("needs REDIS_URL")
        backend = RedisBackend(settings.REDIS_URL)
    else:
        backend = MemoryBackend()
    monkeypatch.setattr(ratelimits, "_backend", backend)
    return backend


def test_every_counter_is_charged_or_none_is(use_backend):
    limits = _limits(rpm=10, tpm=100, key_rpm=10, key_tpm=50)
    ratelimits.acquire(limits, 40)
    with pytest.raises(RateLimitExceeded) as caught:
        ratelimits.acquire(limits, 20)  # the key's 50 tokens refuse it

    verdict = ratelimits.peek(limits)
    used = {(s.scope.label, s.kind): s.used for s in verdict.states}
    assert used == {
        ("tenant", "requests"): 1,
        ("tenant", "tokens"): 40,
        ("API key", "requests"): 1,
        ("API key", "tokens"): 40,
    }
    assert caught.value.kind == "tokens"
    assert "API key's tokens per min (TPM): Limit 50, Used 40, Requested 20" in str(caught.value)
    assert verdict.headers()["x-ratelimit-remaining-tokens"] == "10"  # the tightest
    assert verdict.headers()["x-ratelimit-limit-tokens"] == "50"


def test_settling_adds_what_was_used_beyond_the_estimate_and_gives_back_the_rest(use_backend):
    limits = _limits(rpm=5, tpm=1000)
    over = ratelimits.acquire(limits, 100)
    ratelimits.settle(over, 250)
    under = ratelimits.acquire(limits, 300)
    ratelimits.settle(under, 20)
    released = ratelimits.acquire(limits, 500)
    ratelimits.settle(released, None)  # refused later (its quota): request and tokens back
    ratelimits.settle(released, 400)  # once only

    verdict = ratelimits.peek(limits)
    assert {s.kind: s.used for s in verdict.states} == {"requests": 2, "tokens": 270}


def test_async_checks_use_the_same_counters(use_backend):
    limits = _limits(rpm=2)

    async def run():
        await ratelimits.aacquire(limits, 0)
        grant = await ratelimits.aacquire(limits, 0)
        with pytest.raises(RateLimitExceeded):
            await ratelimits.aacquire(limits, 0)
        return grant

    grant = asyncio.run(run())
    assert grant.verdict.headers()["x-ratelimit-remaining-requests"] == "0"
    assert ratelimits.peek(limits).states[0].used == 2


@needs_redis
def test_settlements_on_the_event_loop_ride_with_the_next_check_or_go_alone(monkeypatch):
    backend = RedisBackend(settings.REDIS_URL)
    monkeypatch.setattr(ratelimits, "_backend", backend)
    limits = _limits(tpm=1000)

    async def run():
        first = await ratelimits.aacquire(limits, 300)
        await ratelimits.asettle(first, 20)  # waits for the next check
        second = await ratelimits.aacquire(limits, 100)
        await ratelimits.asettle(second, 50)  # no check follows: sent alone
        for _ in range(200):
            if not backend._pending and not ratestore._tasks:
                break
            await asyncio.sleep(0.01)
        return second

    second = asyncio.run(run())
    assert second.verdict.states[0].used == 120  # 20 settled + 100 charged
    assert ratelimits.peek(limits).states[0].used == 70


@needs_redis
def test_concurrent_checks_of_a_process_share_script_runs_and_stay_exact(monkeypatch):
    backend = RedisBackend(settings.REDIS_URL)
    monkeypatch.setattr(ratelimits, "_backend", backend)
    limits = _limits(rpm=10, tpm=10_000, key_rpm=1000)
    runs = []

    async def run():
        state = backend._loop_state()
        script = state.script

        async def counted(**kwargs):
            runs.append(kwargs)
            return await script(**kwargs)

        state.script = counted

        async def one():
            try:
                return await ratelimits.aacquire(limits, 7)
            except RateLimitExceeded:
                return None

        return await asyncio.gather(*(one() for _ in range(30)))

    grants = asyncio.run(run())
    assert sum(g is not None for g in grants) == 10  # the tenant's 10 requests, no more
    assert len(runs) < 30  # batched: checks made while one is out go together
    used = {(s.scope.label, s.kind): s.used for s in ratelimits.peek(limits).states}
    assert used == {
        ("tenant", "requests"): 10,
        ("tenant", "tokens"): 70,
        ("API key", "requests"): 10,
    }


@needs_redis
def test_redis_counters_are_shared_by_processes_and_read_by_the_library():
    one, other = RedisBackend(settings.REDIS_URL), RedisBackend(settings.REDIS_URL)
    limits = _limits(rpm=3, tpm=100)
    charges = ratelimits._charges(limits, 30)
    assert one.acquire(charges)[0]
    assert other.acquire(charges)[0]
    assert one.acquire(charges)[0]
    allowed, states = other.acquire(charges)

    assert not allowed
    assert [s.used for s in states] == [3, 90]
    # The library's own strategy reads the same counters under the same keys.
    library = SlidingWindowCounterRateLimiter(
        RedisStorage(settings.REDIS_URL, key_prefix=ratelimits.KEY_PREFIX)
    )
    scope = limits.scopes[0].name
    stats = library.get_window_stats(RateLimitItemPerMinute(100), "ragllm", scope, "tokens")
    assert stats.remaining == 10
    assert not library.test(RateLimitItemPerMinute(3), "ragllm", scope, "requests")


def test_memory_counters_are_per_process():
    one, other = MemoryBackend(), MemoryBackend()
    charges = ratelimits._charges(_limits(rpm=1), 0)

    assert one.acquire(charges)[0]
    assert not one.acquire(charges)[0]
    assert other.acquire(charges)[0]  # another process counts on its own


def test_without_redis_the_memory_storage_is_used(settings, monkeypatch):
    settings.RATELIMIT_REDIS_URL = ""
    monkeypatch.setattr(ratelimits, "_backend", None)
    assert isinstance(ratelimits.backend(), MemoryBackend)


def test_a_failed_storage_lets_the_call_through(monkeypatch, caplog):
    monkeypatch.setattr(ratelimits, "_backend", RedisBackend("redis://127.0.0.1:1/0"))
    monkeypatch.setattr(ratelimits, "_failures_logged_at", 0.0)
    assert ratelimits.acquire(_limits(rpm=1), 0) is None
    assert "rate limits not checked" in caplog.text


def test_retry_after_is_when_the_cost_fits_again():
    window = 60_000.0
    state = ratelimits.CounterState(
        ratelimits.Scope("tenant:x", "tenant", 3, None),
        "requests",
        limit=3,
        cost=1,
        previous=3,
        previous_ttl_ms=window,  # the previous minute has just ended
        current=0,
        current_ttl_ms=0,
    )
    # 3 x (t / 60 s) must fall to 2: a third of the minute.
    assert state.retry_after() == pytest.approx(20.0)
    fresh = ratelimits.CounterState(
        state.scope, "requests", 3, 1, 0, 0, 3, 2 * window
    )  # three hits just now: the window moves in 60 s, then two thirds must fade
    assert fresh.retry_after() == pytest.approx(80.0)
    too_large = ratelimits.CounterState(state.scope, "tokens", 3, 4, 0, 0, 0, 0)
    assert too_large.retry_after() is None


def test_durations_are_in_openais_format():
    assert [duration(s) for s in (0, 0.02, 1, 1.5, 59.9994, 60, 360, 61.25)] == [
        "0s",
        "20ms",
        "1s",
        "1.5s",
        "59.999s",
        "1m0s",
        "6m0s",
        "1m1.25s",
    ]


@pytest.mark.django_db
def test_llmbundle_gives_the_charge_back_when_its_quota_refuses(
    chat_config, tenant, use_backend, no_usage_redis
):
    from gateway.bundle import LLMBundle
    from providers.errors import QuotaExceededError

    tenant.rpm, tenant.tpm, tenant.token_quota = 5, 100_000, 10
    tenant.save()
    bundle = LLMBundle(tenant.pk, "chat")
    with pytest.raises(QuotaExceededError):
        bundle.chat([{"role": "user", "content": "Hi"}])
    tenant.token_quota = None
    tenant.save()
    bundle.chat([{"role": "user", "content": "Hi"}])

    limits = ratelimits.limits_for(tenant_id=tenant.pk.hex, tenant_rpm=5, tenant_tpm=100_000)
    used = {s.kind: s.used for s in ratelimits.peek(limits).states}
    assert used == {"requests": 1, "tokens": 18}  # the fake provider's usage, settled
