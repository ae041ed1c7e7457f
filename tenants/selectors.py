"""Reads for tenants. Every lookup of tenant-owned rows is scoped to one tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Role, Tenant, TenantLLM


def tenant_owned_by(*, user) -> Tenant | None:
    return (
        Tenant.objects.filter(members__user=user, members__role=Role.OWNER)
        .order_by("created_at")
        .first()
    )


def tenant_llm_list(*, tenant: Tenant) -> QuerySet[TenantLLM]:
    return TenantLLM.objects.filter(tenant=tenant).select_related("factory")
