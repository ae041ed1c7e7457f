"""The admin: application keys created through the same service as the API (shown once on
a page of their own), edited and revoked; the tenant page's limits and write-only secret."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tenants.models import APIToken, AuditEntry, Tenant
from tenants.selectors import api_token_authenticate
from tenants.services.tokens import api_token_create

TOKEN_RE = re.compile(r"rgl_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
SECRET = "whsec-Fq3Wn8Ld2Rk7Vz5Mb9Xc4"


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


def key_form(tenant, **values):
    form = {
        "tenant": str(tenant.pk),
        "user": "",
        "name": "nightly-batch",
        "scopes": ["invoke"],
        "models": "test-chat@TestFactory\n*@TestFactory\n",
        "expires_at_0": "",
        "expires_at_1": "",
        "rpm": "12",
        "tpm": "",
        "token_quota": "",
        "budget": "7.25",
        "quota_window": "monthly",
    }
    form.update(values)
    return form


def test_an_application_key_is_created_and_shown_once(admin_client_, owner, tenant, test_factory):
    response = admin_client_.post(reverse("admin:tenants_apitoken_add"), key_form(tenant))

    assert response.status_code == 200, response.content.decode()[:2000]
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert "shown on this page only" in body
    (raw,) = TOKEN_RE.findall(body)
    token = api_token_authenticate(raw=raw)
    assert token.tenant == tenant and token.user == owner  # the owner by default
    assert token.scopes == ["invoke"] and token.rpm == 12 and str(token.budget) == "7.2500"
    assert token.allowed_models == ["test-chat@TestFactory", "*@TestFactory"]
    entry = AuditEntry.objects.get(kind="key.created")
    assert entry.source == "admin"
    # The key's page never shows it again.
    page = admin_client_.get(reverse("admin:tenants_apitoken_change", args=[token.pk]))
    assert raw not in page.content.decode() and token.token_hash not in page.content.decode()


def test_bad_key_settings_show_on_their_field(admin_client_, tenant, test_factory):
    response = admin_client_.post(
        reverse("admin:tenants_apitoken_add"), key_form(tenant, models="nope@TestFactory")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "models" in errors and "neither in the catalog" in errors["models"][0]
    assert not APIToken.objects.exists()


def test_a_key_is_edited_and_revoked_in_the_admin(admin_client_, owner, tenant, test_factory):
    token, raw = api_token_create(user=owner, tenant=tenant, name="edit-me", rpm=1)
    url = reverse("admin:tenants_apitoken_change", args=[token.pk])
    form = key_form(tenant, name="edited", rpm="99", models="")
    del form["tenant"], form["user"]
    response = admin_client_.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    token.refresh_from_db()
    assert (token.name, token.rpm, token.allowed_models) == ("edited", 99, [])

    admin_client_.post(
        reverse("admin:tenants_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert api_token_authenticate(raw=raw) is None
    assert list(AuditEntry.objects.order_by("pk").values_list("kind", flat=True)) == [
        "key.created",
        "key.changed",
        "key.revoked",
    ]


def tenant_form(tenant, **values):
    form = {
        "name": tenant.name,
        "status": "1",
        "token_quota": "",
        "quota_window": "monthly",
        "budget": "",
        "rpm": "",
        "tpm": "",
        "alert_webhook_url": "",
        "alert_webhook_secret": "",
        **dict.fromkeys(tenant.DEFAULT_FIELDS.values(), ""),
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
        "llms-TOTAL_FORMS": "0",
        "llms-INITIAL_FORMS": "0",
    }
    form.update(values)
    return form


def test_the_tenant_page_sets_limits_and_a_write_only_secret(admin_client_, tenant):
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    response = admin_client_.post(
        url,
        tenant_form(
            tenant,
            budget="50",
            rpm="100",
            tpm="5000",
            alert_webhook_url="https://93.184.215.14/hooks",
            alert_webhook_secret=SECRET,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert (str(tenant.budget), tenant.rpm, tenant.tpm) == ("50.0000", 100, 5000)
    assert tenant.alert_webhook_secret == SECRET
    page = admin_client_.get(url).content.decode()
    assert SECRET not in page and "A secret is set" in page
    # Saving again with the secret left blank keeps it.
    admin_client_.post(
        url,
        tenant_form(
            tenant,
            budget="50",
            rpm="100",
            tpm="5000",
            alert_webhook_url="https://93.184.215.14/hooks",
        ),
    )
    assert Tenant.objects.get(pk=tenant.pk).alert_webhook_secret == SECRET
    kinds = set(AuditEntry.objects.values_list("kind", flat=True))
    assert kinds == {"budget.changed", "limits.changed", "webhook.changed"}
    assert all(e.source == "admin" for e in AuditEntry.objects.all())
    assert SECRET[6:] not in str(list(AuditEntry.objects.values_list("changes", flat=True)))


def test_the_tenant_page_refuses_an_internal_webhook_url(admin_client_, tenant, settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    response = admin_client_.post(
        url, tenant_form(tenant, alert_webhook_url="http://169.254.169.254/latest")
    )
    assert response.status_code == 200
    assert "alert_webhook_url" in response.context["adminform"].form.errors
    assert Tenant.objects.get(pk=tenant.pk).alert_webhook_url == ""


def test_audit_entries_cannot_be_deleted_but_go_with_their_tenant(admin_client_, owner, tenant):
    api_token_create(user=owner, tenant=tenant, name="audited")
    entry = AuditEntry.objects.get()

    assert (
        admin_client_.get(reverse("admin:tenants_auditentry_delete", args=[entry.pk])).status_code
        == 403
    )
    page = admin_client_.get(reverse("admin:tenants_auditentry_change", args=[entry.pk]))
    assert page.status_code == 200 and b"deletelink" not in page.content
    response = admin_client_.post(
        reverse("admin:tenants_tenant_delete", args=[tenant.pk]), {"post": "yes"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert not AuditEntry.objects.exists()
