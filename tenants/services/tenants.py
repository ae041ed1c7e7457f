"""Tenants: a user's own tenant, its default model configurations and default models."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from providers.models import LLM, LLMFactory
from providers.models import Status as CatalogStatus

from ..defaults import ModelDefault, SystemDefaults, load_system_defaults
from ..models import Role, Tenant, TenantLLM, TenantMember
from ..selectors import tenant_llm_find_enabled
from .audit import audit_diff, audit_record

logger = logging.getLogger(__name__)


def _default_tenant_name(user: AbstractBaseUser) -> str:
    display = (getattr(user, "get_full_name", lambda: "")() or user.get_username()).strip()
    return f"{display}'s tenant"[:128]


def tenant_llm_init_defaults(*, tenant: Tenant, defaults: SystemDefaults) -> list[TenantLLM]:
    """Create the tenant's default model configs (RAGFlow's `get_init_tenant_llm`).

    One row per catalog model of each default factory, with the key and base URL of the
    type's configuration or else the factory's, deduplicated by (factory, model name): the
    first configuration naming a factory wins. The default models themselves always get a row,
    even when the catalog lists no models for their factory (self-hosted ones).
    """
    # (factory, api_key, base_url) in the order RAGFlow walks them, without repeats.
    factory_configs: list[tuple[str, str, str]] = []
    for model_default in defaults.models.values():
        config = (model_default.factory, model_default.api_key, model_default.base_url)
        if config not in factory_configs:
            factory_configs.append(config)
    if defaults.factory and not any(c[0] == defaults.factory for c in factory_configs):
        factory_configs.append((defaults.factory, defaults.api_key, defaults.base_url))

    factories = {
        factory.name: factory
        for factory in LLMFactory.objects.filter(name__in={c[0] for c in factory_configs})
    }
    rows: dict[tuple[str, str], TenantLLM] = {}

    def add(factory: LLMFactory, name: str, model_type: str, max_tokens: int, key: str, base: str):
        rows.setdefault(
            (factory.name, name),
            TenantLLM(
                tenant=tenant,
                factory=factory,
                llm_name=name,
                model_type=model_type,
                api_key=key,
                api_base=base,
                max_tokens=max_tokens or 8192,
            ),
        )

    for factory_name, api_key, base_url in factory_configs:
        factory = factories.get(factory_name)
        if factory is None:
            logger.warning("default factory %s is not in the catalog; skipped", factory_name)
            continue
        catalog = LLM.objects.filter(factory=factory, status=CatalogStatus.VALID)
        for llm in catalog.order_by("pk"):
            add(factory, llm.llm_name, llm.model_type, llm.max_tokens, api_key, base_url)
    for model_default in defaults.models.values():
        factory = factories.get(model_default.factory)
        if factory is not None:
            add(
                factory,
                model_default.name,
                model_default.model_type,
                8192,
                model_default.api_key,
                model_default.base_url,
            )
    return TenantLLM.objects.bulk_create(rows.values(), ignore_conflicts=True)


def _apply_default_names(tenant: Tenant, models: dict[str, ModelDefault]) -> None:
    for model_type, model_default in models.items():
        setattr(tenant, Tenant.DEFAULT_FIELDS[model_type], model_default.full_name)


@transaction.atomic
def tenant_create_for_user(*, user: AbstractBaseUser, name: str | None = None) -> Tenant:
    """The user's own tenant, with owner membership and the system default models.

    Idempotent: a user who already owns a tenant gets that one back.
    """
    owned = (
        Tenant.objects.filter(members__user=user, members__role=Role.OWNER)
        .order_by("created_at")
        .first()
    )
    if owned is not None:
        return owned
    defaults = load_system_defaults()
    tenant = Tenant(name=(name or _default_tenant_name(user))[:128])
    _apply_default_names(tenant, defaults.models)
    tenant.save()
    TenantMember.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    tenant_llm_init_defaults(tenant=tenant, defaults=defaults)
    return tenant


def tenant_rename(*, tenant: Tenant, name: str) -> Tenant:
    tenant.name = name[:128]
    tenant.save(update_fields=["name", "updated_at"])
    return tenant


@transaction.atomic
def user_create_with_tenant(
    *, email: str, name: str | None = None, password: str | None = None
) -> tuple[AbstractBaseUser, Tenant, bool]:
    """Create (or find) the user with this email and its tenant. Returns (user, tenant, created)."""
    user_model = get_user_model()
    email = user_model.objects.normalize_email(email).strip()
    user = user_model.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        # Creating the user sends post_save, which creates its tenant (tenants.signals).
        user = user_model.objects.create_user(username=email, email=email, password=password)
    tenant = tenant_create_for_user(user=user, name=name)
    if name and tenant.name != name:
        tenant = tenant_rename(tenant=tenant, name=name)
    return user, tenant, created


def tenant_default_models_set(*, tenant: Tenant, values: dict[str, str | None]) -> Tenant:
    """Set default models by RAGFlow field name (llm_id, embd_id...). "" or None clears one.

    A new default must name a model the tenant has enabled, of that type. A value equal to the
    current default is kept as it is: clients send every field on each change (RAGFlow's app
    does), and one stale default must not block changing another.
    """
    by_field = {field_name: model_type for model_type, field_name in Tenant.DEFAULT_FIELDS.items()}
    changed: list[str] = []
    before = {name: getattr(tenant, name) for name in values}
    for field_name, value in values.items():
        model_type = by_field[field_name]
        value = (value or "").strip()
        if value and value != getattr(tenant, field_name):
            config = tenant_llm_find_enabled(tenant=tenant, name=value, model_type=model_type)
            value = f"{config.llm_name}@{config.factory.name}"
        setattr(tenant, field_name, value)
        changed.append(field_name)
    if changed:
        with transaction.atomic():
            tenant.save(update_fields=[*changed, "updated_at"])
            changes = audit_diff(before, {name: getattr(tenant, name) for name in changed})
            if changes:
                audit_record(
                    tenant=tenant,
                    kind="default_model.changed",
                    object=f"Tenant {tenant.name}",
                    changes=changes,
                )
    return tenant


def tenant_lock(*, tenant_id) -> None:
    """Lock the tenant's row until the transaction ends (call inside `transaction.atomic`).

    Writes that depend on a tenant's current configurations take this lock first (key
    validation requests and their endings, admin edits), so they apply one at a time and
    always lock in the same order: the tenant, then its KeyValidation and TenantLLM rows.
    """
    list(Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk", flat=True))


@transaction.atomic
def tenant_settings_set(
    *, tenant: Tenant, name: str | None, defaults: dict[str, str | None]
) -> Tenant:
    """RAGFlow's set_tenant_info: a new name (when not blank) and default models, all or none."""
    if name and name.strip() and name.strip() != tenant.name:
        tenant = tenant_rename(tenant=tenant, name=name.strip())
    return tenant_default_models_set(tenant=tenant, values=defaults)


def tenant_save(*, tenant: Tenant) -> Tenant:
    """Save a tenant edited as a whole (the admin's form)."""
    tenant.save()
    return tenant
