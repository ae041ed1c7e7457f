"""Application keys over the API (DRF test client, real tokens over the Bearer header), the
tenant's limits API, and the create_token / revoke_token commands."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import APIToken, Role, Tenant, TenantMember
from tenants.selectors import api_token_authenticate, tenant_owned_by
from tenants.services.tokens import api_token_create

TOKEN_RE = re.compile(r"rgl_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


def key_client(raw: str, tenant_id=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    if tenant_id:
        client.defaults["HTTP_X_TENANT_ID"] = str(tenant_id)
    return client


def make_key(owner, tenant, **settings):
    settings.setdefault("name", "app")
    return api_token_create(user=owner, tenant=tenant, **settings)


@pytest.fixture
def alice(api_for, owner, tenant):
    return api_for(owner)


def test_create_returns_the_token_once_and_never_again(alice, tenant, test_factory):
    body = {
        "name": "support-bot",
        "scopes": ["invoke"],
        "models": ["test-chat@TestFactory", "*@TestFactory"],
        "expires_at": (timezone.now() + timedelta(days=30)).isoformat(),
        "rpm": 60,
        "tpm": 1000,
        "token_quota": 50000,
        "budget": "12.5",
        "quota_window": "daily",
    }
    created = alice.post("/api/v1/tokens", body)

    assert created.status_code == 201, created.json()
    data = created.json()["data"]
    raw = data["token"]
    assert TOKEN_RE.fullmatch(raw)
    token = api_token_authenticate(raw=raw)
    assert token.tenant == tenant and token.scopes == ["invoke"]
    assert token.allowed_models == ["test-chat@TestFactory", "*@TestFactory"]
    assert (token.rpm, token.tpm, token.token_quota) == (60, 1000, 50000)
    assert str(token.budget) == "12.5000" and token.quota_window == "daily"
    assert data["prefix"] == token.prefix and data["budget"] == "12.5000"
    # Never again: not in the list, not in the detail, nor its hash.
    listed = alice.get("/api/v1/tokens").content.decode()
    detail = alice.get(f"/api/v1/tokens/{token.pk}").content.decode()
    for text in (listed, detail):
        assert raw not in text and token.token_hash not in text and raw[13:] not in text
    assert token.prefix in listed


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "models": ["gpt-4o"]}, "models"),
        ({"name": "x", "models": ["nothing@NoSuchFactory"]}, "models"),
        ({"name": "x", "models": ["not-a-model@TestFactory"]}, "models"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "rpm": -1}, "rpm"),
        ({"name": "x", "budget": "-0.01"}, "budget"),
        ({"name": "x", "quota_window": "weekly"}, "quota_window"),
        ({"name": "x", "allowed_models": []}, "unknown fields"),
        ({"scopes": ["invoke"]}, "name"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(alice, test_factory, body, field):
    response = alice.post("/api/v1/tokens", body)

    assert response.status_code == 400
    assert field in response.json()["message"]
    assert not APIToken.objects.filter(tenant__isnull=False).exists()


def test_members_see_and_revoke_only_their_own_keys(api_for, owner, member, tenant):
    _, owners_raw = make_key(owner, tenant, name="owner's")
    owners = APIToken.objects.get(name="owner's")
    mine, _ = make_key(member, tenant, name="bob's")
    bob = api_for(member, tenant.pk)

    assert bob.post("/api/v1/tokens", {"name": "more"}).status_code == 403
    assert [k["name"] for k in bob.get("/api/v1/tokens").json()["data"]] == ["bob's"]
    assert bob.get(f"/api/v1/tokens/{owners.pk}").status_code == 404
    assert (
        bob.client.patch(
            f"/api/v1/tokens/{mine.pk}", {"rpm": 5}, format="json", HTTP_X_TENANT_ID=str(tenant.pk)
        ).status_code
        == 403
    )
    assert (
        bob.client.delete(
            f"/api/v1/tokens/{owners.pk}", HTTP_X_TENANT_ID=str(tenant.pk)
        ).status_code
        == 404
    )
    revoked = bob.client.delete(f"/api/v1/tokens/{mine.pk}", HTTP_X_TENANT_ID=str(tenant.pk))

    assert revoked.status_code == 200 and revoked.json()["data"]["revoked_at"]
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert api_token_authenticate(raw=owners_raw) is not None
    # Owners see every key of the tenant.
    assert len(api_for(owner).get("/api/v1/tokens").json()["data"]) == 2


def test_patch_changes_settings_and_null_clears(alice, owner, tenant, test_factory):
    token, _ = make_key(owner, tenant, rpm=10, models=["test-chat@TestFactory"])
    response = alice.client.patch(
        f"/api/v1/tokens/{token.pk}", {"rpm": None, "tpm": 500, "models": []}, format="json"
    )

    assert response.status_code == 200, response.json()
    token.refresh_from_db()
    assert (token.rpm, token.tpm, token.allowed_models) == (None, 500, [])


def test_a_key_without_manage_scope_is_refused_on_the_management_api(owner, tenant):
    _, raw = make_key(owner, tenant, scopes=["invoke"])
    client = key_client(raw)

    for path in ("/api/v1/llm/my_llms", "/api/v1/tenant/tenant_info", "/api/v1/usage"):
        assert client.get(path).status_code == 403, path
    assert client.get("/api/v1/tokens").status_code == 403
    assert client.get("/api/v1/audit").status_code == 403
    # RAGFlow's own mount: its HTTP-200 convention, code 403.
    ragflow = APIClient()
    ragflow.credentials(HTTP_AUTHORIZATION=raw)
    for path in ("/v1/llm/my_llms", "/v1/user/tenant_info"):
        answer = ragflow.get(path)
        assert answer.json()["code"] == 403, path


def test_a_manage_key_acts_only_for_its_own_tenant(owner, tenant, outsider):
    other = tenant_owned_by(user=outsider)
    TenantMember.objects.create(user=owner, tenant=other, role=Role.ADMIN)
    _, raw = make_key(owner, tenant, scopes=["manage"])

    mine = key_client(raw).get("/api/v1/tenant/tenant_info")
    theirs = key_client(raw, other.pk).get("/api/v1/tenant/tenant_info")
    same = key_client(raw, tenant.pk).get("/api/v1/tenant/tenant_info")

    assert mine.json()["data"]["tenant_id"] == str(tenant.pk)
    assert theirs.status_code == 404
    assert same.json()["data"]["tenant_id"] == str(tenant.pk)


def test_an_expired_or_revoked_key_is_401(owner, tenant):
    token, raw = make_key(owner, tenant)
    assert key_client(raw).get("/api/v1/tokens").status_code == 200
    APIToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert key_client(raw).get("/api/v1/tokens").status_code == 401

    token2, raw2 = make_key(owner, tenant, name="second")
    assert key_client(raw2).delete(f"/api/v1/tokens/{token2.pk}").status_code == 200
    assert key_client(raw2).get("/api/v1/tokens").status_code == 401


def test_personal_tokens_keep_both_scopes(alice, owner):
    token = APIToken.objects.get(user=owner, name="tests")
    assert token.scopes == ["manage", "invoke"] and token.tenant is None
    assert alice.get("/api/v1/tokens").status_code == 200


# --- tenant limits ----------------------------------------------------------------------


def test_owners_set_the_tenant_limits_and_the_secret_is_never_returned(alice, tenant):
    response = alice.client.patch(
        "/api/v1/tenant/limits",
        {
            "token_quota": 1000,
            "quota_window": "daily",
            "budget": "20",
            "rpm": 30,
            "tpm": 900,
            "alert_webhook_url": "https://93.184.215.14/hook",
            "alert_webhook_secret": "whsec-very-secret-value",
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert data["alert_webhook_secret_set"] is True
    assert "whsec" not in response.content.decode()
    tenant.refresh_from_db()
    assert (tenant.token_quota, tenant.quota_window, tenant.rpm, tenant.tpm) == (
        1000,
        "daily",
        30,
        900,
    )
    assert str(tenant.budget) == "20.0000"
    assert tenant.alert_webhook_secret == "whsec-very-secret-value"
    shown = alice.get("/api/v1/tenant/limits")
    assert "whsec" not in shown.content.decode() and shown.json()["data"]["rpm"] == 30
    cleared = alice.client.patch(
        "/api/v1/tenant/limits", {"rpm": None, "alert_webhook_secret": ""}, format="json"
    )
    assert cleared.json()["data"]["alert_webhook_secret_set"] is False
    assert cleared.json()["data"]["rpm"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest",
        "ftp://example.com/x",
        "http://10.1.2.3/",
    ],
)
def test_a_webhook_url_is_checked_by_the_ssrf_guard(alice, tenant, url, settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    response = alice.client.patch(
        "/api/v1/tenant/limits", {"alert_webhook_url": url}, format="json"
    )

    assert response.status_code == 400
    assert "alert_webhook_url" in response.json()["message"]
    assert Tenant.objects.get(pk=tenant.pk).alert_webhook_url == ""


def test_normal_members_may_read_but_not_set_limits(api_for, member, tenant):
    bob = api_for(member, tenant.pk)
    assert bob.get("/api/v1/tenant/limits").status_code == 200
    refused = bob.client.patch(
        "/api/v1/tenant/limits", {"rpm": 1}, format="json", HTTP_X_TENANT_ID=str(tenant.pk)
    )
    assert refused.status_code == 403


# --- commands -----------------------------------------------------------------------------


def test_create_token_and_revoke_token_commands(owner, tenant, test_factory, capsys):
    call_command(
        "create_token",
        "--tenant",
        str(tenant.pk),
        "--name",
        "batch-job",
        "--scopes",
        "invoke",
        "--models",
        "test-chat@TestFactory",
        "--rpm",
        "5",
        "--budget",
        "3.5",
    )
    out = capsys.readouterr().out
    raw = TOKEN_RE.search(out).group(0)
    token = api_token_authenticate(raw=raw)
    assert token.tenant == tenant and token.user == owner and token.scopes == ["invoke"]
    assert token.rpm == 5 and str(token.budget) == "3.5000"
    assert "shown once" in out

    call_command("revoke_token", token.prefix)
    out = capsys.readouterr().out
    assert "1 of 1 token(s) revoked" in out
    assert api_token_authenticate(raw=raw) is None


def test_token_commands_refuse_bad_input_clearly(owner, tenant, db):
    with pytest.raises(CommandError, match="scope"):
        call_command("create_token", "--tenant", str(tenant.pk), "--name", "x", "--scopes", "all")
    with pytest.raises(CommandError, match="No tenant matches"):
        call_command("create_token", "--tenant", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="No token matches"):
        call_command("revoke_token", "ffffffff")
