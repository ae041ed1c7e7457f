import asyncio
import email.utils
import time
from dataclasses import replace

import httpx
import pytest

from providers import clients, http
from providers.classify import ErrorContext
from providers.errors import (
    AuthError,
    MaxRetriesExceededError,
    ProviderConnectionError,
    ProviderTimeout,
    ServerError,
)
from providers.retry import RetryPolicy, parse_retry_after
from tests.fakeprovider import Reply

from .conftest import KEY

PATH = "/http-test"
CONTEXT = ErrorContext("OpenAI", "gpt-4o", (KEY,))


def error_reply(status, headers=None):
    return Reply.json({"error": {"message": f"status {status}", "type": "x"}}, status, headers)


def ok_reply():
    return Reply.json({"ok": True})


def post(fake_provider, policy, **kwargs):
    return http.request(
        "POST", fake_provider.url(PATH), context=CONTEXT, policy=policy, json={}, **kwargs
    )


def test_it_retries_server_errors_with_exponential_backoff(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(500), error_reply(503), error_reply(502), ok_reply()])
    response = post(fake_provider, policy)
    assert response.json() == {"ok": True}
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake_provider.requests_to(PATH)) == 4


def test_it_applies_full_jitter(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(500), error_reply(500), ok_reply()])
    post(fake_provider, replace(policy, jitter=lambda: 0.25))
    assert sleeps == [0.25, 0.5]


def test_it_honours_retry_after_seconds(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(429, {"Retry-After": "7"}), ok_reply()])
    post(fake_provider, policy)
    assert sleeps == [7.0]


def test_it_honours_retry_after_as_an_http_date(fake_provider, policy, sleeps):
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    fake_provider.script(PATH, [error_reply(503, {"Retry-After": when}), ok_reply()])
    post(fake_provider, policy)
    assert len(sleeps) == 1
    assert 8.0 <= sleeps[0] <= 10.0


def test_it_caps_every_delay(fake_provider, policy, sleeps):
    fake_provider.script(
        PATH, [error_reply(429, {"Retry-After": "3600"}), error_reply(500), ok_reply()]
    )
    post(fake_provider, replace(policy, base_delay=100.0))
    assert sleeps == [30.0, 30.0]


def test_it_gives_up_after_the_configured_retries(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(503)] * 5)
    with pytest.raises(MaxRetriesExceededError) as caught:
        post(fake_provider, policy)
    error = caught.value
    assert isinstance(error.last_error, ServerError)
    assert error.retries == 3
    assert "SERVER_ERROR" in str(error)
    assert len(fake_provider.requests_to(PATH)) == 4
    assert len(sleeps) == 3


def test_it_does_not_retry_what_cannot_succeed(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(401), ok_reply()])
    with pytest.raises(AuthError):
        post(fake_provider, policy)
    assert sleeps == []
    assert len(fake_provider.requests_to(PATH)) == 1


def test_it_raises_the_error_itself_when_retries_are_off(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(503)])
    with pytest.raises(ServerError):
        post(fake_provider, replace(policy, max_retries=0))
    assert sleeps == []


def test_it_reads_the_retry_settings_at_call_time(fake_provider, settings):
    settings.LLM_MAX_RETRIES = 1
    settings.LLM_BASE_DELAY = 0.0
    settings.LLM_TIMEOUT_SECONDS = 7.5
    assert RetryPolicy.from_settings().timeout == 7.5
    fake_provider.script(PATH, [error_reply(503)] * 3)
    with pytest.raises(MaxRetriesExceededError) as caught:
        post(fake_provider, None)
    assert caught.value.retries == 1
    assert len(fake_provider.requests_to(PATH)) == 2


def test_it_times_out_a_slow_reply(fake_provider, policy):
    fake_provider.script(PATH, [Reply.json({}, delay=3.0)])
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as caught:
        post(fake_provider, replace(policy, timeout=0.3, max_retries=0))
    assert time.monotonic() - started < 2.0
    assert "timed out" in str(caught.value)


def test_it_bounds_a_trickling_body_by_the_attempt_timeout(fake_provider, policy):
    trickle = Reply.stream([b"x"] * 20, "application/json", chunk_delay=0.1)
    fake_provider.script(PATH, [trickle])
    with pytest.raises(ProviderTimeout):
        post(fake_provider, replace(policy, timeout=0.5, max_retries=0))


def test_it_reports_a_refused_connection_as_a_connection_error(closed_port, policy, sleeps):
    url = f"http://127.0.0.1:{closed_port}/v1/chat/completions"
    with pytest.raises(ProviderConnectionError) as caught:
        http.request("POST", url, context=CONTEXT, policy=replace(policy, max_retries=0))
    assert caught.value.detail == "could not reach a model server at this address"
    with pytest.raises(MaxRetriesExceededError) as caught:
        http.request("POST", url, context=CONTEXT, policy=policy)
    assert isinstance(caught.value.last_error, ProviderConnectionError)
    assert "CONNECTION_ERROR" in str(caught.value)
    assert len(sleeps) == 3


def test_it_calls_the_guard_before_every_attempt(fake_provider, policy):
    seen = []
    fake_provider.script(PATH, [error_reply(503), ok_reply()])
    post(fake_provider, policy, guard=seen.append, params={"api-version": "1"})
    assert len(seen) == 2
    assert all(isinstance(url, httpx.URL) for url in seen)
    assert str(seen[0]) == fake_provider.url(PATH) + "?api-version=1"


def test_a_refusing_guard_stops_the_request(fake_provider, policy):
    class Blocked(ValueError):
        pass

    def guard(url):
        raise Blocked(f"{url.host} is not allowed")

    with pytest.raises(Blocked):
        post(fake_provider, policy, guard=guard)
    assert fake_provider.requests_to(PATH) == []


def test_it_does_not_follow_redirects(fake_provider, policy):
    redirect = Reply(status=302, headers={"Location": "http://169.254.169.254/"})
    fake_provider.script(PATH, [redirect])
    with pytest.raises(ProviderConnectionError) as caught:
        post(fake_provider, policy)
    # Where it pointed is not repeated: it would tell what answers at this address.
    assert caught.value.detail == "could not reach a model server at this address"
    assert "169.254" not in str(caught.value)
    assert len(fake_provider.requests_to(PATH)) == 1


def test_it_rejects_unknown_request_options(fake_provider, policy):
    with pytest.raises(TypeError, match="timeout"):
        post(fake_provider, policy, timeout=3)


def test_it_retries_a_stream_only_before_handing_it_over(fake_provider, policy, sleeps):
    dropping = Reply.sse([{"n": 1}, {"n": 2}, {"n": 3}], drop_after=1)
    fake_provider.script(PATH, [error_reply(503), dropping, ok_reply()])
    response = http.open_stream(
        "POST", fake_provider.url(PATH), context=CONTEXT, policy=policy, json={}
    )
    assert sleeps == [1.0]
    with pytest.raises(httpx.RemoteProtocolError):
        list(response.iter_lines())
    response.close()
    assert len(fake_provider.requests_to(PATH)) == 2  # the broken body was not retried


def test_it_reuses_one_pooled_client(fake_provider, policy):
    client = clients.get_client()
    fake_provider.script(PATH, [ok_reply(), ok_reply()])
    post(fake_provider, policy)
    post(fake_provider, policy)
    assert clients.get_client() is client
    ports = {r.client_port for r in fake_provider.requests_to(PATH)}
    assert len(ports) == 1  # one kept-alive connection served both


def test_it_builds_a_new_client_in_a_forked_process(monkeypatch):
    client = clients.get_client()
    monkeypatch.setattr(clients.os, "getpid", lambda: -1)
    child = clients.get_client()
    assert child is not client
    assert not client.is_closed  # the parent's connections are left alone
    assert clients.get_client() is child
    client.close()


def test_it_keeps_one_async_client_per_event_loop():
    async def two_clients():
        return clients.get_async_client(), clients.get_async_client()

    first, again = asyncio.run(two_clients())
    second, _ = asyncio.run(two_clients())
    assert first is again
    assert second is not first


def test_an_async_client_closes_when_its_loop_shuts_down():
    async def client():
        return clients.get_async_client()

    assert asyncio.run(client()).is_closed


def test_it_retries_async_requests(fake_provider, policy, sleeps):
    fake_provider.script(PATH, [error_reply(500), ok_reply()])

    async def call():
        return await http.arequest(
            "POST", fake_provider.url(PATH), context=CONTEXT, policy=policy, json={}
        )

    assert asyncio.run(call()).json() == {"ok": True}
    assert sleeps == [1.0]


def test_it_times_out_slow_async_requests(fake_provider, policy):
    fake_provider.script(PATH, [Reply.json({}, delay=3.0)])

    async def call():
        await http.arequest(
            "POST",
            fake_provider.url(PATH),
            context=CONTEXT,
            policy=replace(policy, timeout=0.3, max_retries=0),
        )

    with pytest.raises(ProviderTimeout):
        asyncio.run(call())


def test_transport_hooks_see_every_new_client(monkeypatch):
    monkeypatch.setattr(clients, "_transport_hooks", [])
    hooked = []
    old = clients.get_client()
    clients.add_transport_hook(lambda transport, pool: hooked.append((transport, pool)))
    new = clients.get_client("some pool")
    assert new is not old
    assert len(hooked) == 1
    transport, pool = hooked[0]
    assert isinstance(transport, httpx.HTTPTransport)
    assert pool == "some pool"
    old.close()
    clients.close_clients()  # the next test gets an unhooked client


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_it_parses_retry_after(headers, seconds):
    assert parse_retry_after(httpx.Headers(headers)) == seconds
