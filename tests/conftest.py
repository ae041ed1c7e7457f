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
