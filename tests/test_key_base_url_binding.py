"""A stored key is only ever sent to the base URL it was saved with.

A tenant admin who could change the base URL and keep the stored key could read the key on a
server of its own. Changing the scheme, host, port or path needs the key again; spelling the
same URL differently (a default port, a trailing slash, upper case) does not.
"""

import pytest

from providers.models import LLMFactory
from tenants.models import KeyValidation, TenantLLM

STORED_KEY = "sk-bundle-key-000000000001"  # chat_config's
NEW_KEY = "sk-given-again-with-the-new-url-02"
AGAIN = "needs the API key again"


@pytest.fixture
def attacker():
    """A second server the attacker controls: it records whatever it is sent."""
    from tests.fakeprovider import start_fake_provider

    server = start_fake_provider()
    yield server
    server.stop()


@pytest.fixture
def stored(chat_config):
    assert chat_config.api_key == STORED_KEY
    return chat_config


def add_llm(api, **fields):
    payload = {"llm_factory": "OpenAI", "llm_name": "gpt-4o-mini", "model_type": "chat"}
    return api.post("/api/v1/llm/add_llm", {**payload, **fields})


@pytest.mark.parametrize("verify", [False, True])
def test_add_llm_refuses_a_new_base_url_without_the_key(api_for, owner, stored, attacker, verify):
    response = add_llm(api_for(owner), api_base=attacker.url("/v1"), verify=verify)
    assert response.status_code == 400, response.content
    assert AGAIN in response.json()["message"]
    assert attacker.requests == []
    assert not KeyValidation.objects.exists()
    stored.refresh_from_db()
    assert (stored.api_key, stored.api_base) != (STORED_KEY, attacker.url("/v1"))


@pytest.mark.parametrize(
    "change",
    [
        lambda url: url.replace("http://", "https://"),  # scheme
        lambda url: url.replace("127.0.0.1", "127.0.0.2"),  # host
        lambda url: url.replace("/v1", "/other/v1"),  # path
    ],
    ids=["scheme", "host", "path"],
)
def test_every_part_of_the_base_url_is_bound_to_the_key(api_for, owner, stored, change):
    response = add_llm(api_for(owner), api_base=change(stored.api_base))
    assert response.status_code == 400, response.content
    assert AGAIN in response.json()["message"]


def test_another_port_is_another_base_url(api_for, owner, stored, attacker):
    assert f":{attacker.port}/" not in stored.api_base
    response = add_llm(api_for(owner), api_base=attacker.url("/v1"))
    assert response.status_code == 400 and AGAIN in response.json()["message"]


def test_set_api_key_without_a_key_says_the_key_is_needed_for_a_new_base_url(
    api_for, owner, stored, attacker
):
    api = api_for(owner)
    moved = api.post(
        "/api/v1/llm/set_api_key", {"llm_factory": "OpenAI", "base_url": attacker.url("/v1")}
    )
    assert moved.status_code == 400 and AGAIN in moved.json()["message"]
    verified = api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "base_url": attacker.url("/v1"), "verify": True},
    )
    assert verified.status_code == 400 and AGAIN in verified.json()["message"]
    same = api.post(
        "/api/v1/llm/set_api_key", {"llm_factory": "OpenAI", "base_url": stored.api_base}
    )
    assert same.status_code == 400 and same.json()["code"] == 101  # plainly missing
    assert attacker.requests == []


def test_the_same_url_spelled_differently_keeps_the_stored_key(
    api_for, owner, stored, fake_provider, tasks
):
    respelled = stored.api_base.replace("http://127.0.0.1", "HTTP://127.0.0.1") + "/"
    response = add_llm(api_for(owner), api_base=respelled, max_tokens=4096)
    assert response.status_code == 200, response.content
    assert fake_provider.last_request.bearer == STORED_KEY
    stored.refresh_from_db()
    assert (stored.api_key, stored.max_tokens) == (STORED_KEY, 4096)


def test_giving_the_key_again_moves_it_to_the_new_base_url(api_for, owner, stored, attacker, tasks):
    response = add_llm(api_for(owner), api_base=attacker.url("/v1"), api_key=NEW_KEY)
    assert response.status_code == 200, response.content
    assert [r.bearer for r in attacker.requests] == [NEW_KEY]
    stored.refresh_from_db()
    assert (stored.api_key, stored.api_base) == (NEW_KEY, attacker.url("/v1"))


def test_a_keyless_self_hosted_model_may_move_freely(api_for, owner, tenant, catalog, attacker):
    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI-API-Compatible"),
        llm_name="local",
        model_type="chat",
        api_base="http://127.0.0.1:9/v1",
    )
    response = api_for(owner).post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI-API-Compatible",
            "llm_name": "local",
            "model_type": "chat",
            "api_base": attacker.url("/keyless/v1"),
            "async": True,
        },
    )
    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://api.example.com/v1", "https://API.example.com:443/v1/"),
        ("http://host:80/v1", "http://host/v1"),
        ("http://[::1]:8080/v1/", "http://[::1]:8080/v1"),
        ("", "  "),
    ],
)
def test_equivalent_spellings_normalise_alike(a, b):
    from tenants.services.credential_input import normalized_base_url

    assert normalized_base_url(a) == normalized_base_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://api.example.com/v1", "http://api.example.com/v1"),
        ("https://api.example.com/v1", "https://api.example.com:8443/v1"),
        ("https://api.example.com/v1", "https://api.example.com.evil.test/v1"),
        ("https://api.example.com/v1", "https://user@api.example.com/v1"),
        ("", "https://api.openai.com/v1"),
    ],
)
def test_different_destinations_normalise_differently(a, b):
    from tenants.services.credential_input import normalized_base_url

    assert normalized_base_url(a) != normalized_base_url(b)


@pytest.mark.parametrize("verify", [False, True])
def test_the_ragflow_mount_refuses_a_new_base_url_without_the_key(owner, stored, attacker, verify):
    from tests.ragflow_client import RAGFlowClient, body, token_for

    answer = body(
        RAGFlowClient(token_for(owner)).post(
            "llm/add_llm",
            {
                "llm_factory": "OpenAI",
                "llm_name": "gpt-4o-mini",
                "model_type": "chat",
                "api_base": attacker.url("/v1"),
                "verify": verify,
            },
        )
    )
    assert answer["code"] == 102, answer
    assert AGAIN in answer["message"]
    assert attacker.requests == []
    assert not KeyValidation.objects.exists()
