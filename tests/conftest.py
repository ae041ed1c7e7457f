"""The fixed cast of the suite: an owner, a member of the owner's tenant, and an outsider."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from providers.models import LLM, LLMFactory
from tenants.models import Role, TenantMember
from tenants.selectors import tenant_owned_by


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user(
        username="alice@example.com", email="alice@example.com", password="pw-alice-123"
    )


@pytest.fixture
def tenant(owner):
    return tenant_owned_by(user=owner)


@pytest.fixture
def member(db, tenant):
    user = get_user_model().objects.create_user(
        username="bob@example.com", email="bob@example.com", password="pw-bob-123"
    )
    TenantMember.objects.create(user=user, tenant=tenant, role=Role.NORMAL)
    return user


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user(
        username="mallory@example.com", email="mallory@example.com", password="pw-mallory-123"
    )


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password="pw-root-123"
    )


@pytest.fixture
def test_factory(db):
    """A small catalog of our own, independent of the shipped fixture's content."""
    factory = LLMFactory.objects.create(name="TestFactory", tags="LLM,TEXT EMBEDDING", rank=1)
    LLM.objects.create(
        factory=factory, llm_name="test-chat", model_type="chat", model_types=["chat"]
    )
    LLM.objects.create(
        factory=factory,
        llm_name="test-embed",
        model_type="embedding",
        model_types=["embedding"],
        max_tokens=512,
    )
    return factory


class ApiClient:
    """A DRF test client authenticated with a real API token over the Bearer header."""

    def __init__(self, user, tenant_id=None):
        from rest_framework.test import APIClient

        from tenants.services import api_token_issue

        self.client = APIClient()
        self.user = user
        if user is not None:
            _, raw = api_token_issue(user=user, name="tests")
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        self.tenant_id = tenant_id

    def _headers(self, tenant_id):
        tenant_id = tenant_id or self.tenant_id
        return {"HTTP_X_TENANT_ID": str(tenant_id)} if tenant_id else {}

    def get(self, path, params=None, tenant_id=None):
        return self.client.get(path, params or {}, **self._headers(tenant_id))

    def post(self, path, data=None, tenant_id=None):
        return self.client.post(path, data or {}, format="json", **self._headers(tenant_id))

    def put(self, path, data=None, tenant_id=None):
        return self.client.put(path, data or {}, format="json", **self._headers(tenant_id))


@pytest.fixture
def api_for():
    def make(user, tenant_id=None):
        return ApiClient(user, tenant_id)

    return make


@pytest.fixture
def catalog(db):
    """Our shipped catalog, loaded if a transactional test flushed it away."""
    from django.conf import settings

    from providers.services import catalog_load

    if not LLMFactory.objects.filter(name="OpenAI").exists():
        catalog_load(path=settings.LLM_FACTORIES_FILE)
