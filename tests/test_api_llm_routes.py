"""The RAGFlow routes that need no provider call: shapes, effects and refusals."""

import json

import pytest

from providers.models import LLMFactory
from tenants.models import TenantLLM

SECRET = "sk-route-test-secret-000000000042"


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)


@pytest.fixture
def openai(catalog):
    return LLMFactory.objects.get(name="OpenAI")


@pytest.fixture
def gpt(tenant, openai):
    return TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="gpt-4o",
        model_type="chat",
        api_key=SECRET,
        api_base="https://api.openai.com/v1",
        max_tokens=128000,
        used_tokens=77,
    )


@pytest.fixture
def embed(tenant, openai):
    return TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="text-embedding-3-small",
        model_type="embedding",
        api_key=SECRET,
    )


def test_factories_are_listed_by_rank_with_their_model_types(owner_api, catalog):
    body = owner_api.get("/api/v1/llm/factories").json()
    assert body["code"] == 0 and body["message"] == "success"
    names = [f["name"] for f in body["data"]]
    ranks = [f["rank"] for f in body["data"]]
    assert ranks == sorted(ranks, reverse=True)
    openai = next(f for f in body["data"] if f["name"] == "OpenAI")
    assert {"chat", "embedding", "image2text", "speech2text", "tts"} <= set(openai["model_types"])
    ollama = next(f for f in body["data"] if f["name"] == "Ollama")
    assert "chat" in ollama["model_types"]  # empty catalog list: types come from the tags
    assert "GreenPT" not in names


def test_my_llms_groups_by_factory_and_never_returns_keys(owner_api, gpt, embed):
    body = owner_api.get("/api/v1/llm/my_llms").json()
    llms = body["data"]["OpenAI"]["llm"]
    assert {item["name"] for item in llms} == {"gpt-4o", "text-embedding-3-small"}
    item = next(i for i in llms if i["name"] == "gpt-4o")
    assert item == {"id": gpt.pk, "type": "chat", "name": "gpt-4o", "used_token": 77, "status": "1"}
    detailed = owner_api.get("/api/v1/llm/my_llms", {"include_details": "true"}).json()
    item = next(i for i in detailed["data"]["OpenAI"]["llm"] if i["name"] == "gpt-4o")
    assert item["api_base"] == "https://api.openai.com/v1"
    assert item["max_tokens"] == 128000
    assert item["is_tools"] is True
    assert SECRET not in json.dumps(detailed)


def test_my_llms_makes_a_fixed_number_of_queries(
    owner_api, tenant, openai, django_assert_max_num_queries
):
    for i in range(30):
        TenantLLM.objects.create(tenant=tenant, factory=openai, llm_name=f"m{i}", model_type="chat")
    with django_assert_max_num_queries(8):
        assert owner_api.get("/api/v1/llm/my_llms", {"include_details": "1"}).status_code == 200


def test_list_marks_models_available_when_the_tenant_has_a_key(owner_api, gpt):
    data = owner_api.get("/api/v1/llm/list").json()["data"]
    gpt4o = next(m for m in data["OpenAI"] if m["llm_name"] == "gpt-4o")
    assert gpt4o["available"] is True and gpt4o["fid"] == "OpenAI"
    claude = data["Anthropic"][0]
    assert claude["available"] is False
    only_embedding = owner_api.get("/api/v1/llm/list", {"model_type": "embedding"}).json()["data"]
    assert all(
        "embedding" in m["model_types"] for models in only_embedding.values() for m in models
    )
    assert "Anthropic" not in only_embedding
    bad = owner_api.get("/api/v1/llm/list", {"model_type": "telepathy"})
    assert bad.status_code == 400 and bad.json()["code"] == 102


def test_list_shows_custom_models_of_the_tenant(owner_api, tenant, catalog):
    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="Ollama"),
        llm_name="llama3.2",
        model_type="chat",
        api_base="http://127.0.0.1:11434",
    )
    data = owner_api.get("/api/v1/llm/list").json()["data"]
    assert data["Ollama"][0]["llm_name"] == "llama3.2"
    assert data["Ollama"][0]["available"] is True


def test_delete_llm_removes_one_config(owner_api, gpt, embed):
    response = owner_api.post(
        "/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}
    )
    assert response.json() == {"code": 0, "message": "success", "data": True}
    assert not TenantLLM.objects.filter(pk=gpt.pk).exists()
    assert TenantLLM.objects.filter(pk=embed.pk).exists()
    again = owner_api.post(
        "/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}
    )
    assert again.status_code == 404 and again.json()["code"] == 102


def test_missing_arguments_answer_ragflows_101(owner_api, catalog):
    response = owner_api.post("/api/v1/llm/delete_llm", {})
    assert response.status_code == 400
    assert response.json()["code"] == 101
    assert response.json()["message"] == "required argument are missing: llm_factory,llm_name; "


def test_enable_llm_toggles_the_status(owner_api, gpt):
    path = "/api/v1/llm/enable_llm"
    assert (
        owner_api.post(
            path, {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"}
        ).status_code
        == 200
    )
    gpt.refresh_from_db()
    assert gpt.status == "0"
    assert (
        owner_api.post(
            path, {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "1"}
        ).status_code
        == 200
    )
    gpt.refresh_from_db()
    assert gpt.status == "1"
    bad = owner_api.post(path, {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "maybe"})
    assert bad.status_code == 400


def test_delete_factory_removes_all_its_configs(owner_api, gpt, embed):
    response = owner_api.post("/api/v1/llm/delete_factory", {"llm_factory": "OpenAI"})
    assert response.status_code == 200
    assert not TenantLLM.objects.filter(factory__name="OpenAI").exists()
    assert (
        owner_api.post("/api/v1/llm/delete_factory", {"llm_factory": "OpenAI"}).status_code == 404
    )
    unknown = owner_api.post("/api/v1/llm/delete_factory", {"llm_factory": "NoSuchCo"})
    assert unknown.status_code == 404


def test_default_models_must_be_enabled_models_of_that_type(owner_api, gpt, embed):
    path = "/api/v1/tenant/default_models"
    response = owner_api.put(path, {"llm_id": "gpt-4o@OpenAI", "embd_id": "text-embedding-3-small"})
    assert response.status_code == 200, response.content
    data = owner_api.get(path).json()["data"]
    assert data["llm_id"] == "gpt-4o@OpenAI"
    assert data["embd_id"] == "text-embedding-3-small@OpenAI"
    # gpt-4o is also an image2text model in the catalog: allowed as that default too.
    assert owner_api.put(path, {"img2txt_id": "gpt-4o@OpenAI"}).status_code == 200
    # Not an embedding model:
    wrong_type = owner_api.put(path, {"embd_id": "gpt-4o@OpenAI"})
    assert (
        wrong_type.status_code == 400
        and "not an enabled embedding model" in wrong_type.json()["message"]
    )
    # Not configured at all:
    assert owner_api.put(path, {"llm_id": "claude-opus-4-6@Anthropic"}).status_code == 400
    assert owner_api.put(path, {"colour": "red"}).status_code == 400
    # A default cannot be disabled or deleted from under the tenant.
    disable = owner_api.post(
        "/api/v1/llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"}
    )
    assert disable.status_code == 409
    assert (
        owner_api.post("/api/v1/llm/delete_factory", {"llm_factory": "OpenAI"}).status_code == 409
    )
    assert owner_api.put(path, {"llm_id": "", "img2txt_id": ""}).json()["data"]["llm_id"] == ""


def test_a_disabled_model_cannot_become_a_default(owner_api, gpt):
    TenantLLM.objects.filter(pk=gpt.pk).update(status="0")
    response = owner_api.put("/api/v1/tenant/default_models", {"llm_id": "gpt-4o@OpenAI"})
    assert response.status_code == 400


def test_unknown_factory_and_unsupported_type_are_refused(owner_api, catalog):
    unknown = owner_api.post(
        "/api/v1/llm/add_llm",
        {"llm_factory": "NoSuchCo", "llm_name": "x", "model_type": "chat", "api_key": "k" * 20},
    )
    assert unknown.status_code == 404
    wrong = owner_api.post(
        "/api/v1/llm/add_llm",
        {"llm_factory": "Anthropic", "llm_name": "x", "model_type": "tts", "api_key": "k" * 20},
    )
    assert wrong.status_code == 400 and "does not serve tts" in wrong.json()["message"]


@pytest.mark.parametrize(
    ("factory", "fields", "missing"),
    [
        ("VolcEngine", {"ark_api_key": "ark-000000000000"}, "endpoint_id"),
        ("Tencent Hunyuan", {"hunyuan_sid": "sid-0000000000"}, "hunyuan_sk"),
        ("BaiduYiyan", {"yiyan_sk": "sk-0000000000"}, "yiyan_ak"),
        ("Fish Audio", {"fish_audio_ak": "ak-0000000000"}, "fish_audio_refid"),
        ("Bedrock", {"bedrock_ak": "AKIA0000000000", "bedrock_region": "us-east-1"}, "bedrock_sk"),
        ("Bedrock", {"auth_mode": "iam_role", "bedrock_region": "us-east-1"}, "aws_role_arn"),
    ],
)
def test_json_credential_factories_name_missing_fields(
    owner_api, catalog, factory, fields, missing
):
    model_type = "tts" if factory == "Fish Audio" else "chat"
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {"llm_factory": factory, "llm_name": "m", "model_type": model_type, **fields},
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == 101 and missing in body["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/v1",
        "http://127.0.0.1:8080/v1",
        "http://10.0.0.5/v1",
        "http://192.168.1.10/v1",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://user:pass@example.com/v1",
    ],
)
def test_hosted_factories_refuse_internal_base_urls(owner_api, catalog, url, settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": "sk-" + "x" * 30, "base_url": url},
    )
    assert response.status_code == 400, (url, response.content)
    assert "base_url is not allowed" in response.json()["message"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://169.254.169.254/v1", False),
        ("http://100.100.100.200/v1", False),
        ("http://127.0.0.1:11434", True),
        ("http://10.1.2.3:8000/v1", True),
    ],
)
def test_self_hosted_factories_may_use_private_but_never_metadata_addresses(
    owner_api, catalog, url, allowed, settings
):
    settings.LLM_SELF_HOSTED_ALLOWED_NETWORKS = ["loopback", "private"]
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "Ollama",
            "llm_name": "m",
            "model_type": "chat",
            "api_base": url,
            "verify": True,
            "async": True,
        },
    )
    if allowed:
        assert response.status_code == 202, response.content
    else:
        assert response.status_code == 400
        assert "could not reach a model server" in response.json()["message"]


def test_the_allowed_networks_setting_opens_a_private_range(owner_api, catalog, settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {
            "llm_factory": "OpenAI",
            "api_key": "sk-" + "x" * 30,
            "base_url": "http://10.20.1.1/v1",
            "async": True,
            "verify": True,
        },
    )
    assert response.status_code == 202, response.content


def test_list_marks_a_disabled_model_unavailable_and_gives_config_ids(owner_api, gpt, embed):
    TenantLLM.objects.filter(pk=gpt.pk).update(status="0")
    data = owner_api.get("/api/v1/llm/list").json()["data"]
    openai = {m["llm_name"]: m for m in data["OpenAI"]}
    assert (openai["gpt-4o"]["available"], openai["gpt-4o"]["status"]) == (False, "0")
    assert openai["gpt-4o"]["id"] == gpt.pk
    assert (
        openai["text-embedding-3-small"]["available"],
        openai["text-embedding-3-small"]["id"],
    ) == (
        True,
        embed.pk,
    )
    assert openai["gpt-4.1"]["available"] is True and openai["gpt-4.1"]["id"] is None


def test_a_disabled_model_of_the_tenants_own_is_listed_unavailable(owner_api, tenant, catalog):
    ollama = LLMFactory.objects.get(name="Ollama")
    TenantLLM.objects.create(
        tenant=tenant,
        factory=ollama,
        llm_name="llama3.2",
        model_type="chat",
        status="0",
        is_tools=True,
    )
    item = owner_api.get("/api/v1/llm/list").json()["data"]["Ollama"][0]
    assert (item["llm_name"], item["available"], item["status"], item["is_tools"]) == (
        "llama3.2",
        False,
        "0",
        True,
    )


def test_is_tools_is_the_configs_own_flag_else_the_catalogs(owner_api, gpt, embed):
    # The catalog says gpt-4o calls tools; this tenant's config says it does not.
    TenantLLM.objects.filter(pk=gpt.pk).update(is_tools=False)
    detailed = owner_api.get("/api/v1/llm/my_llms", {"include_details": "true"}).json()["data"]
    flags = {i["name"]: i["is_tools"] for i in detailed["OpenAI"]["llm"]}
    assert flags == {"gpt-4o": False, "text-embedding-3-small": False}
    TenantLLM.objects.filter(pk=gpt.pk).update(is_tools=None)
    listed = owner_api.get("/api/v1/llm/list").json()["data"]["OpenAI"]
    assert next(m for m in listed if m["llm_name"] == "gpt-4o")["is_tools"] is True
