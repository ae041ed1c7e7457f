"""Reads for quotas: the rules a call is checked against, and a tenant's quota status."""

from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q

from tenants.models import Role, Tenant, TenantLLM
from tenants.resolution import ResolvedModel

from ..models import QuotaCounter
from ..quotas import WARN_AT, QuotaRule, config_rule, tenant_rule, window_start


@dataclass(frozen=True)
class QuotaEntry:
    """One quota in its current window; `used` is its counter (settled plus reserved tokens)."""

    quota: int | None
    window: str
    window_start: datetime | None = None
    used: int | None = None
    remaining: int | None = None
    percent: float | None = None
    warning: bool = False


@dataclass(frozen=True)
class ModelQuota:
    config_id: int
    model: str  # llm_name@factory
    model_type: str
    used_tokens: int  # lifetime, from TenantLLM.used_tokens
    quota: QuotaEntry


@dataclass(frozen=True)
class QuotaStatus:
    unlimited: bool
    tenant: QuotaEntry
    models: list[ModelQuota] = field(default_factory=list)


def tenant_is_unlimited(*, tenant: Tenant) -> bool:
    """Flagged unlimited, or owned by a superuser: the tenant bypasses every quota."""
    return (
        tenant.unlimited or tenant.members.filter(role=Role.OWNER, user__is_superuser=True).exists()
    )


# One entry per live resolution: a changed tenant, config or user makes a new resolution
# (tenants.resolution), so its rules are read again; a dropped resolution drops its entry.
_rules_of: weakref.WeakKeyDictionary[ResolvedModel, tuple[QuotaRule, ...]] = (
    weakref.WeakKeyDictionary()
)


def quota_rules_for(*, resolved: ResolvedModel) -> tuple[QuotaRule, ...]:
    """The rules a call to `resolved` is checked against: the tenant's, then its config's.

    Read once per resolution (at most three queries), then served from memory: a steady-state
    call without a quota reads nothing here.
    """
    rules = _rules_of.get(resolved)
    if rules is None:
        rules = _read_rules(resolved)
        _rules_of[resolved] = rules
    return rules


def quota_rules_known(*, resolved: ResolvedModel) -> tuple[QuotaRule, ...] | None:
    """The rules of `resolved` if they were read already, else None (no I/O: async callers
    read them with quota_rules_for in a worker thread on None)."""
    return _rules_of.get(resolved)


def _read_rules(resolved: ResolvedModel) -> tuple[QuotaRule, ...]:
    tenant = Tenant.objects.filter(pk=resolved.tenant_id).first()
    if tenant is None or tenant_is_unlimited(tenant=tenant):
        return ()
    rules = [tenant_rule(tenant)]
    if resolved.config_id is not None:
        config = TenantLLM.objects.select_related("factory").filter(pk=resolved.config_id).first()
        if config is not None:
            rules.append(config_rule(config))
    return tuple(rule for rule in rules if rule is not None)


def _entry(rule: QuotaRule | None, window: str, used: dict, starts: dict, *, enforced: bool):
    if rule is None:
        return QuotaEntry(quota=None, window=window)
    start = starts[rule.window]
    spent = used.get((rule.scope, rule.scope_id, start), 0)
    quota = rule.quota
    return QuotaEntry(
        quota=quota,
        window=rule.window,
        window_start=start,
        used=spent,
        remaining=max(quota - spent, 0),
        percent=round(spent * 100 / quota, 1) if quota else 100.0,
        # The same threshold as the warning logged when a call is settled (usage.quotas).
        warning=enforced and spent >= int(quota * WARN_AT),
    )


def quota_status(*, tenant: Tenant, now: datetime | None = None) -> QuotaStatus:
    """The tenant's quota and each of its model configurations with a quota. Three queries.

    `used` is the quota counter of the current window, the number calls are checked against.
    An unlimited tenant (flagged, or owned by a superuser) bypasses quotas: its counters do
    not move and nothing warns.
    """
    configs = list(
        TenantLLM.objects.filter(tenant=tenant, token_quota__isnull=False)
        .select_related("factory")
        .order_by("factory__name", "llm_name")
    )
    unlimited = tenant_is_unlimited(tenant=tenant)
    rules: list[QuotaRule] = [r for r in [tenant_rule(tenant)] if r is not None]
    config_rules = [(config, config_rule(config)) for config in configs]
    rules += [rule for _, rule in config_rules if rule is not None]
    starts = {w: window_start(w, now) for w in {rule.window for rule in rules}}

    used: dict[tuple[str, str, datetime], int] = {}
    if rules:
        # One condition per scope and window (at most six), not one per configuration.
        ids: dict[tuple[str, str], list[str]] = defaultdict(list)
        for rule in rules:
            ids[(rule.scope, rule.window)].append(rule.scope_id)
        wanted = Q()
        for (scope, window), scope_ids in ids.items():
            wanted |= Q(scope=scope, window_start=starts[window], scope_id__in=scope_ids)
        for scope, scope_id, start, spent in QuotaCounter.objects.filter(wanted).values_list(
            "scope", "scope_id", "window_start", "used"
        ):
            used[(scope, scope_id, start)] = spent

    enforced = not unlimited
    return QuotaStatus(
        unlimited=unlimited,
        tenant=_entry(tenant_rule(tenant), tenant.quota_window, used, starts, enforced=enforced),
        models=[
            ModelQuota(
                config_id=config.pk,
                model=f"{config.llm_name}@{config.factory.name}",
                model_type=config.model_type,
                used_tokens=config.used_tokens,
                quota=_entry(rule, config.quota_window, used, starts, enforced=enforced),
            )
            for config, rule in config_rules
        ],
    )
