"""Reads for rate limits: a tenant's own RPM and TPM (cached in process, invalidated with the
tenant as model resolutions are), and the current use of a set of limits."""

from __future__ import annotations

from tenants.models import Tenant
from tenants.process_cache import MISS, ProcessCache

from ..ratelimits import Limits, Verdict, limits_for, peek, request_limits


def _load(tenant_id: str) -> Limits | None:
    row = Tenant.objects.filter(pk=tenant_id).values("rpm", "tpm").first()
    if row is None:
        return None
    return limits_for(tenant_id=tenant_id, tenant_rpm=row["rpm"], tenant_tpm=row["tpm"])


_tenant_limits: ProcessCache[str, Limits | None] = ProcessCache(_load)


def tenant_rate_limits(*, tenant_id: str) -> Limits | None:
    """The tenant's own limits (None: it has none). May query the database."""
    return _tenant_limits.get(tenant_id)


def peek_tenant_rate_limits(*, tenant_id: str) -> Limits | None:
    """The same from the cache without I/O, or MISS."""
    return _tenant_limits.peek(tenant_id)


def rate_limit_use(*, limits: Limits) -> Verdict:
    """How much of each limit is used now, charging nothing (for display)."""
    return peek(limits)


__all__ = [
    "MISS",
    "call_limits",
    "peek_call_limits",
    "peek_tenant_rate_limits",
    "rate_limit_use",
    "tenant_rate_limits",
]


def call_limits(*, tenant_id: str) -> Limits | None:
    """The limits a call is held to: the gateway request's (its tenant's and key's), else the
    tenant's own. May query the database."""
    current = request_limits.get()
    if current is not None:
        return current.limits
    return _tenant_limits.get(tenant_id)


def peek_call_limits(*, tenant_id: str) -> Limits | None:
    """call_limits without I/O, or MISS."""
    current = request_limits.get()
    if current is not None:
        return current.limits
    return _tenant_limits.peek(tenant_id)
