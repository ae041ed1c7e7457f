"""The SSRF guard: network policies per factory class, URLs checked when saved and before each
attempt, addresses checked again when connecting, a pool per policy, no proxy by surprise, and
the same words for every address where no model server answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings

from providers import clients, netguard
from providers.checks import check_network_settings
from providers.errors import UNREACHABLE, InvalidRequestError, ProviderConnectionError
from providers.netguard import (
    HOSTED,
    SELF_HOSTED,
    BlockedAddressError,
    InvalidURLError,
    check_base_url,
    policy_for,
    policy_named,
)
from providers.registry import build_adapter
from providers.retry import RetryPolicy
from tenants.validation import probe_model
from tests.fakeprovider import Reply, start_fake_provider

HISTORY = [{"role": "user", "content": "Hi"}]
KEY = "sk-netguard-test-key-000001"


@pytest.fixture
def strict(settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = []


@pytest.fixture
def fresh_clients():
    """Pooled clients built during the test (with its environment) do not outlive it."""
    clients.close_clients()
    yield
    clients.close_clients()


@pytest.fixture
def closed_port():
    """A port that refuses connections for the whole test: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def fake_on_ipv6_loopback():
    """The fake provider listening on ::1 only, as Ollama does where localhost is ::1."""
    try:
        server = start_fake_provider(host="::1")
    except OSError as exc:  # pragma: no cover - a machine without IPv6
        pytest.skip(f"no IPv6 loopback here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def not_a_model_server():
    """A TCP server that answers anything as Redis does, then hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"-ERR unknown command 'POST', with args beginning with: \r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def chat(factory: str, base_url: str, **options):
    adapter = build_adapter(
        model_type="chat",
        factory=factory,
        model_name="local-model" if factory != "OpenAI" else "gpt-4o-mini",
        api_key=KEY if factory == "OpenAI" else "",
        base_url=base_url,
        **options,
    )
    return adapter.chat(HISTORY)


# --- what the policies allow -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 form of the metadata address
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
    ],
)
def test_these_addresses_are_refused_whatever_the_settings(url, settings):
    everything = ["0.0.0.0/0", "::/0"]
    settings.LLM_HOSTED_ALLOWED_NETWORKS = everything
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = everything
    for name in (HOSTED, SELF_HOSTED):
        with pytest.raises(BlockedAddressError):
            policy_named(name).check_url(url)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://user:pw@example.com/", "file:///etc/passwd"]
)
def test_urls_of_the_wrong_form_are_refused_as_such(url):
    with pytest.raises(InvalidURLError):
        policy_named(SELF_HOSTED).check_url(url)


def test_hosted_and_self_hosted_factories_have_networks_of_their_own(settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["private"]
    assert policy_for("OpenAI").name == HOSTED
    assert policy_for("Ollama").name == SELF_HOSTED
    policy_for("OpenAI").check_url("http://10.1.2.3/v1")
    with pytest.raises(BlockedAddressError, match="LLM_HOSTED_ALLOWED_NETWORKS"):
        policy_for("OpenAI").check_url("http://10.2.0.1/v1")
    policy_for("Ollama").check_url("http://10.2.0.1:11434")
    policy_for("VLLM").check_url("http://192.168.1.20:8000/v1")
    with pytest.raises(BlockedAddressError, match="LLM_SELF_HOSTED_ALLOWED_NETWORKS"):
        policy_for("Ollama").check_url("http://127.0.0.1:11434")
    # Public addresses are open to both.
    policy_for("OpenAI").check_url("http://93.184.216.34/v1")
    policy_for("LocalAI").check_url("http://93.184.216.34/v1")


def test_in_production_self_hosted_factories_reach_no_internal_address_unless_configured(strict):
    for url in ("http://127.0.0.1:11434", "http://10.0.0.5:8000", "http://[::1]:11434"):
        with pytest.raises(BlockedAddressError):
            check_base_url(url, factory="Ollama")


def test_ipv6_loopback_counts_as_127_0_0_1(settings):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    policy = policy_named(SELF_HOSTED)
    policy.check_url("http://[::1]:11434")
    policy.check_url("http://[::ffff:127.0.0.1]:11434")
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    policy_named(SELF_HOSTED).check_url("http://[::1]:11434")
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["::1/128"]
    policy_named(SELF_HOSTED).check_url("http://[::1]:11434")
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    with pytest.raises(BlockedAddressError):
        policy_named(SELF_HOSTED).check_url("http://[::1]:11434")


def test_ollama_on_ipv6_localhost_is_reached(fake_on_ipv6_loopback, settings, monkeypatch):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    port = fake_on_ipv6_loopback.port
    # By address, and by a name that resolves to ::1 only, as localhost does on many machines.
    assert chat("Ollama", f"http://[::1]:{port}/ollama").text
    real_resolve = netguard.resolve
    monkeypatch.setattr(
        netguard,
        "resolve",
        lambda host, port: ["::1"] if host == "localhost" else real_resolve(host, port),
    )
    check_base_url(f"http://localhost:{port}/ollama", factory="Ollama")
    assert chat("Ollama", f"http://localhost:{port}/ollama").text
    assert len(fake_on_ipv6_loopback.requests) == 2
    # A hosted factory is still refused there.
    with pytest.raises(ProviderConnectionError):
        chat("OpenAI", f"http://[::1]:{port}/v1")
    assert len(fake_on_ipv6_loopback.requests) == 2


def test_a_name_that_does_not_resolve_passes_the_save_check(strict):
    # It reaches nothing; the validation reports it as the network failure it is.
    check_base_url("http://ollama.invalid:11434", factory="Ollama")


def test_a_name_resolving_to_a_refused_address_fails_the_save_check(strict):
    with pytest.raises(BlockedAddressError):
        check_base_url("http://localhost:11434", factory="Ollama")


# --- the settings ----------------------------------------------------------------------------


def self_hosted_networks_at_start_up(**env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"LLM_SELF_HOSTED_ALLOWED_NETWORKS"}}
    environ.update(env)
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_self_hosted_networks_default_to_local_ranges_in_debug_and_none_in_production():
    assert self_hosted_networks_at_start_up(DEBUG="True") == ["loopback", "private"]
    assert self_hosted_networks_at_start_up(DEBUG="False") == []
    # Set (even empty), the setting wins.
    assert self_hosted_networks_at_start_up(DEBUG="True", LLM_SELF_HOSTED_ALLOWED_NETWORKS="") == []
    assert self_hosted_networks_at_start_up(
        DEBUG="False", LLM_SELF_HOSTED_ALLOWED_NETWORKS="loopback,10.8.0.0/16"
    ) == ["loopback", "10.8.0.0/16"]


def test_a_bad_network_setting_is_reported_at_start_up(settings, monkeypatch):
    assert check_network_settings(None) == []
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback", "10.0.0.0/33"]
    errors = check_network_settings(None)
    assert [e.id for e in errors] == ["ragllm.E030"]
    assert "LLM_SELF_HOSTED_ALLOWED_NETWORKS" in errors[0].msg
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = []
    monkeypatch.setenv("LLM_ALLOWED_NETWORKS", "10.0.0.0/8")
    assert [e.id for e in check_network_settings(None)] == ["ragllm.W030"]


# --- when connecting ---------------------------------------------------------------------------


def test_a_name_resolving_to_loopback_is_refused_when_the_connection_opens(fake_provider, strict):
    # "localhost" passes the URL-level check (no resolution there); the connect-time check
    # sees 127.0.0.1 and refuses it for a hosted factory.
    with pytest.raises(ProviderConnectionError) as caught:
        chat("OpenAI", f"http://localhost:{fake_provider.port}/v1")
    assert caught.value.detail == UNREACHABLE
    assert not caught.value.retryable
    assert fake_provider.requests == []


def test_dns_rebinding_is_caught_at_connect_time(fake_provider, strict, monkeypatch):
    answers = iter([["93.184.216.34"], ["169.254.169.254"]])
    monkeypatch.setattr(netguard, "resolve", lambda host, port: next(answers))
    # Saved: the name resolved to a public address.
    check_base_url("http://rebind.example/v1", factory="OpenAI")
    # Called: it now resolves to the metadata address, and the socket is never opened.
    with pytest.raises(ProviderConnectionError) as caught:
        chat("OpenAI", "http://rebind.example/v1")
    assert caught.value.detail == UNREACHABLE


def test_self_hosted_factories_reach_loopback_by_name_where_allowed(fake_provider, settings):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    assert chat("OpenAI-API-Compatible", f"http://localhost:{fake_provider.port}/keyless/v1").text
    assert fake_provider.last_request.headers["host"].startswith("localhost")


def test_a_pooled_connection_is_never_reused_under_another_policy(fake_provider, settings):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    base = f"http://localhost:{fake_provider.port}"
    # A self-hosted call opens a kept-alive connection to loopback...
    assert chat("OpenAI-API-Compatible", f"{base}/keyless/v1").text
    assert len(fake_provider.requests) == 1
    # ...which a hosted call to the same origin must not ride: it is refused, nothing is sent.
    with pytest.raises(ProviderConnectionError) as caught:
        chat("OpenAI", f"{base}/v1")
    assert caught.value.detail == UNREACHABLE
    assert len(fake_provider.requests) == 1
    assert clients.get_client(policy_for("OpenAI")) is not clients.get_client(
        policy_for("OpenAI-API-Compatible")
    )


# --- proxies -------------------------------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch, fresh_clients):
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    def set_proxy(url: str) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, url)

    return set_proxy


def test_provider_calls_ignore_proxy_variables_by_default(
    fake_provider, proxy_env, closed_port, settings
):
    settings.LLM_PROXY_FROM_ENV = False
    proxy_env(f"http://127.0.0.1:{closed_port}")
    assert chat("OpenAI", fake_provider.url("/v1")).text  # straight to the provider
    assert fake_provider.last_request.headers["host"] == f"127.0.0.1:{fake_provider.port}"


def test_a_setting_sends_provider_calls_through_the_environments_proxy(
    fake_provider, proxy_env, settings
):
    settings.LLM_PROXY_FROM_ENV = True
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    # The fake provider plays the proxy: a forward proxy gets the absolute URL.
    proxy_env(fake_provider.base_url)
    assert chat("OpenAI", "http://93.184.216.34/v1").text
    assert fake_provider.last_request.headers["host"] == "93.184.216.34"
    assert fake_provider.last_request.path == "/v1/chat/completions"
    # The proxy connects for us, so names are resolved and checked before sending.
    with pytest.raises(ProviderConnectionError) as caught:
        chat("OpenAI", f"http://localhost:{fake_provider.port}/v1")
    assert caught.value.detail == UNREACHABLE
    assert len(fake_provider.requests) == 1


# --- no port-scan oracle ----------------------------------------------------------------------


def test_refused_closed_and_non_model_servers_read_alike(
    fake_provider, not_a_model_server, closed_port, settings
):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    fake_provider.script(
        "/nginx/chat/completions",
        [Reply.raw(b"<html><h1>Welcome to nginx!</h1></html>", 404, "text/html")] * 4,
    )

    def probe(base_url: str):
        return probe_model(
            model_type="chat",
            factory="OpenAI-API-Compatible",
            llm_name="m",
            api_key="",
            api_base=base_url,
        )

    verdicts = {
        "closed": probe(f"http://127.0.0.1:{closed_port}"),
        "redis": probe(f"http://127.0.0.1:{not_a_model_server}"),
        "web page": probe(fake_provider.url("/nginx")),
    }
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = []
    verdicts["refused"] = probe(f"http://127.0.0.1:{closed_port}")
    seen = {(v.ok, v.cause, v.error_code, v.message) for v in verdicts.values()}
    assert seen == {
        (
            False,
            "network",
            "CONNECTION_ERROR",
            f"Fail to access chat model(m) using this api key: {UNREACHABLE} (network problem).",
        )
    }


def test_a_non_model_server_is_a_502_whose_body_is_never_repeated(
    api_for, owner, tasks, catalog, not_a_model_server, closed_port, settings
):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback"]
    api = api_for(owner)
    answers = []
    for port in (not_a_model_server, closed_port):
        response = api.post(
            "/api/v1/llm/add_llm",
            {
                "llm_factory": "OpenAI-API-Compatible",
                "llm_name": "scan",
                "model_type": "chat",
                "api_base": f"http://127.0.0.1:{port}/v1",
            },
        )
        assert response.status_code == 502, response.content
        answers.append(response.json()["message"])
    assert answers[0] == answers[1]
    assert UNREACHABLE in answers[0]
    assert "ERR" not in answers[0]


def test_a_refused_base_url_is_refused_when_saved_in_the_same_words(
    api_for, owner, tasks, catalog, strict
):
    response = api_for(owner).post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "Ollama",
            "llm_name": "scan",
            "model_type": "chat",
            "api_base": "http://localhost:6379",
        },
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert UNREACHABLE in message
    assert "127.0.0.1" not in message  # where the name resolves is not told


# --- names that do not resolve -----------------------------------------------------------------


def test_a_dns_failure_is_a_network_failure(api_for, owner, tasks, catalog):
    response = api_for(owner).post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI-API-Compatible",
            "llm_name": "m",
            "model_type": "chat",
            "api_base": "http://llm-server.invalid:8000/v1",
        },
    )
    assert response.status_code == 502, response.content
    message = response.json()["message"]
    assert "could not resolve llm-server.invalid (network problem)" in message
    assert "request problem" not in message
    attempt = response.json()["data"]["attempts"][0]
    assert (attempt["cause"], attempt["error_code"]) == ("network", "CONNECTION_ERROR")


def test_an_unresolvable_name_is_a_connection_error_not_a_refused_request(strict):
    with pytest.raises(ProviderConnectionError, match="could not resolve") as caught:
        chat("OpenAI", "https://api.provider.invalid/v1", retry_policy=RetryPolicy(max_retries=0))
    assert not isinstance(caught.value, InvalidRequestError)
