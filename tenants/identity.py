"""Who is calling, cached in process: API tokens, tenant memberships and tenants' models.

The gateway asks these on every request; in steady state they are answered from memory
(tenants.process_cache), with no query. A revoked or deleted token, a deactivated user, a
changed membership or model config invalidates every process's cache (this one at once, the
others within a second). `peek_*` never do I/O and answer MISS when the database is needed.

Tokens are cached by the SHA-256 of the whole raw token, the hash stored in the database: a
cache hit is a token that matched its stored hash, so the constant-time comparison was made
when it was loaded. Failed lookups are not cached (the brute-force throttle counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from providers.models import LLM

from .models import Status, TenantLLM
from .process_cache import MISS, ProcessCache
from .selectors import api_token_authenticate, membership_for, token_hash

__all__ = [
    "MISS",
    "TenantAccess",
    "TenantModel",
    "TokenIdentity",
    "peek_tenant_access",
    "peek_tenant_models",
    "peek_token_identity",
    "tenant_access",
    "tenant_models",
    "token_identity",
]


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    token_id: int
    user_id: int
    last_used_at: datetime | None  # as loaded; the caller decides when to touch it again
    # An application key's settings (issue 11). tenant_id (hex) is None for a personal token.
    tenant_id: str | None = None
    scopes: frozenset[str] = frozenset({"manage", "invoke"})
    allowed_models: tuple[str, ...] = ()  # "name@factory" or "*@factory"; empty: all
    expires_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    token_quota: int | None = None
    budget: Decimal | None = None
    quota_window: str = "monthly"


@dataclass(frozen=True, slots=True)
class TenantAccess:
    tenant_id: str  # hex, as ResolvedModel.tenant_id
    tenant_name: str
    role: str
    # The tenant's limits (issue 11): None is no limit.
    rpm: int | None = None
    tpm: int | None = None
    budget: Decimal | None = None
    quota_window: str = "monthly"
    unlimited: bool = False


@dataclass(frozen=True, slots=True)
class TenantModel:
    """One enabled model config of a tenant, with every type it can serve."""

    name: str
    factory: str
    model_type: str  # the type it is configured as
    types: frozenset[str]  # that type and the catalog's types of the model
    created_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.name}@{self.factory}"


def _load_token(raw: str) -> TokenIdentity | None:
    token = api_token_authenticate(raw=raw)
    if token is None:
        return None
    return TokenIdentity(
        token.pk,
        token.user_id,
        token.last_used_at,
        tenant_id=token.tenant_id.hex if token.tenant_id else None,
        scopes=frozenset(token.scopes or ()),
        allowed_models=tuple(token.allowed_models or ()),
        expires_at=token.expires_at,
        rpm=token.rpm,
        tpm=token.tpm,
        token_quota=token.token_quota,
        budget=token.budget,
        quota_window=token.quota_window,
    )


_tokens: ProcessCache[str, TokenIdentity | None] = ProcessCache(
    lambda digest: None, keep_none=False
)


def token_identity(raw: str) -> TokenIdentity | None:
    """The live token `raw` is (its user active), or None. May query the database."""
    return _tokens.get(token_hash(raw), lambda: _load_token(raw))


def peek_token_identity(raw: str) -> TokenIdentity | None:
    """The cached identity of `raw`, or MISS. No I/O."""
    return _tokens.peek(token_hash(raw))


def _load_access(key: tuple[int, str]) -> TenantAccess | None:
    user_id, requested = key
    membership = membership_for(user=user_id, tenant_id=requested or None)
    if membership is None:
        return None
    tenant = membership.tenant
    return TenantAccess(
        tenant.pk.hex,
        tenant.name,
        membership.role,
        rpm=tenant.rpm,
        tpm=tenant.tpm,
        budget=tenant.budget,
        quota_window=tenant.quota_window,
        unlimited=tenant.unlimited,
    )


_access: ProcessCache[tuple[int, str], TenantAccess | None] = ProcessCache(
    _load_access, keep_none=False
)


def tenant_access(*, user_id: int, requested: str = "") -> TenantAccess | None:
    """The tenant a user acts for (X-Tenant-ID, else the one it owns) and its role there;
    None when it is not a member. May query the database."""
    return _access.get((user_id, requested))


def peek_tenant_access(*, user_id: int, requested: str = "") -> TenantAccess | None:
    return _access.peek((user_id, requested))


def _load_models(tenant_id: str) -> tuple[TenantModel, ...]:
    configs = list(
        TenantLLM.objects.select_related("factory")
        .filter(tenant_id=tenant_id, status=Status.VALID)
        .order_by("factory__name", "llm_name")
    )
    catalog = {
        (factory_id, name): set(types or ())
        for factory_id, name, types in LLM.objects.filter(
            factory_id__in={c.factory_id for c in configs},
            llm_name__in={c.llm_name for c in configs},
        ).values_list("factory_id", "llm_name", "model_types")
    }
    return tuple(
        TenantModel(
            name=config.llm_name,
            factory=config.factory.name,
            model_type=config.model_type,
            types=frozenset(
                {config.model_type} | catalog.get((config.factory_id, config.llm_name), set())
            ),
            created_at=config.created_at,
        )
        for config in configs
    )


_models: ProcessCache[str, tuple[TenantModel, ...]] = ProcessCache(_load_models)


def tenant_models(*, tenant_id: str) -> tuple[TenantModel, ...]:
    """The tenant's enabled model configs, by factory and name. May query the database."""
    return _models.get(tenant_id)


def peek_tenant_models(*, tenant_id: str) -> tuple[TenantModel, ...]:
    return _models.peek(tenant_id)
