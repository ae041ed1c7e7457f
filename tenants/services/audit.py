"""The audit log: one row per change of a tenant's credentials, base URLs, model configs,
default models, quotas, budgets, limits, keys, members and webhook.

`audit_record` is called by the service making the change, inside its transaction, so the row
exists exactly when the change does. Values are masked here, once: provider keys as
`sk-...abcd` (tenants.masking), secrets as "set" / "cleared" / "changed", never their text.
Who made the change comes from the caller's context (tenants.actors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..actors import Actor, current_actor
from ..masking import mask_credentials
from ..models import AuditEntry, KeyValidation, Tenant, TenantLLM, ValidationKind

# What a change is about; an entry's kind is "<subject>.<action>".
KINDS = (
    "credential.set",
    "credential.changed",
    "base_url.changed",
    "model_config.added",
    "model_config.changed",
    "model_config.enabled",
    "model_config.disabled",
    "model_config.deleted",
    "default_model.changed",
    "quota.changed",
    "budget.changed",
    "limits.changed",
    "key.created",
    "key.changed",
    "key.revoked",
    "member.added",
    "member.role_changed",
    "member.removed",
    "webhook.changed",
)


def audit_value(value: Any) -> Any:
    """A JSON-able value for `changes` (never called with a key or secret: see below)."""
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [audit_value(v) for v in value]
    return value


def masked_key(value: str) -> str:
    return mask_credentials(value) if value else ""


def secret_change(before: str, after: str) -> str:
    if not after:
        return "cleared"
    return "set" if not before else "changed"


def audit_diff(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    keys: Iterable[str] = (),
    secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """{field: {"from": old, "to": new}} for the fields that differ, masked."""
    keys, secrets = set(keys), set(secrets)
    changes: dict[str, Any] = {}
    for name, new in after.items():
        old = before.get(name)
        if old == new:
            continue
        if name in secrets:
            changes[name] = secret_change(old or "", new or "")
        elif name in keys:
            changes[name] = {"from": masked_key(old or ""), "to": masked_key(new or "")}
        else:
            changes[name] = {"from": audit_value(old), "to": audit_value(new)}
    return changes


def audit_record(
    *,
    tenant: Tenant | str,
    kind: str,
    object: str = "",
    changes: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
) -> AuditEntry:
    """Record one change (call it inside the change's transaction)."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit kind {kind!r}")
    actor = actor or current_actor()
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    return AuditEntry.objects.create(
        tenant_id=tenant_id,
        actor_user_id=actor.user_id,
        actor_token_id=actor.token_id,
        actor_label=actor.label[:200],
        kind=kind,
        object=object[:300],
        changes=dict(changes or {}),
        source=actor.source,
        client_address=actor.address,
    )


def audit_validated_key(*, validation: KeyValidation, rows: list[TenantLLM]) -> None:
    """Audit what applying `validation` changes (before it is written: the old values are
    still there), as the requester made it (its actor travelled in `requested_via`)."""
    actor = Actor.from_dict(validation.requested_via)
    stored = {
        config.llm_name: config
        for config in TenantLLM.objects.filter(
            tenant_id=validation.tenant_id,
            factory=validation.factory,
            llm_name__in=[row.llm_name for row in rows],
        )
    }
    factory = validation.factory.name
    if validation.kind == ValidationKind.SET_API_KEY:
        old = next(iter(stored.values()), None)
        changes = audit_diff(
            {"api_key": old.api_key if old else "", "base_url": old.api_base if old else ""},
            {"api_key": validation.api_key, "base_url": validation.api_base},
            keys=("api_key",),
        )
        changes["models"] = len(rows)
        kind = "credential.changed" if stored else "credential.set"
        audit_record(
            tenant=validation.tenant_id,
            kind=kind,
            object=f"Factory {factory}",
            changes=changes,
            actor=actor,
        )
        return
    row = rows[0]
    old = stored.get(row.llm_name)
    name = f"TenantLLM {row.llm_name}@{factory}"
    if old is None:
        changes = audit_diff(
            {},
            {
                "api_key": row.api_key,
                "base_url": row.api_base,
                "model_type": row.model_type,
                "max_tokens": row.max_tokens,
            },
            keys=("api_key",),
        )
        audit_record(
            tenant=validation.tenant_id,
            kind="model_config.added",
            object=name,
            changes=changes,
            actor=actor,
        )
        return
    credentials = audit_diff(
        {"api_key": old.api_key, "base_url": old.api_base},
        {"api_key": row.api_key, "base_url": row.api_base},
        keys=("api_key",),
    )
    if credentials:
        audit_record(
            tenant=validation.tenant_id,
            kind="credential.changed" if "api_key" in credentials else "base_url.changed",
            object=name,
            changes=credentials,
            actor=actor,
        )
    settings_changes = audit_diff(
        {"model_type": old.model_type, "max_tokens": old.max_tokens},
        {"model_type": row.model_type, "max_tokens": row.max_tokens},
    )
    if settings_changes:
        audit_record(
            tenant=validation.tenant_id,
            kind="model_config.changed",
            object=name,
            changes=settings_changes,
            actor=actor,
        )
