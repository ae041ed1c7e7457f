"""The SSRF guard: URLs checked when saved, addresses checked again when connecting."""

import pytest

from providers import netguard
from providers.errors import InvalidRequestError
from providers.netguard import BlockedAddressError, check_url
from providers.registry import build_adapter

HISTORY = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def strict(settings):
    settings.LLM_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
def test_it_refuses_these_urls_even_for_self_hosted_factories(url, strict):
    with pytest.raises(BlockedAddressError):
        check_url(url, allow_private=True)


def test_metadata_stays_refused_even_inside_an_allowed_network(settings):
    settings.LLM_ALLOWED_NETWORKS = ["169.254.0.0/16"]
    with pytest.raises(BlockedAddressError):
        check_url("http://169.254.169.254/", allow_private=False)


def test_private_addresses_depend_on_the_factory_and_the_setting(settings):
    settings.LLM_ALLOWED_NETWORKS = []
    with pytest.raises(BlockedAddressError, match="private or loopback"):
        check_url("http://10.1.2.3/v1", allow_private=False)
    check_url("http://10.1.2.3/v1", allow_private=True)
    settings.LLM_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    check_url("http://10.1.2.3/v1", allow_private=False)


def test_a_name_resolving_to_loopback_is_refused_when_the_connection_opens(fake_provider, strict):
    # "localhost" passes the URL-level check (no resolution there); the connect-time check
    # sees 127.0.0.1 and refuses it for a hosted factory.
    adapter = build_adapter(
        model_type="chat",
        factory="OpenAI",
        model_name="gpt-4o-mini",
        api_key="sk-x" * 5,
        base_url=f"http://localhost:{fake_provider.port}/v1",
    )
    with pytest.raises(InvalidRequestError, match="not allowed"):
        adapter.chat(HISTORY)
    assert fake_provider.requests == []


def test_dns_rebinding_is_caught_at_connect_time(fake_provider, strict, monkeypatch):
    answers = iter([["93.184.216.34"], ["169.254.169.254"]])
    monkeypatch.setattr(netguard, "resolve", lambda host, port: next(answers))
    # Saved: the name resolved to a public address.
    check_url("http://rebind.example/v1", allow_private=False)
    adapter = build_adapter(
        model_type="chat",
        factory="OpenAI",
        model_name="gpt-4o-mini",
        api_key="sk-x" * 5,
        base_url="http://rebind.example/v1",
    )
    # Called: it now resolves to the metadata address, and the socket is never opened.
    with pytest.raises(InvalidRequestError, match="metadata"):
        adapter.chat(HISTORY)


def test_self_hosted_factories_reach_loopback_by_name(fake_provider, strict):
    adapter = build_adapter(
        model_type="chat",
        factory="OpenAI-API-Compatible",
        model_name="local-model",
        api_key="",
        base_url=f"http://localhost:{fake_provider.port}/keyless/v1",
    )
    assert adapter.chat(HISTORY).text
    assert fake_provider.last_request.headers["host"].startswith("localhost")
