"""Who may call what: authentication, tenant selection, roles and isolation, on every route."""

import uuid

import pytest

from tenants.models import KeyValidation, Role, TenantLLM, TenantMember, ValidationKind
from tenants.selectors import tenant_owned_by

READ_ROUTES = [
    ("get", "/api/v1/llm/factories", None),
    ("get", "/api/v1/llm/my_llms", None),
    ("get", "/api/v1/llm/list", None),
    ("get", "/api/v1/tenant/default_models", None),
    ("get", "/api/v1/tenant/tenant_info", None),
]
WRITE_ROUTES = [
    ("post", "/api/v1/llm/set_api_key", {"llm_factory": "OpenAI", "api_key": "sk-x" * 5}),
    (
        "post",
        "/api/v1/llm/add_llm",
        {"llm_factory": "Ollama", "llm_name": "m", "model_type": "chat"},
    ),
    ("post", "/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}),
    (
        "post",
        "/api/v1/llm/enable_llm",
        {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"},
    ),
    ("post", "/api/v1/llm/delete_factory", {"llm_factory": "OpenAI"}),
    ("put", "/api/v1/tenant/default_models", {"llm_id": ""}),
    (
        "post",
        "/api/v1/tenant/set_tenant_info",
        {"tenant_id": "", "llm_id": "", "embd_id": "", "img2txt_id": "", "asr_id": ""},
    ),
]


@pytest.fixture
def victim_config(tenant, catalog):
    from providers.models import LLMFactory

    return TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        api_key="sk-victim-secret-key-000000000001",
    )


@pytest.fixture
def victim_task(tenant, catalog):
    from providers.models import LLMFactory

    return KeyValidation.objects.create(
        tenant=tenant,
        kind=ValidationKind.SET_API_KEY,
        factory=LLMFactory.objects.get(name="OpenAI"),
    )


def call(client, method, path, data, tenant_id=None):
    return getattr(client, method)(path, data, tenant_id=tenant_id)


@pytest.mark.django_db
def test_it_requires_authentication(api_for):
    anonymous = api_for(None)
    for method, path, data in READ_ROUTES + WRITE_ROUTES:
        response = call(anonymous, method, path, data)
        assert response.status_code == 401, path
        assert response.json()["code"] == 401


@pytest.mark.django_db
def test_it_rejects_a_wrong_or_revoked_token(api_for, owner):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer rgl_deadbeef_" + "x" * 40)
    assert client.get("/api/v1/llm/my_llms").status_code == 401
    from tenants.models import APIToken
    from tenants.services.tokens import api_token_issue, api_token_revoke

    token, raw = api_token_issue(user=owner)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/llm/my_llms").status_code == 200
    assert APIToken.objects.get(pk=token.pk).last_used_at is not None
    api_token_revoke(token=token)
    assert client.get("/api/v1/llm/my_llms").status_code == 401


def test_tokens_are_stored_as_prefix_and_hash_only(owner):
    from tenants.models import APIToken
    from tenants.services.tokens import api_token_issue

    token, raw = api_token_issue(user=owner)
    stored = APIToken.objects.get(pk=token.pk)
    assert raw.startswith(f"rgl_{stored.prefix}_")
    assert raw not in (stored.token_hash, stored.prefix)
    assert len(stored.token_hash) == 64


def test_an_outsider_gets_404_on_every_route_of_another_tenant(
    api_for, outsider, tenant, victim_config, victim_task
):
    client = api_for(outsider)
    routes = READ_ROUTES + WRITE_ROUTES + [("get", f"/api/v1/llm/tasks/{victim_task.pk}", None)]
    for method, path, data in routes:
        response = call(client, method, path, data, tenant_id=tenant.pk)
        assert response.status_code == 404, (path, response.content)
        assert "sk-victim" not in response.content.decode()
    # Within its own tenant the outsider sees nothing of the victim's either.
    own = api_for(outsider)
    assert own.get(f"/api/v1/llm/tasks/{victim_task.pk}").status_code == 404
    body = own.get("/api/v1/llm/my_llms").json()
    assert "OpenAI" not in body["data"]
    delete = own.post("/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"})
    assert delete.status_code == 404
    assert TenantLLM.objects.filter(pk=victim_config.pk).exists()


def test_a_normal_member_may_read_but_gets_403_on_every_write(api_for, member, tenant, catalog):
    client = api_for(member, tenant.pk)
    for method, path, data in READ_ROUTES:
        assert call(client, method, path, data).status_code == 200, path
    for method, path, data in WRITE_ROUTES:
        response = call(client, method, path, data)
        assert response.status_code == 403, path
        assert response.json()["code"] == 403


def test_an_invited_member_may_do_nothing(api_for, tenant, outsider, catalog):
    TenantMember.objects.create(user=outsider, tenant=tenant, role=Role.INVITE)
    client = api_for(outsider, tenant.pk)
    for method, path, data in READ_ROUTES + WRITE_ROUTES:
        assert call(client, method, path, data).status_code == 403, path


def test_an_admin_member_may_write(api_for, tenant, outsider, victim_config):
    TenantMember.objects.create(user=outsider, tenant=tenant, role=Role.ADMIN)
    client = api_for(outsider, tenant.pk)
    response = client.post(
        "/api/v1/llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"}
    )
    assert response.status_code == 200, response.content
    victim_config.refresh_from_db()
    assert victim_config.status == "0"


def test_a_user_in_several_tenants_picks_one_by_header(api_for, owner, tenant, outsider, catalog):
    other = tenant_owned_by(user=outsider)
    TenantMember.objects.create(user=owner, tenant=other, role=Role.NORMAL)
    client = api_for(owner)
    assert client.get("/api/v1/tenant/default_models").status_code == 200
    # Writes in the tenant where the owner is only a normal member are refused...
    response = client.put("/api/v1/tenant/default_models", {"llm_id": ""}, tenant_id=other.pk)
    assert response.status_code == 403
    # ...and in its own tenant they are not.
    assert client.put("/api/v1/tenant/default_models", {"llm_id": ""}).status_code == 200


def test_a_malformed_or_unknown_tenant_header_is_404(api_for, owner):
    client = api_for(owner)
    assert client.get("/api/v1/llm/my_llms", tenant_id="not-a-uuid").status_code == 404
    assert client.get("/api/v1/llm/my_llms", tenant_id=uuid.uuid4()).status_code == 404


def test_session_auth_works_for_the_browser(client, owner, catalog):
    client.force_login(owner)
    response = client.get("/api/v1/llm/factories")
    assert response.status_code == 200
    assert response.json()["code"] == 0
