"""The audit log: one row for each kind of change, written with the change, naming who (user,
key), from where (api, admin, command, address) and what (masked: never any key text)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from providers.models import LLMFactory
from tenants.models import AuditEntry, Role, TenantLLM, TenantMember
from tenants.services.key_validation import key_validation_run
from tenants.services.tokens import api_token_create

KEY = "sk-Qz7Hk2Lm9Wx4Rt6Yp1Vb8Nc3Jd5cdef"  # the fake provider accepts any "sk-" key
NEW_KEY = "sk-Ua5Gh8Ej1Ow3Iy6Tf9Rk2Pl4Zs7x3210"
SECRET = "whsec-Xr4Tq9Lp2Mn7Bv5Kc8Zd1Hy6"


def assert_no_secret_text(*texts: str) -> None:
    """No piece of 6 or more characters of any key or secret appears anywhere."""
    blob = "\n".join(texts).lower()
    for secret in (KEY, NEW_KEY, SECRET):
        for start in range(len(secret) - 5):
            piece = secret[start : start + 6].lower()
            assert piece not in blob, f"{piece!r} of a secret is in the audit log"


def all_rows() -> str:
    return json.dumps(
        [
            [e.kind, e.object, e.changes, e.actor_label]
            for e in AuditEntry.objects.order_by("created_at", "pk")
        ]
    )


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)


@pytest.fixture
def gpt(tenant, catalog):
    return TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        api_key=KEY,
        api_base="https://api.openai.com/v1",
    )


def kinds(tenant) -> list[str]:
    return list(
        AuditEntry.objects.filter(tenant=tenant).order_by("pk").values_list("kind", flat=True)
    )


def test_a_key_set_through_the_api_is_audited_when_applied_with_its_requester(
    owner_api, owner, tenant, catalog, fake_provider
):
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "gpt-4o-mini",
            "model_type": "chat",
            "api_key": KEY,
            "api_base": fake_provider.url("/v1"),
            "async": True,
        },
    )
    assert response.status_code == 202, response.json()
    assert not AuditEntry.objects.exists()  # nothing changed yet
    key_validation_run(validation_id=response.json()["data"]["task_id"])  # the worker's part

    entry = AuditEntry.objects.get(tenant=tenant)
    assert entry.kind == "model_config.added"
    assert entry.object == "TenantLLM gpt-4o-mini@OpenAI"
    assert entry.changes["api_key"] == {"from": "", "to": "sk-...cdef"}
    assert entry.changes["base_url"]["to"] == fake_provider.url("/v1")
    assert (entry.source, entry.actor_user_id) == ("api", owner.pk)
    assert entry.actor_token_id is not None and entry.client_address == "127.0.0.1"
    assert_no_secret_text(all_rows())

    # A new key for the same model: credential.changed, old and new masked.
    again = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "gpt-4o-mini",
            "model_type": "chat",
            "api_key": NEW_KEY,
            "api_base": fake_provider.url("/v1"),
            "async": True,
        },
    )
    key_validation_run(validation_id=again.json()["data"]["task_id"])
    changed = AuditEntry.objects.filter(kind="credential.changed").get()
    assert changed.changes["api_key"] == {"from": "sk-...cdef", "to": "sk-...3210"}
    assert_no_secret_text(all_rows())


@pytest.mark.django_db(transaction=True)
def test_set_api_key_by_command_is_audited_as_the_command(tenant, owner, catalog, fake_provider):
    call_command(
        "set_api_key",
        "--tenant",
        owner.email,
        "--factory",
        "OpenAI",
        "--key",
        KEY,
        "--base-url",
        fake_provider.url("/v1"),
    )
    entry = AuditEntry.objects.get(tenant=tenant, kind__startswith="credential.")
    assert entry.object == "Factory OpenAI" and entry.source == "command"
    assert entry.actor_label == "manage.py set_api_key" and entry.client_address is None
    assert entry.changes["api_key"]["to"] == "sk-...cdef"
    assert_no_secret_text(all_rows())


def test_model_config_enable_disable_delete_and_defaults(owner_api, tenant, gpt):
    owner_api.post(
        "/api/v1/llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": 0}
    )
    owner_api.post(
        "/api/v1/llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": 1}
    )
    owner_api.put("/api/v1/tenant/default_models", {"llm_id": "gpt-4o@OpenAI"})
    owner_api.put("/api/v1/tenant/default_models", {"llm_id": ""})
    owner_api.post("/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"})

    assert kinds(tenant) == [
        "model_config.disabled",
        "model_config.enabled",
        "default_model.changed",
        "default_model.changed",
        "model_config.deleted",
    ]
    default = AuditEntry.objects.filter(kind="default_model.changed").order_by("pk").first()
    assert default.changes["llm_id"]["to"] == "gpt-4o@OpenAI"
    deleted = AuditEntry.objects.get(kind="model_config.deleted")
    assert deleted.changes["api_key"] == "sk-...cdef"
    assert_no_secret_text(all_rows())


def test_limits_quota_budget_and_webhook_changes(owner_api, tenant):
    owner_api.client.patch(
        "/api/v1/tenant/limits",
        {
            "token_quota": 100,
            "budget": "5",
            "rpm": 10,
            "alert_webhook_url": "https://93.184.215.14/hook",
            "alert_webhook_secret": SECRET,
        },
        format="json",
    )
    owner_api.client.patch("/api/v1/tenant/limits", {"alert_webhook_secret": ""}, format="json")

    by_kind = {e.kind: e.changes for e in AuditEntry.objects.filter(tenant=tenant).order_by("pk")}
    assert by_kind["quota.changed"] == {"token_quota": {"from": None, "to": 100}}
    assert by_kind["budget.changed"] == {"budget": {"from": None, "to": "5"}}
    assert by_kind["limits.changed"] == {"rpm": {"from": None, "to": 10}}
    webhook = list(AuditEntry.objects.filter(kind="webhook.changed").order_by("pk"))
    assert webhook[0].changes["alert_webhook_secret"] == "set"
    assert webhook[0].changes["alert_webhook_url"]["to"] == "https://93.184.215.14/hook"
    assert webhook[1].changes == {"alert_webhook_secret": "cleared"}
    assert_no_secret_text(all_rows())


def test_keys_created_changed_and_revoked(owner_api, owner, tenant):
    created = owner_api.post("/api/v1/tokens", {"name": "bot", "scopes": ["invoke"], "rpm": 3})
    token_id = created.json()["data"]["id"]
    raw = created.json()["data"]["token"]
    owner_api.client.patch(f"/api/v1/tokens/{token_id}", {"rpm": 4}, format="json")
    owner_api.client.delete(f"/api/v1/tokens/{token_id}")

    assert kinds(tenant) == ["key.created", "key.changed", "key.revoked"]
    entry = AuditEntry.objects.get(kind="key.changed")
    assert entry.changes == {"rpm": {"from": 3, "to": 4}}
    assert raw not in all_rows() and raw[13:25] not in all_rows()


def test_member_changes_in_the_admin_are_audited_as_admin(client, superuser, tenant, member):
    client.force_login(superuser)
    membership = TenantMember.objects.get(user=member, tenant=tenant)
    url = reverse("admin:tenants_tenantmember_change", args=[membership.pk])
    response = client.post(url, {"user": member.pk, "tenant": tenant.pk, "role": Role.ADMIN})
    assert response.status_code == 302, response.content[:2000]
    delete = reverse("admin:tenants_tenantmember_delete", args=[membership.pk])
    client.post(delete, {"post": "yes"})

    changed = AuditEntry.objects.get(kind="member.role_changed")
    assert changed.changes == {"role": {"from": "normal", "to": "admin"}}
    assert (changed.source, changed.actor_user_id) == ("admin", superuser.pk)
    assert changed.actor_label == "root"
    assert AuditEntry.objects.filter(kind="member.removed").exists()


def test_the_audit_api_filters_paginates_and_is_for_owners_and_admins(
    owner_api, api_for, owner, member, tenant
):
    for n in range(3):
        api_token_create(user=owner, tenant=tenant, name=f"k{n}")
    old = AuditEntry.objects.order_by("pk").first()
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    owner_api.client.patch("/api/v1/tenant/limits", {"rpm": 1}, format="json")

    page = owner_api.get("/api/v1/audit", {"page_size": 2}).json()["data"]
    assert page["total"] == 4 and len(page["entries"]) == 2
    assert page["entries"][0]["kind"] == "limits.changed"  # newest first
    second = owner_api.get("/api/v1/audit", {"page_size": 2, "page": 2}).json()["data"]
    assert len(second["entries"]) == 2
    assert owner_api.get("/api/v1/audit", {"page": 9}).json()["data"]["entries"] == []
    keys = owner_api.get("/api/v1/audit", {"kind": "key"}).json()["data"]
    assert keys["total"] == 3
    since = (timezone.now() - timedelta(days=1)).isoformat()
    recent = owner_api.get("/api/v1/audit", {"from": since}).json()["data"]
    assert recent["total"] == 3
    assert owner_api.get("/api/v1/audit", {"kind": "nonsense"}).status_code == 400
    assert api_for(member, tenant.pk).get("/api/v1/audit").status_code == 403


def test_the_admin_audit_list_is_read_only(client, superuser, owner, tenant):
    api_token_create(user=owner, tenant=tenant, name="listed")
    client.force_login(superuser)

    listing = client.get(reverse("admin:tenants_auditentry_changelist"))
    assert listing.status_code == 200 and b"key.created" in listing.content
    assert client.get(reverse("admin:tenants_auditentry_add")).status_code == 403


def test_an_edited_model_config_and_a_new_base_url_are_audited(
    owner_api, tenant, catalog, fake_provider
):
    from tenants.actors import Actor, acting_as
    from tenants.services.configs import tenant_llm_edit

    body = {
        "llm_factory": "OpenAI",
        "llm_name": "gpt-4o-mini",
        "model_type": "chat",
        "api_key": KEY,
        "api_base": fake_provider.url("/v1"),
        "async": True,
    }
    key_validation_run(
        validation_id=owner_api.post("/api/v1/llm/add_llm", body).json()["data"]["task_id"]
    )
    moved = owner_api.post(
        "/api/v1/llm/add_llm", body | {"api_base": fake_provider.url("/v1/") + "x/.."}
    )
    assert moved.status_code == 202, moved.json()
    key_validation_run(validation_id=moved.json()["data"]["task_id"])
    config = TenantLLM.objects.get(tenant=tenant, llm_name="gpt-4o-mini")
    with acting_as(Actor(source="admin", user_id=1, label="root", address="10.0.0.1")):
        tenant_llm_edit(
            config=config,
            api_key="",
            api_base=config.api_base,
            model_type="chat",
            max_tokens=4096,
            token_quota=500,
            quota_window="daily",
            status="1",
            is_tools=config.is_tools,
        )

    moved_entry = AuditEntry.objects.get(kind="base_url.changed")
    assert set(moved_entry.changes) == {"base_url"}
    changed = AuditEntry.objects.get(kind="model_config.changed")
    assert changed.changes == {"max_tokens": {"from": 8192, "to": 4096}}
    quota = AuditEntry.objects.get(kind="quota.changed")
    assert quota.changes["token_quota"] == {"from": None, "to": 500}
    assert (quota.source, quota.client_address, quota.actor_label) == ("admin", "10.0.0.1", "root")
    assert_no_secret_text(all_rows())
