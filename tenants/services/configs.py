"""A tenant's model configurations (TenantLLM): save, enable, disable, delete."""

from __future__ import annotations

from django.db import transaction
from django.db.models import BigIntegerField, Case, F, Value, When
from django.utils import timezone

from providers.models import LLMFactory
from ragllm.errors import Conflict, NotFound

from ..models import Status, Tenant, TenantLLM
from ..resolution import invalidate as invalidate_resolutions


def tenant_llm_delete(*, tenant: Tenant, factory: LLMFactory, llm_name: str) -> None:
    config = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
    if config is None:
        raise NotFound(f"Model({llm_name}@{factory.name}) is not configured for this tenant.")
    _refuse_if_default(tenant, [config])
    config.delete()


def tenant_llm_set_status(*, tenant: Tenant, factory: LLMFactory, llm_name: str, enabled: bool):
    config = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
    if config is None:
        raise NotFound(f"Model({llm_name}@{factory.name}) is not configured for this tenant.")
    if not enabled:
        _refuse_if_default(tenant, [config])
    TenantLLM.objects.filter(pk=config.pk).update(
        status=Status.VALID if enabled else Status.INVALID, updated_at=timezone.now()
    )
    invalidate_resolutions()


@transaction.atomic
def tenant_factory_delete(*, tenant: Tenant, factory: LLMFactory) -> int:
    configs = list(TenantLLM.objects.filter(tenant=tenant, factory=factory))
    if not configs:
        raise NotFound(f"Factory {factory.name} is not configured for this tenant.")
    _refuse_if_default(tenant, configs)
    deleted, _ = TenantLLM.objects.filter(pk__in=[c.pk for c in configs]).delete()
    return deleted


def _refuse_if_default(tenant: Tenant, configs: list[TenantLLM]) -> None:
    names = {f"{c.llm_name}@{c.factory.name}" for c in configs}
    for model_type, field_name in Tenant.DEFAULT_FIELDS.items():
        if getattr(tenant, field_name) in names:
            raise Conflict(
                f"{getattr(tenant, field_name)} is the tenant's default {model_type} model; "
                "choose another default first."
            )


def tenant_llm_save(*, config: TenantLLM, keep_stored_key: bool = False) -> TenantLLM:
    """Save a configuration edited as a whole (the admin's forms).

    With keep_stored_key, an existing row keeps the key it has: the admin never sends the stored
    key to the browser, so an empty key field means "unchanged".
    """
    if keep_stored_key and config.pk is not None:
        config.save(
            update_fields=[
                f.name for f in TenantLLM._meta.concrete_fields if f.name not in {"id", "api_key"}
            ]
        )
    else:
        config.save()
    return config


def tenant_llm_add_used_tokens(*, tokens_by_config: dict[int, int]) -> int:
    """Add tokens to configurations' lifetime counters: one UPDATE for the whole batch.

    `used_tokens = used_tokens + n` is computed by the database, never read back into Python.
    The subquery locks the rows in primary-key order, so two writers updating overlapping
    configurations cannot deadlock. Returns the number of rows changed (deleted ones are not).
    """
    if not tokens_by_config:
        return 0
    ids = sorted(tokens_by_config)
    locked = TenantLLM.objects.filter(pk__in=ids).order_by("pk").select_for_update()
    increment = Case(
        *[When(pk=pk, then=Value(tokens_by_config[pk])) for pk in ids],
        output_field=BigIntegerField(),
    )
    return TenantLLM.objects.filter(pk__in=locked.values("pk")[: len(ids)]).update(
        used_tokens=F("used_tokens") + increment
    )
