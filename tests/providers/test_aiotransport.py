"""The async provider calls' transport (providers.aiotransport, on aiohttp): the same guarantees
as httpcore's, proved over real sockets against the fake provider. The connect-time guard
refuses names, literals and rebound names; redirects are handed back, never followed; proxy
variables are ignored; a pool belongs to one network policy; transport failures read as
before."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading

import pytest

from providers import clients, http, netguard
from providers.aiotransport import AiohttpTransport
from providers.classify import ErrorContext
from providers.errors import UNREACHABLE, ProviderConnectionError, ProviderTimeout
from providers.netguard import HOSTED, BlockedAddressError, policy_for, policy_named
from providers.registry import build_adapter
from providers.retry import RetryPolicy
from tests.fakeprovider import Reply

KEY = "sk-aiotransport-test-key-0001"
HISTORY = [{"role": "user", "content": "Hi"}]
PATH = "/aio-test"
CONTEXT = ErrorContext("OpenAI", "gpt-4o", (KEY,))
NO_RETRY = RetryPolicy(max_retries=0, timeout=5.0)


@pytest.fixture
def strict(settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = []


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def not_a_model_server():
    """Answers anything as Redis does, then hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"-ERR unknown command 'POST'\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def adapter(factory: str, base_url: str):
    return build_adapter(
        model_type="chat",
        factory=factory,
        model_name="gpt-4o-mini" if factory == "OpenAI" else "local-model",
        api_key=KEY if factory == "OpenAI" else "",
        base_url=base_url,
        retry_policy=NO_RETRY,
    )


def achat(factory: str, base_url: str):
    return asyncio.run(adapter(factory, base_url).achat(HISTORY))


def test_async_clients_use_the_guarded_aiohttp_transport():
    async def transport_of(pool):
        return clients.get_async_client(pool)._transport

    for pool in (policy_for("OpenAI"), policy_for("Ollama"), clients.DEFAULT_POOL):
        transport = asyncio.run(transport_of(pool))
        assert isinstance(transport, AiohttpTransport)
        assert transport.policy is not None
    # The policy of a policy-keyed pool is that very policy.
    transport = asyncio.run(transport_of(policy_for("Ollama")))
    assert transport.policy() is policy_for("Ollama")


def test_an_async_call_is_answered_through_it(fake_provider):
    result = achat("OpenAI", fake_provider.url("/v1"))
    assert result.text and result.usage.total_tokens > 0
    request = fake_provider.last_request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == clients.USER_AGENT
    assert json.loads(request.body)["messages"] == HISTORY


# --- the connect-time guard ---------------------------------------------------------------------


def test_a_name_resolving_to_loopback_is_refused_when_the_connection_opens(fake_provider, strict):
    with pytest.raises(ProviderConnectionError) as caught:
        achat("OpenAI", f"http://localhost:{fake_provider.port}/v1")
    assert caught.value.detail == UNREACHABLE
    assert not caught.value.retryable
    assert fake_provider.requests == []


def test_an_ip_literal_is_refused_by_the_socket_factory(fake_provider, strict):
    # Straight to the pooled client, past the URL-level check: the socket factory refuses
    # the address before any socket connects.
    async def send():
        client = clients.get_async_client(policy_named(HOSTED))
        return await client.post(fake_provider.url("/v1/chat/completions"), json={})

    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1"):
        asyncio.run(send())
    assert fake_provider.requests == []


def test_a_metadata_name_is_refused_by_the_resolver(monkeypatch):
    resolved = []
    monkeypatch.setattr(netguard, "resolve", lambda host, port: resolved.append(host) or [])

    async def send():
        client = clients.get_async_client(policy_named(HOSTED))
        return await client.get("http://metadata.google.internal/computeMetadata/v1/")

    with pytest.raises(BlockedAddressError, match="metadata"):
        asyncio.run(send())
    assert resolved == []  # refused by name, never resolved


def test_dns_rebinding_is_caught_at_connect_time(fake_provider, strict, monkeypatch):
    answers = iter([["93.184.216.34"], ["169.254.169.254"]])
    monkeypatch.setattr(netguard, "resolve", lambda host, port: next(answers))
    netguard.check_base_url("http://rebind.example/v1", factory="OpenAI")
    with pytest.raises(ProviderConnectionError) as caught:
        achat("OpenAI", "http://rebind.example/v1")
    assert caught.value.detail == UNREACHABLE


def test_a_pooled_connection_is_never_reused_under_another_policy(fake_provider, settings):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    base = f"http://localhost:{fake_provider.port}"

    async def both():
        # A self-hosted call leaves a kept-alive loopback connection in its pool...
        assert (await adapter("OpenAI-API-Compatible", f"{base}/keyless/v1").achat(HISTORY)).text
        assert len(fake_provider.requests) == 1
        # ...which a hosted call on the same event loop must not ride.
        with pytest.raises(ProviderConnectionError) as caught:
            await adapter("OpenAI", f"{base}/v1").achat(HISTORY)
        assert caught.value.detail == UNREACHABLE
        hosted = clients.get_async_client(policy_for("OpenAI"))
        assert hosted is not clients.get_async_client(policy_for("OpenAI-API-Compatible"))

    asyncio.run(both())
    assert len(fake_provider.requests) == 1


# --- no redirects, no proxies --------------------------------------------------------------------


def test_redirects_are_handed_back_not_followed(fake_provider):
    target = "/aio-redirect-target"
    fake_provider.script(
        PATH, [Reply(status=302, headers={"Location": fake_provider.url(target)})] * 2
    )

    async def send():
        client = clients.get_async_client(policy_named(HOSTED))
        return await client.post(fake_provider.url(PATH), json={})

    response = asyncio.run(send())
    assert response.status_code == 302
    assert response.headers["location"] == fake_provider.url(target)
    with pytest.raises(ProviderConnectionError) as caught:
        asyncio.run(http.arequest("POST", fake_provider.url(PATH), context=CONTEXT, json={}))
    assert caught.value.detail == UNREACHABLE
    assert len(fake_provider.requests_to(PATH)) == 2
    assert fake_provider.requests_to(target) == []


def test_proxy_variables_are_ignored(fake_provider, closed_port, monkeypatch, settings):
    settings.LLM_PROXY_FROM_ENV = False
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert achat("OpenAI", fake_provider.url("/v1")).text  # straight to the provider
    assert fake_provider.last_request.headers["host"] == f"127.0.0.1:{fake_provider.port}"


# --- answers and failures read as with httpcore ---------------------------------------------


def test_a_compressed_answer_is_decoded_once(fake_provider):
    payload = {"ok": True, "text": "x" * 2000}
    fake_provider.script(
        PATH,
        [
            Reply(
                body=gzip.compress(json.dumps(payload).encode()),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        ],
    )
    response = asyncio.run(http.arequest("POST", fake_provider.url(PATH), context=CONTEXT))
    assert response.json() == payload


def test_closed_ports_and_non_model_servers_read_alike(not_a_model_server, closed_port, settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    details = set()
    for port in (not_a_model_server, closed_port):
        with pytest.raises(ProviderConnectionError) as caught:
            achat("OpenAI", f"http://127.0.0.1:{port}/v1")
        details.add(caught.value.detail)
        assert "unknown command" not in str(caught.value)
    assert details == {UNREACHABLE}


def test_a_slow_answer_times_out(fake_provider):
    fake_provider.script(PATH, [Reply.json({}, delay=3.0)])
    with pytest.raises(ProviderTimeout):
        asyncio.run(
            http.arequest(
                "POST",
                fake_provider.url(PATH),
                context=CONTEXT,
                policy=RetryPolicy(max_retries=0, timeout=0.3),
            )
        )


def test_a_stream_closed_midway_leaves_the_pool_usable(fake_provider):
    events = [{"n": i} for i in range(20)]
    fake_provider.script(PATH, [Reply.sse(events, chunk_delay=0.01), Reply.json({"ok": True})])

    async def close_midway_then_call():
        response = await http.aopen_stream("POST", fake_provider.url(PATH), context=CONTEXT)
        async for _ in response.aiter_bytes():
            break
        await response.aclose()
        assert response.is_closed
        return await http.arequest("POST", fake_provider.url(PATH), context=CONTEXT)

    assert asyncio.run(close_midway_then_call()).json() == {"ok": True}
    assert len(fake_provider.requests_to(PATH)) == 2


def test_cookies_of_one_answer_are_never_sent_with_the_next_call(fake_provider):
    # One client serves every tenant: a provider's cookie must not follow the next caller.
    fake_provider.script(
        PATH, [Reply.json({"n": 1}, headers={"Set-Cookie": "session=tenant-a; Path=/"})] * 2
    )

    async def two_calls():
        await http.arequest("POST", fake_provider.url(PATH), context=CONTEXT, json={})
        return await http.arequest("POST", fake_provider.url(PATH), context=CONTEXT, json={})

    assert asyncio.run(two_calls()).json() == {"n": 1}
    requests = fake_provider.requests_to(PATH)
    assert len(requests) == 2
    assert "cookie" not in requests[1].headers
