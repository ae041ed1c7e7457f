"""Tencent Hunyuan takes two credential forms: a SecretId and SecretKey (RAGFlow's JSON) sign the
native API; a plain API key goes as a Bearer token to Tencent's OpenAI-compatible endpoint.
Both are validated by set_api_key's live calls and then serve calls, over real HTTP against the
fake provider (which serves the native API at /hunyuan/ and the OpenAI-compatible one at
/hunyuan/v1, accepting only its own key)."""

import json
import time

import pytest
from django.urls import reverse

from gateway.bundle import LLMBundle
from providers.adapters.hunyuan import HunyuanChat, HunyuanOpenAIChat
from providers.models import LLM, LLMFactory
from providers.registry import build_adapter
from tenants.models import KeyValidation, TenantLLM
from tenants.services.credential_input import credential_input_from_text, credentials_from_input
from tests.fakeprovider import hunyuan as fake_hunyuan
from tests.fakeprovider import openai as fake_openai

FACTORY = "Tencent Hunyuan"
HISTORY = [{"role": "user", "content": "hi"}]


@pytest.fixture
def owner_api(api_for, owner, tasks, catalog):
    return api_for(owner)


def hunyuan_catalog() -> set[str]:
    return set(LLM.objects.filter(factory__name=FACTORY).values_list("llm_name", flat=True))


def test_the_credential_form_chooses_the_protocol():
    plain = build_adapter(model_type="chat", factory=FACTORY, model_name="m", api_key="sk-abc-1")
    assert type(plain) is HunyuanOpenAIChat
    assert plain.base_url == "https://api.hunyuan.cloud.tencent.com/v1"
    assert plain.headers() == {"Authorization": "Bearer sk-abc-1"}
    # The native API's address is no place for a plain key.
    native_url = build_adapter(
        model_type="chat",
        factory=FACTORY,
        model_name="m",
        api_key="sk-abc-1",
        base_url="https://hunyuan.tencentcloudapi.com/",
    )
    assert native_url.base_url == "https://api.hunyuan.cloud.tencent.com/v1"
    fields = json.dumps({"hunyuan_sid": "AKIDx", "hunyuan_sk": "secret"})
    native = build_adapter(model_type="chat", factory=FACTORY, model_name="m", api_key=fields)
    assert type(native) is HunyuanChat
    assert native.base_url == "https://hunyuan.tencentcloudapi.com"


def test_a_plain_key_is_stored_as_it_is_and_json_still_as_json():
    assert credentials_from_input(factory=FACTORY, api_key="sk-abc-1", fields={}) == "sk-abc-1"
    assert credential_input_from_text(factory=FACTORY, text=" sk-abc-1 ") == ("sk-abc-1", {})
    keys = {"hunyuan_sid": "AKIDx", "hunyuan_sk": "secret"}
    stored = credentials_from_input(factory=FACTORY, api_key=json.dumps(keys), fields={})
    assert json.loads(stored) == keys
    # Fields win over a key given beside them, as for every multi-field factory.
    stored = credentials_from_input(factory=FACTORY, api_key="sk-abc-1", fields=keys)
    assert json.loads(stored) == keys


def test_set_api_key_with_a_plain_key_validates_on_the_openai_compatible_endpoint(
    owner_api, tenant, fake_provider
):
    base = fake_provider.url("/hunyuan/v1")
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": FACTORY, "api_key": fake_hunyuan.API_KEY, "base_url": base},
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"] is True
    rows = TenantLLM.objects.filter(tenant=tenant, factory__name=FACTORY)
    assert set(rows.values_list("llm_name", flat=True)) == hunyuan_catalog()
    assert {(row.api_key, row.api_base) for row in rows} == {(fake_hunyuan.API_KEY, base)}
    assert set(rows.values_list("validation_status", flat=True)) == {"valid"}
    # The live test call went to chat/completions, the key as Bearer; the native API saw nothing.
    calls = [r for r in fake_provider.requests if r.path.startswith("/hunyuan")]
    assert [c.path for c in calls] == ["/hunyuan/v1/chat/completions"]
    assert calls[0].bearer == fake_hunyuan.API_KEY
    assert calls[0].json["model"] in hunyuan_catalog()

    # The saved key serves calls, through the same endpoint, usage recorded from its answer.
    result = LLMBundle(tenant.pk, "chat", "hunyuan-lite@Tencent Hunyuan").chat(HISTORY)
    assert result.text == fake_openai.CHAT_TEXT
    assert fake_provider.last_request.path == "/hunyuan/v1/chat/completions"
    assert fake_provider.last_request.json["model"] == "hunyuan-lite"
    assert result.usage.total_tokens == 18


def test_a_wrong_plain_key_is_refused_as_a_key_problem_and_saves_nothing(
    owner_api, tenant, fake_provider
):
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {
            "llm_factory": FACTORY,
            "api_key": "sk-not-the-hunyuan-key-000000000",
            "base_url": fake_provider.url("/hunyuan/v1"),
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert "rejected the credentials (key problem)" in body["message"]
    assert "sk-not-the-hunyuan-key-000000000" not in json.dumps(body)
    assert not TenantLLM.objects.filter(tenant=tenant, factory__name=FACTORY).exists()
    assert KeyValidation.objects.get().state == "failed"


def test_the_secret_id_and_key_still_go_to_the_native_api(owner_api, tenant, fake_provider):
    keys = {"hunyuan_sid": fake_hunyuan.SECRET_ID, "hunyuan_sk": fake_hunyuan.SECRET_KEY}
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": FACTORY, "base_url": fake_provider.url("/hunyuan"), **keys},
    )
    assert response.status_code == 200, response.content
    calls = [r for r in fake_provider.requests if r.path.startswith("/hunyuan")]
    assert [c.path for c in calls] == ["/hunyuan/"]
    assert calls[0].headers["x-tc-action"] == "ChatCompletions"
    result = LLMBundle(tenant.pk, "chat", "hunyuan-lite@Tencent Hunyuan").chat(HISTORY)
    assert result.text == fake_hunyuan.CHAT_TEXT
    assert fake_provider.last_request.path == "/hunyuan/"


def test_the_admin_form_takes_a_plain_hunyuan_key(
    client, superuser, tenant, catalog, tasks, fake_provider
):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:tenants_tenantllm_add"),
        {
            "tenant": str(tenant.pk),
            "factory": str(LLMFactory.objects.get(name=FACTORY).pk),
            "llm_name": "hunyuan-lite",
            "model_type": "chat",
            "is_tools": "unknown",
            "api_key": fake_hunyuan.API_KEY,
            "api_base": fake_provider.url("/hunyuan/v1"),
            "max_tokens": "4096",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not KeyValidation.objects.get().finished:
        time.sleep(0.05)
    assert KeyValidation.objects.get().state == "succeeded"
    config = TenantLLM.objects.get(tenant=tenant, llm_name="hunyuan-lite")
    assert config.api_key == fake_hunyuan.API_KEY
