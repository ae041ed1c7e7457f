"""What a gateway call costs besides the provider once caches are warm: no database query on
the event loop's thread, and nothing sent to the worker thread at all, under a quota too (its
reservation and settlement are one Redis script each, on the loop; the worker thread only
while Redis is down). The app runs in this process (httpx's ASGI transport), so that all of
it can be counted."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway import auth, metering, naming
from ragllm.asgi import application
from tenants.models import APIToken
from tenants.selectors import tenant_owned_by
from tenants.services.tokens import api_token_issue
from tests.fakeprovider.openai import CHAT_TEXT
from usage.services import quota_redis

from .conftest import configure

BODY = {"model": "gpt-4o-mini@OpenAI", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def counted_run_db(monkeypatch):
    """Every function the gateway sends to the database thread, by name."""
    calls: list[str] = []
    real = metering.run_db

    async def counting(function, /, *args, **kwargs):
        name = getattr(function, "__name__", repr(function))
        if name != "check_remote_generation":  # once a second, in the background
            calls.append(name)
        return await real(function, *args, **kwargs)

    for module in (metering, auth, naming):
        monkeypatch.setattr(module, "run_db", counting)
    return calls


def close() -> None:
    connection.close()  # the connection of the thread this runs in


def serve(token: str, calls: int) -> list[httpx.Response]:
    async def run():
        transport = httpx.ASGITransport(application, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            headers = {"Authorization": f"Bearer {token}"}
            replies = [
                await client.post("/v1/chat/completions", json=BODY, headers=headers)
                for _ in range(calls)
            ]
        await asyncio.sleep(0.05)  # background settlements and touches finish
        # Give back the worker thread's connection, so the test database can be dropped.
        await metering.run_db(close)
        return replies

    return asyncio.run(run())


@pytest.fixture
def caller(transactional_db, fake_provider):
    user = get_user_model().objects.create_user(username="steady@example.com", password=None)
    tenant = tenant_owned_by(user=user)
    configure(tenant, fake_provider)
    return tenant, api_token_issue(user=user, name="steady")[1]


def test_a_warm_call_does_no_io_besides_the_provider(caller, counted_run_db):
    _, token = caller
    serve(token, 1)  # warms the caches
    counted_run_db.clear()

    with CaptureQueriesContext(connection) as on_the_loop:
        replies = serve(token, 5)

    assert [r.json()["choices"][0]["message"]["content"] for r in replies] == [CHAT_TEXT] * 5
    assert len(on_the_loop) == 0
    # The closing of the test's own connection is the only thing sent to the thread.
    assert counted_run_db == ["close"]


@pytest.fixture
def quota_redis_of_its_own(private_redis, settings):
    """The quota counters in a Redis of the test's own (its command counts are the test's)."""
    settings.QUOTA_REDIS_URL = private_redis.url
    quota_redis.reset_store()
    yield private_redis
    quota_redis.reset_store()


def test_under_a_quota_a_call_is_one_script_before_and_one_after_on_the_loop(
    caller, counted_run_db, quota_redis_of_its_own, fake_provider, monkeypatch
):
    tenant, token = caller
    tenant.token_quota = 10**6
    tenant.save()
    serve(token, 1)  # seeds the counter from the ledger (in the worker thread)
    counted_run_db.clear()
    # When each script runs, how many requests the provider has had.
    seen: dict[str, list[int]] = {"reserve": [], "settle": []}
    store = quota_redis.quota_store()
    for name in seen:
        real = getattr(store, "a" + name)

        async def spy(*args, _real=real, _name=name):
            seen[_name].append(len(fake_provider.requests))
            return await _real(*args)

        monkeypatch.setattr(store, "a" + name, spy)
    monkeypatch.setattr(store, "_run", None)  # the thread path's socket: never used here
    client = store.client
    before = client.info("commandstats")
    fake_provider.requests.clear()  # it keeps the last 100
    sent = 0

    with CaptureQueriesContext(connection) as on_the_loop:
        replies = serve(token, 3)

    after = client.info("commandstats")
    assert [r.status_code for r in replies] == [200] * 3
    assert len(on_the_loop) == 0
    assert counted_run_db == ["close"]  # no thread hop for the quota
    # One reservation before each provider call, one settlement after it.
    assert seen == {"reserve": [sent, sent + 1, sent + 2], "settle": [sent + 1, sent + 2, sent + 3]}
    assert after["cmdstat_evalsha"]["calls"] - before["cmdstat_evalsha"]["calls"] == 6
    others = {
        name: stats["calls"] - before.get(name, {"calls": 0})["calls"]
        for name, stats in after.items()
        # INFO itself, and the commands the two scripts run inside Redis.
        if name.split("_", 1)[1] not in ("evalsha", "info", "hget", "hincrby", "hset", "exists")
    }
    assert not any(others.values()), others


def test_with_the_quota_redis_down_the_worker_thread_reserves_and_settles(
    caller, counted_run_db, quota_redis_of_its_own
):
    tenant, token = caller
    tenant.token_quota = 10**6
    tenant.save()
    serve(token, 1)
    quota_redis_of_its_own.stop()
    counted_run_db.clear()

    with CaptureQueriesContext(connection) as on_the_loop:
        replies = serve(token, 3)

    assert [r.status_code for r in replies] == [200] * 3
    assert len(on_the_loop) == 0
    assert sorted(counted_run_db) == sorted(["_reserve", "_settle"] * 3 + ["close"])


def test_last_used_is_written_once_not_per_request(caller, counted_run_db):
    _, token = caller

    serve(token, 4)

    assert counted_run_db.count("api_token_touch") == 1
    assert APIToken.objects.get(user__username="steady@example.com").last_used_at is not None
