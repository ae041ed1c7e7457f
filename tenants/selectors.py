"""Reads for tenants. Every lookup of tenant-owned rows is scoped to one tenant."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from django.db.models import OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from providers.factories import SELF_HOSTED_FACTORIES
from providers.models import LLM, LLMFactory
from providers.models import Status as CatalogStatus
from providers.types import ModelType, types_from_tags
from ragllm.errors import InvalidInput

from .models import (
    APIToken,
    AuditEntry,
    KeyValidation,
    Role,
    Status,
    Tenant,
    TenantLLM,
    TenantMember,
)
from .resolution import split_name

TOKEN_PREFIX = "rgl_"


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_prefix(raw: str) -> str | None:
    """The lookup prefix of a token `rgl_<prefix>_<secret>`, or None if malformed."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = raw[len(TOKEN_PREFIX) :].partition("_")
    if len(prefix) != 8 or len(secret) < 20:
        return None
    return prefix


def tenant_owned_by(*, user) -> Tenant | None:
    return (
        Tenant.objects.filter(members__user=user, members__role=Role.OWNER)
        .order_by("created_at")
        .first()
    )


def membership_for(*, user, tenant_id: str | None) -> TenantMember | None:
    """The user's membership of `tenant_id`, or by default of the tenant it owns.

    A user who owns no tenant but belongs to exactly one uses that one by default.
    """
    memberships = TenantMember.objects.select_related("tenant").filter(
        user=user, tenant__status=Status.VALID
    )
    if tenant_id is not None:
        try:
            uuid.UUID(tenant_id)
        except ValueError:
            return None
        return memberships.filter(tenant_id=tenant_id).first()
    owned = memberships.filter(role=Role.OWNER).order_by("created_at").first()
    if owned is not None:
        return owned
    candidates = list(memberships[:2])
    return candidates[0] if len(candidates) == 1 else None


def api_token_authenticate(*, raw: str) -> APIToken | None:
    """The live token matching `raw`, compared in constant time; None otherwise."""
    prefix = token_prefix(raw)
    if prefix is None:
        return None
    token = (
        APIToken.objects.select_related("user")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    if not hmac.compare_digest(token.token_hash, token_hash(raw)):
        return None
    return token


def api_tokens_of(*, tenant: Tenant, user=None) -> QuerySet[APIToken]:
    """The tenant's application keys, newest first; only `user`'s own when given."""
    tokens = APIToken.objects.select_related("user").filter(tenant=tenant)
    if user is not None:
        tokens = tokens.filter(user=user)
    return tokens.order_by("-created_at", "-pk")


def api_token_of(*, tenant: Tenant, token_id: int, user=None) -> APIToken | None:
    """One application key of the tenant (of `user`'s own when given), or None."""
    return api_tokens_of(tenant=tenant, user=user).filter(pk=token_id).first()


def audit_entries(
    *, tenant: Tenant, since=None, until=None, kind: str = ""
) -> QuerySet[AuditEntry]:
    """The tenant's audit log, newest first: `kind` is a whole kind ("key.revoked") or its
    subject ("key"); `since` inclusive, `until` exclusive."""
    entries = AuditEntry.objects.filter(tenant=tenant)
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    if kind:
        entries = (
            entries.filter(kind=kind)
            if "." in kind
            else entries.filter(kind__startswith=f"{kind}.")
        )
    return entries.order_by("-created_at", "-pk")


def factory_get(*, name: str) -> LLMFactory | None:
    """A valid catalog factory by name, or None."""
    return LLMFactory.objects.filter(name=name, status=CatalogStatus.VALID).first()


@dataclass(frozen=True)
class FactoryTypes:
    factory: LLMFactory
    model_types: list[str]  # sorted


def factories_with_types() -> list[FactoryTypes]:
    """Valid factories by rank, each with the model types it serves (tags and catalog models)."""
    factories = list(
        LLMFactory.objects.filter(status=CatalogStatus.VALID).order_by("-rank", "name")
    )
    types: dict[int, set[str]] = {
        f.pk: {t.value for t in types_from_tags(f.tags)} for f in factories
    }
    for factory_id, model_types in LLM.objects.filter(status=CatalogStatus.VALID).values_list(
        "factory_id", "model_types"
    ):
        if factory_id in types:
            types[factory_id].update(model_types or [])
    return [FactoryTypes(factory=f, model_types=sorted(types[f.pk])) for f in factories]


@dataclass(frozen=True)
class FactoryConfigs:
    factory: LLMFactory
    configs: list[TenantLLM]


def tenant_llm_by_factory(*, tenant: Tenant, with_tools: bool = False) -> list[FactoryConfigs]:
    """The tenant's configurations grouped by factory, by factory and model name. One query.

    With `with_tools`, each config carries `tools`: its own `is_tools`, else its catalog
    model's, else False.
    """
    configs = (
        TenantLLM.objects.filter(tenant=tenant)
        .select_related("factory")
        .order_by("factory__name", "llm_name")
    )
    if with_tools:
        catalog = LLM.objects.filter(
            factory_id=OuterRef("factory_id"), llm_name=OuterRef("llm_name")
        )
        configs = configs.annotate(
            tools=Coalesce("is_tools", Subquery(catalog.values("is_tools")[:1]), Value(False))
        )
    groups: dict[str, FactoryConfigs] = {}
    for config in configs:
        group = groups.setdefault(config.factory.name, FactoryConfigs(config.factory, []))
        group.configs.append(config)
    return list(groups.values())


@dataclass(frozen=True)
class CatalogModel:
    """A model of the catalog, or one of the tenant's own, as GET /llm/list shows it."""

    factory: str
    llm_name: str
    model_types: list[str]
    max_tokens: int
    tags: str
    is_tools: bool
    status: str
    available: bool
    id: int | None  # the tenant's config of this model, if it has one


@dataclass(frozen=True)
class _Config:
    id: int
    model_type: str
    max_tokens: int
    is_tools: bool | None
    enabled: bool
    keyed: bool


def tenant_catalog(*, tenant: Tenant, model_type: str | None) -> dict[str, list[CatalogModel]]:
    """The catalog by factory, each model marked `available` to this tenant. Two queries.

    Available means the tenant has not disabled the model, and holds an enabled config with a
    key for its factory or the factory is self-hosted (no key needed). A model the tenant
    disabled is listed with status "0". The tenant's own models that the catalog does not list
    come last in their factory.
    """
    configs: dict[tuple[str, str], _Config] = {}
    for pk, factory_name, llm_name, config_type, max_tokens, is_tools, status, api_key in (
        TenantLLM.objects.filter(tenant=tenant)
        .order_by("factory__name", "llm_name")
        .values_list(
            "pk",
            "factory__name",
            "llm_name",
            "model_type",
            "max_tokens",
            "is_tools",
            "status",
            "api_key",
        )
    ):
        configs[(factory_name, llm_name)] = _Config(
            pk, config_type, max_tokens, is_tools, status == Status.VALID, bool(api_key)
        )
    keyed = {factory for (factory, _), c in configs.items() if c.enabled and c.keyed}

    def available(factory_name: str, config: _Config | None) -> bool:
        if config is not None and not config.enabled:
            return False
        return factory_name in keyed or factory_name in SELF_HOSTED_FACTORIES

    result: dict[str, list[CatalogModel]] = {}
    catalog = LLM.objects.filter(status=CatalogStatus.VALID, factory__status=CatalogStatus.VALID)
    for factory_name, llm_name, types, max_tokens, tags, is_tools in catalog.values_list(
        "factory__name", "llm_name", "model_types", "max_tokens", "tags", "is_tools"
    ).order_by("-factory__rank", "factory__name", "pk"):
        config = configs.pop((factory_name, llm_name), None)
        if model_type and model_type not in (types or []):
            continue
        result.setdefault(factory_name, []).append(
            CatalogModel(
                factory=factory_name,
                llm_name=llm_name,
                model_types=types or [],
                max_tokens=max_tokens,
                tags=tags,
                is_tools=is_tools if config is None or config.is_tools is None else config.is_tools,
                status=Status.INVALID
                if config is not None and not config.enabled
                else Status.VALID,
                available=available(factory_name, config),
                id=config.id if config is not None else None,
            )
        )
    for (factory_name, llm_name), config in configs.items():  # the tenant's own models
        if model_type and config.model_type != model_type:
            continue
        result.setdefault(factory_name, []).append(
            CatalogModel(
                factory=factory_name,
                llm_name=llm_name,
                model_types=[config.model_type],
                max_tokens=config.max_tokens,
                tags="",
                is_tools=bool(config.is_tools),
                status=Status.VALID if config.enabled else Status.INVALID,
                available=available(factory_name, config)
                and (config.keyed or factory_name in SELF_HOSTED_FACTORIES),
                id=config.id,
            )
        )
    return result


def key_validation_for(*, tenant: Tenant, validation_id) -> KeyValidation | None:
    try:
        uuid.UUID(str(validation_id))
    except ValueError:
        return None
    return KeyValidation.objects.filter(tenant=tenant, pk=validation_id).first()


def tenant_find(*, ref: str) -> Tenant | None:
    """A tenant by id, by its owner's email, or by its exact name (if unique)."""
    try:
        return Tenant.objects.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        pass
    owned = Tenant.objects.filter(
        members__user__email__iexact=ref, members__role=Role.OWNER
    ).first()
    if owned is not None:
        return owned
    named = list(Tenant.objects.filter(name=ref)[:2])
    return named[0] if len(named) == 1 else None


def tenant_llm_find_enabled(*, tenant: Tenant, name: str, model_type: str) -> TenantLLM:
    """The tenant's enabled config for `name` ("model@factory" or bare) usable as `model_type`."""
    llm_name, factory_name = split_name(name)
    configs = TenantLLM.objects.select_related("factory").filter(
        tenant=tenant, llm_name=llm_name, status=Status.VALID
    )
    if factory_name:
        configs = configs.filter(factory__name=factory_name)
    matches = [c for c in configs if _serves(c, model_type)]
    if not matches:
        raise InvalidInput(f"Model({name}) is not an enabled {model_type} model of this tenant.")
    if len(matches) > 1:
        raise InvalidInput(f"Model name {llm_name} is ambiguous; write it as name@factory.")
    return matches[0]


def tenant_default_model_choices(*, tenant: Tenant) -> dict[str, list[str]]:
    """The names ("model@factory") each model type's default may take: the tenant's enabled
    configurations serving that type (as tenant_llm_find_enabled accepts them). Two queries."""
    configs = list(
        TenantLLM.objects.select_related("factory")
        .filter(tenant=tenant, status=Status.VALID)
        .order_by("factory__name", "llm_name")
    )
    catalog = {
        (factory_id, llm_name): {model_type, *(model_types or [])}
        for factory_id, llm_name, model_type, model_types in LLM.objects.filter(
            factory_id__in={c.factory_id for c in configs},
            llm_name__in={c.llm_name for c in configs},
        ).values_list("factory_id", "llm_name", "model_type", "model_types")
    }
    choices: dict[str, list[str]] = {model_type: [] for model_type in Tenant.DEFAULT_FIELDS}
    for config in configs:
        served = {config.model_type} | catalog.get((config.factory_id, config.llm_name), set())
        for model_type in served & set(choices):
            choices[model_type].append(f"{config.llm_name}@{config.factory.name}")
    return choices


def tenant_llm_defaults_among(*, tenant: Tenant, configs: list[TenantLLM]) -> list[tuple[str, str]]:
    """(full name, model type) of each of `configs` that is one of the tenant's default models
    (such a configuration may be neither deleted nor disabled)."""
    names = {f"{c.llm_name}@{c.factory.name}" for c in configs}
    return [
        (getattr(tenant, field_name), model_type)
        for model_type, field_name in Tenant.DEFAULT_FIELDS.items()
        if getattr(tenant, field_name) in names
    ]


def _serves(config: TenantLLM, model_type: str) -> bool:
    if config.model_type == model_type:
        return True
    catalog = LLM.objects.filter(factory_id=config.factory_id, llm_name=config.llm_name).first()
    return catalog is not None and catalog.serves(model_type)


def tenant_llm_get(*, config_id: int) -> TenantLLM | None:
    return TenantLLM.objects.select_related("factory").filter(pk=config_id).first()


def tenant_llm_enabled(*, tenant: Tenant | None = None) -> list[TenantLLM]:
    """Enabled configurations, of one tenant or of all, by tenant, factory and model name."""
    configs = TenantLLM.objects.select_related("factory", "tenant").filter(status=Status.VALID)
    if tenant is not None:
        configs = configs.filter(tenant=tenant)
    return list(configs.order_by("tenant__name", "factory__name", "llm_name"))


def tenant_llm_enabled_ids() -> list[int]:
    return list(TenantLLM.objects.filter(status=Status.VALID).values_list("pk", flat=True))


def tenant_llm_count(*, tenant: Tenant, factory: LLMFactory | None = None) -> int:
    configs = TenantLLM.objects.filter(tenant=tenant)
    return (configs if factory is None else configs.filter(factory=factory)).count()


def key_validation_probe_models(*, factory: LLMFactory) -> list[LLM]:
    """RAGFlow's walk: catalog order, at most one model per type among embedding/chat/rerank."""
    chosen: list[LLM] = []
    seen: set[str] = set()
    probe_types = (ModelType.EMBEDDING, ModelType.CHAT, ModelType.RERANK)
    for llm in LLM.objects.filter(factory=factory, status=CatalogStatus.VALID).order_by("pk"):
        if llm.model_type in probe_types and llm.model_type not in seen:
            seen.add(llm.model_type)
            chosen.append(llm)
    return chosen


def key_validation_wait(*, validation: KeyValidation, timeout: float) -> KeyValidation:
    """Poll until the task has finished or `timeout` seconds passed; the latest row either way."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        current = KeyValidation.objects.get(pk=validation.pk)
        if current.finished or time.monotonic() >= deadline:
            return current
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)
