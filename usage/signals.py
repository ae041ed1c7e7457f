"""A deleted tenant leaves no usage behind, not even what a ledger writer committed while the
deletion waited for it (the usage tables have no foreign key to refuse such rows)."""

from __future__ import annotations

from django.db import connection
from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver

from tenants.models import Tenant


@receiver(pre_delete, sender=Tenant, dispatch_uid="usage.hold_deleted_tenant")
def hold_deleted_tenant(sender, instance: Tenant, **kwargs) -> None:
    """Before anything of the tenant is deleted: wait for the ledger writers holding it (their
    key-share lock) to commit, and keep new ones out until the deletion commits. Taken first,
    so that a writer never waits on a row the deletion already holds (no deadlock)."""
    if connection.vendor == "postgresql":
        list(Tenant.objects.select_for_update().filter(pk=instance.pk).values_list("pk"))


@receiver(post_delete, sender=Tenant, dispatch_uid="usage.purge_deleted_tenant")
def purge_deleted_tenant(sender, instance: Tenant, **kwargs) -> None:
    from .services.ledger import usage_purge_tenant

    usage_purge_tenant(tenant_id=instance.pk)
