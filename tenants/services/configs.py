"""A tenant's model configurations (TenantLLM): edit, enable, disable, delete, count usage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, F, Value, When
from django.utils import timezone

from providers.models import LLMFactory
from ragllm.errors import Conflict, NotFound

from ..models import (
    ACTIVE_VALIDATION_STATES,
    KeyValidation,
    Status,
    Tenant,
    TenantLLM,
    ValidationKind,
    ValidationState,
)
from ..resolution import invalidate as invalidate_resolutions
from ..selectors import tenant_llm_defaults_among
from .audit import audit_diff, audit_record, masked_key
from .credential_input import base_url_changes, credential_input_from_text
from .key_requests import tenant_llm_check_model, tenant_llm_request_model
from .tenants import tenant_lock


@transaction.atomic
def tenant_llm_delete(*, tenant: Tenant, factory: LLMFactory, llm_name: str) -> None:
    tenant_lock(tenant_id=tenant.pk)
    config = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
    if config is None:
        raise NotFound(f"Model({llm_name}@{factory.name}) is not configured for this tenant.")
    _delete_configs([config])


def tenant_llm_set_status(*, tenant: Tenant, factory: LLMFactory, llm_name: str, enabled: bool):
    config = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
    if config is None:
        raise NotFound(f"Model({llm_name}@{factory.name}) is not configured for this tenant.")
    if not enabled:
        _refuse_if_default(tenant, [config])
    status = Status.VALID if enabled else Status.INVALID
    with transaction.atomic():
        changed = (
            TenantLLM.objects.filter(pk=config.pk)
            .exclude(status=status)
            .update(status=status, updated_at=timezone.now())
        )
        if changed:
            audit_record(
                tenant=tenant,
                kind="model_config.enabled" if enabled else "model_config.disabled",
                object=_label(config),
                changes={"status": {"from": config.status, "to": status}},
            )
    invalidate_resolutions()


@transaction.atomic
def tenant_factory_delete(*, tenant: Tenant, factory: LLMFactory) -> int:
    tenant_lock(tenant_id=tenant.pk)  # no validation adds a config of the factory meanwhile
    configs = list(TenantLLM.objects.filter(tenant=tenant, factory=factory))
    if not configs:
        raise NotFound(f"Factory {factory.name} is not configured for this tenant.")
    return _delete_configs(configs, whole_factory=True)


def _label(config: TenantLLM) -> str:
    return f"TenantLLM {config.llm_name}@{config.factory.name}"


def tenant_llm_delete_configs(*, configs: Iterable[TenantLLM]) -> int:
    """Delete configurations of any tenants at once (the admin's "delete selected"), under the
    rules of delete_llm: a tenant's default model is refused, and then nothing is deleted."""
    return _delete_configs(list(configs))


@transaction.atomic
def _delete_configs(configs: list[TenantLLM], *, whole_factory: bool = False) -> int:
    """Delete configurations, all or none, refusing any that is its tenant's default model.

    Each tenant is locked first (in a fixed order) and its defaults read again under the lock,
    so a default set meanwhile is seen. Validations still waiting to change a deleted
    configuration are superseded: the deletion is the newer request, so none of them brings it
    back.
    """
    by_tenant: dict[Any, list[TenantLLM]] = {}
    for config in configs:
        by_tenant.setdefault(config.tenant_id, []).append(config)
    for tenant_id in sorted(by_tenant, key=str):
        tenant_lock(tenant_id=tenant_id)
        _refuse_if_default(Tenant.objects.get(pk=tenant_id), by_tenant[tenant_id])
    ids = [config.pk for config in configs]
    _supersede_validations(configs=configs, whole_factory=whole_factory)
    deleted, _ = TenantLLM.objects.filter(pk__in=ids).delete()
    if whole_factory:
        factory = configs[0].factory
        audit_record(
            tenant=configs[0].tenant_id,
            kind="model_config.deleted",
            object=f"Factory {factory.name}",
            changes={"models": sorted(c.llm_name for c in configs)},
        )
    else:
        for config in configs:
            audit_record(
                tenant=config.tenant_id,
                kind="model_config.deleted",
                object=_label(config),
                changes={"api_key": masked_key(config.api_key), "model_type": config.model_type},
            )
    transaction.on_commit(invalidate_resolutions)
    return deleted


def _supersede_validations(*, configs: list[TenantLLM], whole_factory: bool = False) -> None:
    """Deleting configurations is newer than the validations still waiting to change them:
    those of the same model end superseded, and a factory's set_api_key goes on without them;
    with `whole_factory` (delete_factory) every request for the factory ends superseded.
    Call with the tenants locked, in the deleting transaction."""
    deleted = {
        "state": ValidationState.SUPERSEDED,
        "api_key": "",
        "finished_at": timezone.now(),
        "message": "The model configuration was deleted before this request was applied; "
        "nothing was saved.",
    }
    for config in configs:
        active = KeyValidation.objects.filter(
            tenant_id=config.tenant_id,
            factory_id=config.factory_id,
            verify_only=False,
            state__in=ACTIVE_VALIDATION_STATES,
        )
        if whole_factory:
            active.update(**deleted)
            continue
        active.filter(kind=ValidationKind.ADD_LLM, llm_name=config.llm_name).update(**deleted)
        for partial in active.filter(kind=ValidationKind.SET_API_KEY):
            if config.llm_name not in partial.superseded_models:
                partial.superseded_models = [*partial.superseded_models, config.llm_name]
                partial.save(update_fields=["superseded_models"])


def _refuse_if_default(tenant: Tenant, configs: list[TenantLLM]) -> None:
    defaults = tenant_llm_defaults_among(tenant=tenant, configs=configs)
    if defaults:
        name, model_type = defaults[0]
        raise Conflict(
            f"{name} is the tenant's default {model_type} model; choose another default first."
        )


def _credential_change(
    *, config: TenantLLM, api_key: str, api_base: str, model_type: str, status: str
) -> dict[str, Any] | None:
    """The add_llm request an edit amounts to if its credentials change (a key given, or
    another base URL), else None; refuses disabling a default model."""
    stored = TenantLLM.objects.select_related("factory", "tenant").get(pk=config.pk)
    if status != Status.VALID and stored.status == Status.VALID:
        _refuse_if_default(stored.tenant, [stored])
    key, fields = credential_input_from_text(factory=stored.factory.name, text=api_key)
    if key is None and not fields and not base_url_changes(stored=stored.api_base, given=api_base):
        return None
    return {
        "tenant": stored.tenant,
        "factory": stored.factory,
        "llm_name": stored.llm_name,
        "model_type": model_type,
        "api_base": api_base,
        "api_key": key,
        "fields": fields,
    }


def tenant_llm_check_edit(
    *, config: TenantLLM, api_key: str, api_base: str, model_type: str, status: str
) -> bool:
    """The checks of an edit made as a whole (the admin's forms), writing nothing.

    Returns whether the credentials change: those are validated before they replace the
    stored ones, exactly as add_llm does (and checked as add_llm checks them).
    """
    request = _credential_change(
        config=config, api_key=api_key, api_base=api_base, model_type=model_type, status=status
    )
    if request is not None:
        tenant_llm_check_model(**request)
    return request is not None


@transaction.atomic
def tenant_llm_edit(
    *,
    config: TenantLLM,
    api_key: str,
    api_base: str,
    model_type: str,
    max_tokens: int,
    token_quota: int | None,
    quota_window: str,
    status: str,
    is_tools: bool | None,
    user: AbstractBaseUser | None = None,
) -> KeyValidation | None:
    """Edit a configuration as a whole (the admin's change form and the tenant page's inline).

    Limits, quota, status and `is_tools` (add_llm's flag; None: the catalog's) are saved at
    once. New credentials (a key, or another base URL, which needs the key again) are not:
    they go through add_llm's checks and validation, and until they are proven the
    configuration shows "validating" and keeps its stored ones.
    An empty `api_key` means "unchanged" (the stored key is never sent to the browser).
    Returns the validation requested, if any.
    """
    tenant_lock(tenant_id=config.tenant_id)
    request = _credential_change(
        config=config, api_key=api_key, api_base=api_base, model_type=model_type, status=status
    )
    if request is not None:
        tenant_llm_check_model(**request)  # before anything is written
    _audit_edit(
        config,
        model_type=model_type,
        max_tokens=max_tokens,
        token_quota=token_quota,
        quota_window=quota_window,
        status=status,
    )
    TenantLLM.objects.filter(pk=config.pk).update(
        model_type=model_type,
        max_tokens=max_tokens,
        token_quota=token_quota,
        quota_window=quota_window,
        status=status,
        is_tools=is_tools,
        updated_at=timezone.now(),
    )
    transaction.on_commit(invalidate_resolutions)
    if request is None:
        return None
    return tenant_llm_request_model(**request, max_tokens=max_tokens, is_tools=is_tools, user=user)


def _audit_edit(config: TenantLLM, **new) -> None:
    stored = TenantLLM.objects.select_related("factory").get(pk=config.pk)
    changes = audit_diff({name: getattr(stored, name) for name in new}, new)
    groups = {
        "quota.changed": ("token_quota", "quota_window"),
        "model_config.changed": ("model_type", "max_tokens"),
        "model_config.enabled" if new["status"] == Status.VALID else "model_config.disabled": (
            "status",
        ),
    }
    for kind, names in groups.items():
        part = {name: changes[name] for name in names if name in changes}
        if part:
            audit_record(tenant=stored.tenant_id, kind=kind, object=_label(stored), changes=part)


def tenant_llm_add_used_tokens(*, tokens_by_config: dict[int, int]) -> int:
    """Add tokens to configurations' lifetime counters: one UPDATE for the whole batch.

    `used_tokens = used_tokens + n` is computed by the database, never read back into Python.
    The subquery locks the rows in primary-key order, so two writers updating overlapping
    configurations cannot deadlock. Returns the number of rows changed (deleted ones are not).
    """
    if not tokens_by_config:
        return 0
    ids = sorted(tokens_by_config)
    if connection.vendor == "postgresql":
        # Arrays rather than a CASE of one branch per row (quadratic over a large batch).
        table = connection.ops.quote_name(TenantLLM._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS c SET used_tokens = c.used_tokens + v.n"  # noqa: S608
                " FROM (SELECT l.id, d.n FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, n)"
                f" JOIN {table} AS l ON l.id = d.id ORDER BY l.id FOR UPDATE OF l) AS v"
                " WHERE c.id = v.id",
                [ids, [tokens_by_config[pk] for pk in ids]],
            )
            return cursor.rowcount
    locked = TenantLLM.objects.filter(pk__in=ids).order_by("pk").select_for_update()
    increment = Case(
        *[When(pk=pk, then=Value(tokens_by_config[pk])) for pk in ids],
        output_field=BigIntegerField(),
    )
    return TenantLLM.objects.filter(pk__in=locked.values("pk")[: len(ids)]).update(
        used_tokens=F("used_tokens") + increment
    )
