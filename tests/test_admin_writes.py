"""Every write the admin makes goes through the API's services: deleting model configs (one, or
"delete selected") follows delete_llm's rules, key validations are records nobody edits, and
is_tools is set as add_llm sets it. The admin's forms are posted as a browser would."""

import html

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from providers.models import LLM, LLMFactory
from ragllm.celery import app
from ragllm.errors import Conflict
from tenants.models import KeyValidation, TenantLLM
from tenants.resolution import ModelNotAuthorized, resolve_model
from tenants.services.configs import tenant_llm_delete_configs

GOOD_KEY = "sk-a-new-good-key-0000000000002"


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def configs(chat_config, fake_provider):
    """gpt-4o-mini@OpenAI (the tenant's default chat model) and gpt-4o@OpenAI (not a default)."""
    other = TenantLLM.objects.create(
        tenant=chat_config.tenant,
        factory=chat_config.factory,
        llm_name="gpt-4o",
        model_type="chat",
        api_key="sk-bundle-key-000000000001",
        api_base=fake_provider.url("/v1"),
    )
    return chat_config, other


def delete_url(config) -> str:
    return reverse("admin:tenants_tenantllm_delete", args=[config.pk])


def delete_selected(client, *configs, confirm: bool):
    data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(c.pk) for c in configs]}
    if confirm:
        data["post"] = "yes"
    return client.post(reverse("admin:tenants_tenantllm_changelist"), data)


# --- Deleting a model config -------------------------------------------------------------------


def test_the_default_model_cannot_be_deleted_from_its_page(admin_client_, configs, api_for, owner):
    default, _ = configs
    page = admin_client_.get(delete_url(default)).content.decode()
    assert "cannot be deleted" in page
    assert "gpt-4o-mini@OpenAI is the default chat model of tenant" in page
    assert 'name="post"' not in page  # no confirmation button

    response = admin_client_.post(delete_url(default), {"post": "yes"})
    assert response.status_code == 200
    assert TenantLLM.objects.filter(pk=default.pk).exists()
    # The API refuses the same deletion.
    api = api_for(owner)
    body = api.post(
        "/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o-mini"}
    ).json()
    assert "default chat model" in body["message"]
    assert TenantLLM.objects.filter(pk=default.pk).exists()


def test_deleting_from_its_page_goes_through_the_service(admin_client_, configs):
    default, other = configs
    tenant_id = other.tenant_id
    # Cached in this process: the deletion must drop it.
    assert resolve_model(tenant_id, "chat", "gpt-4o@OpenAI").config_id == other.pk

    response = admin_client_.post(delete_url(other), {"post": "yes"})
    assert response.status_code == 302
    assert not TenantLLM.objects.filter(pk=other.pk).exists()
    assert TenantLLM.objects.filter(pk=default.pk).exists()
    with pytest.raises(ModelNotAuthorized):
        resolve_model(tenant_id, "chat", "gpt-4o@OpenAI")


def test_a_default_set_after_the_page_was_shown_still_blocks_the_deletion(
    admin_client_, configs, monkeypatch
):
    # The confirmation page saw no default; the service, under the tenant's lock, does.
    _, other = configs
    from tenants.admin import TenantLLMAdmin

    def no_protection(self, objs, request):
        return [], {}, set(), []

    monkeypatch.setattr(TenantLLMAdmin, "get_deleted_objects", no_protection)
    tenant = other.tenant
    tenant.llm_id = "gpt-4o@OpenAI"
    tenant.save()
    response = admin_client_.post(delete_url(other), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    page = html.unescape(response.content.decode()).lower()  # messages are capitalised
    assert "gpt-4o@openai is the tenant's default chat model" in page
    assert TenantLLM.objects.filter(pk=other.pk).exists()


def test_delete_selected_refuses_a_selection_holding_a_default_and_deletes_nothing(
    admin_client_, configs
):
    default, other = configs
    page = delete_selected(admin_client_, default, other, confirm=False).content.decode()
    assert "cannot be deleted (nothing is deleted)" in page
    assert "gpt-4o-mini@OpenAI is the default chat model of tenant" in page

    response = delete_selected(admin_client_, default, other, confirm=True)
    assert response.status_code == 200
    assert TenantLLM.objects.filter(pk__in=[default.pk, other.pk]).count() == 2


def test_delete_selected_goes_through_the_service(admin_client_, configs, tenant):
    default, other = configs
    embed = TenantLLM.objects.create(
        tenant=tenant,
        factory=default.factory,
        llm_name="text-embedding-3-small",
        model_type="embedding",
        api_key="sk-x-000000000001",
    )
    assert resolve_model(tenant.pk, "chat", "gpt-4o@OpenAI").config_id == other.pk
    response = delete_selected(admin_client_, other, embed, confirm=True)
    assert response.status_code == 302
    assert list(TenantLLM.objects.values_list("pk", flat=True)) == [default.pk]
    with pytest.raises(ModelNotAuthorized):
        resolve_model(tenant.pk, "chat", "gpt-4o@OpenAI")


def test_the_bulk_service_is_all_or_nothing(configs):
    default, other = configs
    with pytest.raises(Conflict, match="default chat model"):
        tenant_llm_delete_configs(configs=[other, default])
    assert TenantLLM.objects.filter(pk__in=[default.pk, other.pk]).count() == 2


def test_a_validation_waiting_to_change_a_deleted_config_does_not_bring_it_back(
    admin_client_, configs, stopped_worker
):
    _, other = configs
    form = {
        "model_type": "chat",
        "status": "1",
        "is_tools": "unknown",
        "api_key": GOOD_KEY,
        "api_base": other.api_base,
        "max_tokens": str(other.max_tokens),
        "token_quota": "",
        "quota_window": other.quota_window,
    }
    change = reverse("admin:tenants_tenantllm_change", args=[other.pk])
    assert admin_client_.post(change, form).status_code == 302
    assert admin_client_.post(delete_url(other), {"post": "yes"}).status_code == 302

    ((name, args),) = stopped_worker.take_messages()
    app.tasks[name](*args)
    validation = KeyValidation.objects.get()
    assert validation.state == "superseded"
    assert validation.api_key == ""
    assert "deleted" in validation.message
    assert not TenantLLM.objects.filter(tenant=other.tenant, llm_name="gpt-4o").exists()


def test_delete_factory_supersedes_a_set_api_key_still_waiting(
    configs, api_for, owner, stopped_worker, tenant
):
    # The same service behind the API: a key rotation queued before the factory was deleted
    # does not bring the factory's models back when it finally runs.
    default, _ = configs
    tenant.llm_id = ""
    tenant.save()
    api = api_for(owner)
    queued = api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": default.api_base, "async": True},
    )
    assert queued.status_code == 202, queued.content
    assert api.post("/api/v1/llm/delete_factory", {"llm_factory": "OpenAI"}).json()["data"] is True
    ((name, args),) = stopped_worker.take_messages()
    app.tasks[name](*args)
    validation = KeyValidation.objects.get()
    assert (validation.state, validation.api_key) == ("superseded", "")
    assert not TenantLLM.objects.filter(tenant=tenant).exists()


# --- Key validations are read-only -------------------------------------------------------------


@pytest.fixture
def validation(tenant, catalog):
    return KeyValidation.objects.create(
        tenant=tenant,
        kind="add_llm",
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        state="failed",
        message="Fail to access chat model(gpt-4o) using this api key: rejected.",
    )


def test_key_validations_can_be_viewed_but_not_added_changed_or_deleted(admin_client_, validation):
    changelist = reverse("admin:tenants_keyvalidation_changelist")
    page = admin_client_.get(changelist)
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()
    change = reverse("admin:tenants_keyvalidation_change", args=[validation.pk])
    detail = admin_client_.get(change)
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert "deletelink" not in detail.content.decode()

    delete = reverse("admin:tenants_keyvalidation_delete", args=[validation.pk])
    assert admin_client_.get(delete).status_code == 403
    assert admin_client_.post(delete, {"post": "yes"}).status_code == 403
    admin_client_.post(
        changelist,
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(validation.pk)], "post": "yes"},
    )
    assert admin_client_.post(change, {"state": "succeeded"}).status_code == 403
    assert admin_client_.get(reverse("admin:tenants_keyvalidation_add")).status_code == 403
    validation.refresh_from_db()
    assert validation.state == "failed"


# --- is_tools, as add_llm stores it -------------------------------------------------------------


def test_is_tools_is_set_from_the_change_form(admin_client_, configs, api_for, owner):
    _, other = configs
    assert LLM.objects.get(factory__name="OpenAI", llm_name="gpt-4o").is_tools is True
    change = reverse("admin:tenants_tenantllm_change", args=[other.pk])
    page = admin_client_.get(change).content.decode()
    assert '<option value="unknown" selected>As the catalog says</option>' in page

    form = {
        "model_type": "chat",
        "status": "1",
        "is_tools": "false",
        "api_key": "",
        "api_base": other.api_base,
        "max_tokens": str(other.max_tokens),
        "token_quota": "",
        "quota_window": other.quota_window,
    }
    assert admin_client_.post(change, form).status_code == 302
    other.refresh_from_db()
    assert other.is_tools is False
    assert not KeyValidation.objects.exists()  # no credential changed: nothing to validate
    details = api_for(owner).get("/api/v1/llm/my_llms", {"include_details": "true"}).json()
    (gpt,) = [m for m in details["data"]["OpenAI"]["llm"] if m["name"] == "gpt-4o"]
    assert gpt["is_tools"] is False  # the config's own flag wins over the catalog's
    page = admin_client_.get(change).content.decode()
    assert '<option value="false" selected>No</option>' in page

    form["is_tools"] = "unknown"
    assert admin_client_.post(change, form).status_code == 302
    other.refresh_from_db()
    assert other.is_tools is None


@pytest.mark.django_db(transaction=True)
def test_is_tools_from_the_add_form_is_stored_once_the_key_is_proven(
    admin_client_, tenant, catalog, fake_provider, tasks
):
    import time

    response = admin_client_.post(
        reverse("admin:tenants_tenantllm_add"),
        {
            "tenant": str(tenant.pk),
            "factory": str(LLMFactory.objects.get(name="OpenAI-API-Compatible").pk),
            "llm_name": "local-agent",
            "model_type": "chat",
            "is_tools": "true",
            "api_key": GOOD_KEY,
            "api_base": fake_provider.url("/v1"),
            "max_tokens": "4096",
        },
    )
    assert response.status_code == 302
    assert KeyValidation.objects.get().is_tools is True
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not KeyValidation.objects.get().finished:
        time.sleep(0.05)
    assert KeyValidation.objects.get().state == "succeeded"
    assert TenantLLM.objects.get(tenant=tenant, llm_name="local-agent").is_tools is True


# --- The catalog is edited, never deleted -------------------------------------------------------


def test_catalog_rows_are_disabled_rather_than_deleted(admin_client_, catalog):
    factory = LLMFactory.objects.get(name="OpenAI")
    model = LLM.objects.get(factory=factory, llm_name="gpt-4o")
    for name, row in (("llmfactory", factory), ("llm", model)):
        delete = reverse(f"admin:providers_{name}_delete", args=[row.pk])
        assert admin_client_.post(delete, {"post": "yes"}).status_code == 403
        changelist = reverse(f"admin:providers_{name}_changelist")
        assert "delete_selected" not in admin_client_.get(changelist).content.decode()
        admin_client_.post(
            changelist,
            {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(row.pk)], "post": "yes"},
        )
        assert type(row).objects.filter(pk=row.pk).exists()
