"""A deleted tenant leaves no usage behind, not even what a ledger writer committed while the
deletion waited for it (the usage tables have no foreign key to refuse such rows)."""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from tenants.models import Tenant


@receiver(post_delete, sender=Tenant, dispatch_uid="usage.purge_deleted_tenant")
def purge_deleted_tenant(sender, instance: Tenant, **kwargs) -> None:
    from .services.ledger import usage_purge_tenant

    usage_purge_tenant(tenant_id=instance.pk)
