"""Resolving a tenant's model for a call, cached in process (RAGFlow's LLM4Tenant lookup).

`resolve_model(tenant_id, model_type, llm_name)` finds the tenant's enabled TenantLLM for
`name@factory`, a bare name, or the tenant's default of the type, else the configured system
default; otherwise it raises ModelNotAuthorized ("Model(NAME@FACTORY) not authorized").

Results are cached per process (tenants.process_cache): any change to a config, tenant,
catalog model or user clears every process's cache (this one at once, the others within a
second); entries also expire after CONFIG_CACHE_SECONDS. In steady state resolving therefore
makes no database query (a call under a quota still makes its reservation and settlement: see
usage.services.quotas). `peek_model` answers from the cache only, never doing I/O.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from providers.errors import ModelError
from providers.factories import split_full_name
from providers.models import LLM, LLMFactory
from providers.types import normalize_model_type

from .defaults import load_system_defaults
from .models import Status, Tenant, TenantLLM
from .process_cache import MISS, ProcessCache, invalidate

logger = logging.getLogger(__name__)

__all__ = ["ModelNotAuthorized", "ResolvedModel", "invalidate", "peek_model", "resolve_model"]


class ModelNotAuthorized(ModelError):
    """The tenant has no enabled configuration for the model, and no system default covers it."""


# Compared by identity: each resolution is the answer of one moment, and what is cached per
# resolution elsewhere (quota rules) must not be shared with a later, equal-looking one.
@dataclass(frozen=True, eq=False)
class ResolvedModel:
    tenant_id: str
    tenant_name: str
    config_id: int | None
    factory: str
    llm_name: str
    model_type: str
    api_key: str = field(repr=False)
    api_base: str
    max_tokens: int
    is_tools: bool
    input_price: Decimal | None
    output_price: Decimal | None
    resolved_at: float

    @property
    def full_name(self) -> str:
        return f"{self.llm_name}@{self.factory}"


_factory_names: ProcessCache[None, frozenset[str]] = ProcessCache(
    lambda _: frozenset(LLMFactory.objects.values_list("name", flat=True))
)
_resolutions: ProcessCache[tuple[str, str, str], ResolvedModel] = ProcessCache(
    lambda key: _resolve_from_db(key[0], key[1], key[2] or None)
)


def _factories() -> frozenset[str]:
    return _factory_names.get(None)


def split_name(name: str) -> tuple[str, str]:
    """("gpt-4o", "OpenAI") for "gpt-4o@OpenAI" when the tail is a known factory."""
    return split_full_name(name, _factories())


def resolve_model(tenant_id, model_type: str, llm_name: str | None = None) -> ResolvedModel:
    return _resolutions.get(_key(tenant_id, model_type, llm_name))


def peek_model(tenant_id, model_type: str, llm_name: str | None = None) -> ResolvedModel | None:
    """The cached resolution, or None when resolving would need I/O (resolve_model then)."""
    resolved = _resolutions.peek(_key(tenant_id, model_type, llm_name))
    return None if resolved is MISS else resolved


def _key(tenant_id, model_type: str, llm_name: str | None) -> tuple[str, str, str]:
    return (str(tenant_id), normalize_model_type(model_type).value, llm_name or "")


def _not_authorized(name: str, factory: str) -> ModelNotAuthorized:
    return ModelNotAuthorized(
        f"Model({name}@{factory or 'unknown'}) not authorized", provider=factory, model=name
    )


def _resolve_from_db(tenant_id: str, model_type: str, llm_name: str | None) -> ResolvedModel:
    tenant = Tenant.objects.filter(pk=tenant_id, status=Status.VALID).first()
    if tenant is None:
        raise ModelNotAuthorized(f"Tenant {tenant_id} not found", model=llm_name or "")
    name = llm_name or tenant.default_model(model_type)
    defaults = load_system_defaults()
    system_default = defaults.models.get(model_type)
    if not name and system_default is not None:
        name = system_default.full_name
    if not name:
        raise ModelNotAuthorized(
            f"Tenant {tenant.name} has no default {model_type} model", model=""
        )
    bare, factory = split_name(name)

    configs = TenantLLM.objects.select_related("factory").filter(
        tenant=tenant, llm_name=bare, status=Status.VALID
    )
    if factory:
        configs = configs.filter(factory__name=factory)
    candidates = list(configs)
    # A bare name offered by several factories: prefer one configured for this type.
    candidates.sort(key=lambda c: (c.model_type != model_type, c.factory.name))
    if candidates:
        config = candidates[0]
        factory_name, api_key, api_base = config.factory.name, config.api_key, config.api_base
        config_id, max_tokens = config.pk, config.max_tokens
    elif (
        system_default is not None
        and system_default.name == bare
        and (not factory or factory == system_default.factory)
    ):
        factory_name, api_key = system_default.factory, system_default.api_key
        api_base, config_id, max_tokens = system_default.base_url, None, 8192
    else:
        raise _not_authorized(bare, factory)

    catalog = LLM.objects.filter(factory__name=factory_name, llm_name=bare).first()
    return ResolvedModel(
        tenant_id=tenant.pk.hex,
        tenant_name=tenant.name,
        config_id=config_id,
        factory=factory_name,
        llm_name=bare,
        model_type=model_type,
        api_key=api_key,
        api_base=api_base,
        max_tokens=max_tokens,
        is_tools=bool(catalog and catalog.is_tools),
        input_price=catalog.input_price if catalog else None,
        output_price=catalog.output_price if catalog else None,
        resolved_at=time.monotonic(),
    )
