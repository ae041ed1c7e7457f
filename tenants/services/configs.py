"""A tenant's model configurations (TenantLLM): enable, disable, delete."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from providers.models import LLM, LLMFactory
from ragllm.api import ApiError, Conflict, NotFound

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


def tenant_llm_find_enabled(*, tenant: Tenant, name: str, model_type: str) -> TenantLLM:
    """The tenant's enabled config for `name` ("model@factory" or bare) usable as `model_type`."""
    from ..resolution import split_name

    llm_name, factory_name = split_name(name)
    configs = TenantLLM.objects.select_related("factory").filter(
        tenant=tenant, llm_name=llm_name, status=Status.VALID
    )
    if factory_name:
        configs = configs.filter(factory__name=factory_name)
    matches = [c for c in configs if _serves(c, model_type)]
    if not matches:
        raise ApiError(
            f"Model({name}) is not an enabled {model_type} model of this tenant.", http_status=400
        )
    if len(matches) > 1:
        raise ApiError(
            f"Model name {llm_name} is ambiguous; write it as name@factory.", http_status=400
        )
    return matches[0]


def _serves(config: TenantLLM, model_type: str) -> bool:
    if config.model_type == model_type:
        return True
    catalog = LLM.objects.filter(factory_id=config.factory_id, llm_name=config.llm_name).first()
    return catalog is not None and catalog.serves(model_type)
