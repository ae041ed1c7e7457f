"""Every user gets a tenant of its own when it is created (as in RAGFlow's sign-up)."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="tenants.create_user_tenant")
def create_user_tenant(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw:
        return
    from .services.tenants import tenant_create_for_user

    tenant_create_for_user(user=instance)


def _invalidate_resolutions(**kwargs) -> None:
    from .process_cache import invalidate

    invalidate()


def _connect_invalidation() -> None:
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete

    from providers.models import LLM, LLMFactory
    from providers.signals import catalog_changed

    from .models import APIToken, Tenant, TenantLLM, TenantMember

    for model in (Tenant, TenantLLM, TenantMember, APIToken, LLM, LLMFactory, get_user_model()):
        uid = f"tenants.invalidate.{model._meta.label_lower}"
        post_save.connect(_invalidate_resolutions, sender=model, dispatch_uid=uid + ".save")
        post_delete.connect(_invalidate_resolutions, sender=model, dispatch_uid=uid + ".delete")
    catalog_changed.connect(_invalidate_resolutions, dispatch_uid="tenants.invalidate.catalog")


_connect_invalidation()
