"""A tenant's members and their roles (the admin edits them here), each change audited."""

from __future__ import annotations

from django.db import transaction

from ..models import TenantMember
from .audit import audit_record


def _label(member: TenantMember) -> str:
    return f"TenantMember {member.user.get_username()}"


@transaction.atomic
def tenant_member_save(*, member: TenantMember) -> TenantMember:
    """Add a member, or save its changed role (the post_save signal drops cached access)."""
    old = TenantMember.objects.filter(pk=member.pk).first() if member.pk else None
    member.save()
    if old is None:
        audit_record(
            tenant=member.tenant_id,
            kind="member.added",
            object=_label(member),
            changes={"role": {"from": None, "to": member.role}},
        )
    elif old.role != member.role or old.tenant_id != member.tenant_id:
        audit_record(
            tenant=member.tenant_id,
            kind="member.role_changed",
            object=_label(member),
            changes={"role": {"from": old.role, "to": member.role}},
        )
    return member


@transaction.atomic
def tenant_member_remove(*, member: TenantMember) -> None:
    audit_record(
        tenant=member.tenant_id,
        kind="member.removed",
        object=_label(member),
        changes={"role": {"from": member.role, "to": None}},
    )
    member.delete()
