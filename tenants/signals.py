"""Every user gets a tenant of its own when it is created (as in RAGFlow's sign-up)."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="tenants.create_user_tenant")
def create_user_tenant(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw:
        return
    from .services import tenant_create_for_user

    tenant_create_for_user(user=instance)
