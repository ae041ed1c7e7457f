"""Keys that cannot be sent as typed are refused on our side, before anything is sent.

A key with a line break, a space, a control or a non-ASCII character is a copy-paste accident:
the answer is a 400 saying so, not a provider error about an answer that never came.
"""

import json

import pytest

from tenants.models import KeyValidation, TenantLLM

BROKEN_KEYS = [
    "sk-ключ-000000000000001",
    "sk-two-keys-000001\nsk-two-keys-000002",
    "sk-with-an-escape\x1b-0000001",
    "sk-with a space-000000001",
    "sk-emoji-🔑-00000000001",
]


@pytest.fixture
def owner_api(api_for, owner, catalog):
    return api_for(owner)


@pytest.mark.parametrize("key", BROKEN_KEYS)
@pytest.mark.parametrize("route", ["set_api_key", "add_llm"])
def test_an_unsendable_key_is_refused_before_anything_is_sent(owner_api, fake_provider, key, route):
    payload = {"llm_factory": "OpenAI", "api_key": key, "base_url": fake_provider.url("/v1")}
    if route == "add_llm":
        payload |= {"llm_name": "gpt-4o-mini", "model_type": "chat"}
    response = owner_api.post(f"/api/v1/llm/{route}", payload)
    assert response.status_code == 400, response.content
    body = response.json()
    assert "characters a key cannot have" in body["message"]
    assert "nothing was sent" in body["message"]
    assert "could not be understood" not in body["message"]
    assert key not in response.content.decode()
    assert fake_provider.requests == []
    assert not KeyValidation.objects.exists()
    assert not TenantLLM.objects.filter(api_base=fake_provider.url("/v1")).exists()


def test_the_fields_of_a_json_credential_are_checked_too(owner_api):
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "VolcEngine",
            "llm_name": "doubao",
            "model_type": "chat",
            "ark_api_key": "ark-ключ-0000000",
            "endpoint_id": "ep-2024-0001",
        },
    )
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith("ark_api_key contains characters")


def test_a_service_account_document_may_hold_line_breaks():
    from tenants.services.credential_input import credentials_from_input

    document = '{"type": "service_account",\n "private_key": "-----BEGIN KEY-----\\nabc\\n"}'
    stored = credentials_from_input(
        factory="Google Cloud",
        api_key=None,
        fields={
            "google_project_id": "my-project",
            "google_region": "us-central1",
            "google_service_account_key": document,
        },
    )
    assert json.loads(stored)["google_service_account_key"] == document


@pytest.mark.parametrize(
    "api_key",
    [
        {"yiyan_ak": "ak-ключ-00000001", "yiyan_sk": "sk-0000000000000001"},
        '{"yiyan_ak": "ak-ключ-00000001", "yiyan_sk": "sk-0000000000000001"}',
    ],
    ids=["object", "json text"],
)
def test_a_credential_given_as_an_object_in_api_key_is_checked_too(owner_api, api_key):
    # RAGFlow's spellings of a multi-field credential (BaiduYiyan's object, Hunyuan's JSON text)
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "BaiduYiyan",
            "llm_name": "ernie-4.0-8k",
            "model_type": "chat",
            "api_key": api_key,
        },
    )
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith("yiyan_ak contains characters")
    assert "ключ" not in response.content.decode()
    assert not KeyValidation.objects.exists()
