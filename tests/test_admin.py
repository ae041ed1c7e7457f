"""The admin console: pages render, keys stay masked, forms and actions go through services."""

import pytest
from django.contrib import admin
from django.urls import reverse

from providers.models import LLMFactory
from tenants.models import APIToken, TenantLLM

SECRET = "sk-admin-never-shows-this-9f3a"
GOOD_KEY = "sk-command-key-00000000000001"


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def config(tenant, test_factory):
    return TenantLLM.objects.create(
        tenant=tenant, factory=test_factory, llm_name="test-chat", model_type="chat", api_key=SECRET
    )


def test_every_changelist_and_add_page_renders(admin_client_, config, superuser, rf):
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        request = rf.get("/")
        request.user = superuser
        views = ["changelist"] + (["add"] if model_admin.has_add_permission(request) else [])
        for view in views:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}")
            response = admin_client_.get(url)
            assert response.status_code == 200, (url, response.status_code)


def test_changelist_search_and_filters_work(admin_client_, config):
    url = reverse("admin:tenants_tenantllm_changelist")
    response = admin_client_.get(url, {"q": "test-chat", "model_type__exact": "chat"})
    assert response.status_code == 200
    assert b"test-chat" in response.content


def test_the_key_is_masked_everywhere_in_the_admin(admin_client_, config):
    pages = [
        reverse("admin:tenants_tenantllm_changelist"),
        reverse("admin:tenants_tenantllm_change", args=[config.pk]),
        reverse("admin:tenants_tenant_change", args=[config.tenant.pk]),
    ]
    for url in pages:
        body = admin_client_.get(url).content.decode()
        assert SECRET not in body, url
        assert "sk-...9f3a" in body, url


def test_a_blank_key_on_edit_keeps_the_stored_key(admin_client_, config):
    url = reverse("admin:tenants_tenantllm_change", args=[config.pk])
    form = {
        "model_type": "chat",
        "status": "1",
        "api_key": "",
        "api_base": "",
        "max_tokens": "4096",
        "token_quota": "",
        "quota_window": "monthly",
    }
    response = admin_client_.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    config.refresh_from_db()
    assert (config.api_key, config.max_tokens) == (SECRET, 4096)
    assert config.validation_status == "unknown"  # nothing new to validate


def test_the_tenant_page_shows_members_and_model_configs(admin_client_, config, member):
    body = admin_client_.get(reverse("admin:tenants_tenant_change", args=[config.tenant.pk]))
    content = body.content.decode()
    assert "bob@example.com" in content
    assert "test-chat" in content


def test_an_inline_edit_on_the_tenant_page_keeps_the_stored_key(admin_client_, config):
    tenant = config.tenant
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    form = {
        "name": "Renamed in the admin",
        "status": "1",
        "token_quota": "",
        "quota_window": "monthly",
        **dict.fromkeys(tenant.DEFAULT_FIELDS.values(), ""),
        "members-TOTAL_FORMS": "1",
        "members-INITIAL_FORMS": "1",
        "members-0-id": str(tenant.members.get().pk),
        "members-0-tenant": str(tenant.pk),
        "members-0-user": str(tenant.members.get().user_id),
        "members-0-role": "owner",
        "llms-TOTAL_FORMS": "1",
        "llms-INITIAL_FORMS": "1",
        "llms-0-id": str(config.pk),
        "llms-0-tenant": str(tenant.pk),
        "llms-0-factory": str(config.factory.pk),
        "llms-0-llm_name": "test-chat",
        "llms-0-model_type": "chat",
        "llms-0-api_base": "",
        "llms-0-max_tokens": "2048",
        "llms-0-token_quota": "",
        "llms-0-status": "1",
    }
    response = admin_client_.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    tenant.refresh_from_db()
    config.refresh_from_db()
    assert tenant.name == "Renamed in the admin"
    assert (config.api_base, config.max_tokens) == ("", 2048)
    assert config.api_key == SECRET


@pytest.mark.django_db(transaction=True)
def test_admin_validate_now_enqueues_the_task(
    client, superuser, tenant, catalog, fake_provider, tasks
):
    config = TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        api_key=GOOD_KEY,
        api_base=fake_provider.url("/v1"),
    )
    client.force_login(superuser)
    response = client.post(
        reverse("admin:tenants_tenantllm_changelist"),
        {"action": "validate_now", "_selected_action": [config.pk]},
    )
    assert response.status_code == 302
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        config.refresh_from_db()
        if config.validation_status == "valid":
            break
        time.sleep(0.05)
    assert config.validation_status == "valid"
    assert fake_provider.requests[-1].bearer == GOOD_KEY


def test_admin_issue_api_token_shows_it_once(client, superuser, owner):
    from django.contrib.auth import get_user_model

    client.force_login(superuser)
    url = reverse(f"admin:{get_user_model()._meta.app_label}_user_changelist")
    response = client.post(
        url, {"action": "issue_api_token", "_selected_action": [owner.pk]}, follow=True
    )
    body = response.content.decode()
    token = APIToken.objects.get(user=owner)
    assert f"rgl_{token.prefix}_" in body
    assert client.get(url).content.decode().count(f"rgl_{token.prefix}_") == 0
