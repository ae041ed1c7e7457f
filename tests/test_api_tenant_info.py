"""GET /api/v1/tenant/tenant_info and POST /api/v1/tenant/set_tenant_info: RAGFlow's tenant
routes with honest statuses (the same views serve /v1/user/... for RAGFlow's app)."""

import pytest

from providers.models import LLMFactory
from tenants.models import TenantLLM

PATH = "/api/v1/tenant/"


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)


@pytest.fixture
def configs(tenant, catalog):
    openai = LLMFactory.objects.get(name="OpenAI")
    for name, model_type in [("gpt-4o", "chat"), ("text-embedding-3-small", "embedding")]:
        TenantLLM.objects.create(
            tenant=tenant,
            factory=openai,
            llm_name=name,
            model_type=model_type,
            api_key="sk-" + "1" * 30,
        )


def settings_of(tenant, **values):
    return {
        "tenant_id": str(tenant.pk),
        "llm_id": "",
        "embd_id": "",
        "img2txt_id": "",
        "asr_id": "",
        **values,
    }


def test_it_gives_the_tenant_its_defaults_parsers_and_the_callers_role(owner_api, tenant):
    tenant.llm_id = "gpt-4o@OpenAI"
    tenant.save()
    data = owner_api.get(PATH + "tenant_info").json()["data"]
    assert list(data) == [
        "tenant_id",
        "name",
        "llm_id",
        "embd_id",
        "rerank_id",
        "img2txt_id",
        "asr_id",
        "tts_id",
        "ocr_id",
        "parser_ids",
        "role",
    ]
    assert (data["tenant_id"], data["name"], data["llm_id"]) == (
        str(tenant.pk),
        tenant.name,
        "gpt-4o@OpenAI",
    )
    assert data["role"] == "owner" and data["tts_id"] == ""
    assert data["parser_ids"].startswith("naive:General,qa:Q&A,")


def test_it_renames_and_sets_defaults_with_null_or_empty_clearing(owner_api, tenant, configs):
    answer = owner_api.post(
        PATH + "set_tenant_info",
        settings_of(
            tenant, name="Alice Inc", llm_id="gpt-4o@OpenAI", embd_id="text-embedding-3-small"
        ),
    )
    assert answer.json() == {"code": 0, "message": "success", "data": True}
    tenant.refresh_from_db()
    assert (tenant.name, tenant.llm_id, tenant.embd_id) == (
        "Alice Inc",
        "gpt-4o@OpenAI",
        "text-embedding-3-small@OpenAI",
    )
    cleared = settings_of(
        tenant, name="", llm_id=None, embd_id="text-embedding-3-small@OpenAI", tts_id=None
    )
    assert owner_api.post(PATH + "set_tenant_info", cleared).status_code == 200
    tenant.refresh_from_db()
    assert (tenant.name, tenant.llm_id, tenant.tts_id) == ("Alice Inc", "", "")


def test_it_refuses_a_model_the_tenant_cannot_use_and_changes_nothing(owner_api, tenant, configs):
    bad = settings_of(tenant, name="Renamed", llm_id="gpt-4o@OpenAI", embd_id="bge@Builtin")
    response = owner_api.post(PATH + "set_tenant_info", bad)
    assert response.status_code == 400
    assert "bge@Builtin" in response.json()["message"]
    tenant.refresh_from_db()
    assert (tenant.name, tenant.llm_id) != ("Renamed", "gpt-4o@OpenAI")


def test_an_unchanged_default_is_not_checked_again(owner_api, tenant, configs):
    # A default that is no longer usable must not block changing another one.
    tenant.rerank_id = "gone@Jina"
    tenant.save()
    response = owner_api.post(
        PATH + "set_tenant_info", settings_of(tenant, llm_id="gpt-4o@OpenAI", rerank_id="gone@Jina")
    )
    assert response.status_code == 200, response.content
    tenant.refresh_from_db()
    assert (tenant.llm_id, tenant.rerank_id) == ("gpt-4o@OpenAI", "gone@Jina")


def test_it_updates_only_the_tenant_the_request_acts_for(owner_api, tenant, outsider):
    from tenants.selectors import tenant_owned_by

    other = tenant_owned_by(user=outsider)
    response = owner_api.post(PATH + "set_tenant_info", settings_of(other, name="pwned"))
    assert response.status_code == 404
    assert response.json()["message"] == "Tenant not found!"
    other.refresh_from_db()
    assert other.name != "pwned"
    for tenant_id in ("", None, str(tenant.pk).replace("-", "")):
        ok = owner_api.post(
            PATH + "set_tenant_info", {**settings_of(tenant), "tenant_id": tenant_id}
        )
        assert ok.status_code == 200, tenant_id


def test_missing_arguments_are_named_in_ragflows_order(owner_api):
    response = owner_api.post(PATH + "set_tenant_info", {"llm_id": ""})
    assert response.status_code == 400
    assert response.json()["message"] == (
        "required argument are missing: tenant_id,asr_id,embd_id,img2txt_id; "
    )
