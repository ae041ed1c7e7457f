"""Reads for quotas: the rules a call is checked against, and a tenant's quota status."""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.db.models import Q, Sum

from tenants.models import APIToken, Role, Tenant, TenantLLM
from tenants.resolution import ResolvedModel

from ..models import QuotaCounter, QuotaScope, UsageEvent, UsageHourly
from ..quotas import (
    COST,
    WARN_AT,
    KeyLimits,
    QuotaRule,
    config_rule,
    from_units,
    key_rules,
    tenant_budget_rule,
    tenant_rule,
    to_units,
    window_start,
)


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
class BudgetEntry:
    """One money budget in its current window (US dollars; `spent` is its counter)."""

    budget: Decimal | None
    window: str
    window_start: datetime | None = None
    spent: Decimal | None = None
    remaining: Decimal | None = None
    percent: float | None = None
    warning: bool = False


@dataclass(frozen=True)
class KeyQuota:
    """An application key's own token quota and budget (a key has either or both)."""

    token_id: int
    name: str
    prefix: str
    quota: QuotaEntry
    budget: BudgetEntry


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
    budget: BudgetEntry
    models: list[ModelQuota] = field(default_factory=list)
    keys: list[KeyQuota] = field(default_factory=list)


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
    rules = [tenant_rule(tenant), tenant_budget_rule(tenant)]
    if resolved.config_id is not None:
        config = TenantLLM.objects.select_related("factory").filter(pk=resolved.config_id).first()
        if config is not None:
            rules.append(config_rule(config))
    return tuple(rule for rule in rules if rule is not None)


def _entry(rule: QuotaRule | None, window: str, used: dict, now, *, enforced: bool):
    if rule is None:
        return QuotaEntry(quota=None, window=window)
    spent = used[(rule.scope, rule.scope_id, rule.quota)]
    quota = rule.quota
    return QuotaEntry(
        quota=quota,
        window=rule.window,
        window_start=window_start(rule.window, now),
        used=spent,
        remaining=max(quota - spent, 0),
        percent=round(spent * 100 / quota, 1) if quota else 100.0,
        # The same threshold as the 80 % alert fired when a call is settled.
        warning=enforced and spent >= int(quota * WARN_AT),
    )


def _budget_entry(rule: QuotaRule | None, window: str, used: dict, now, *, enforced: bool):
    if rule is None:
        return BudgetEntry(budget=None, window=window)
    spent = used[(rule.scope, rule.scope_id, rule.quota)]
    return BudgetEntry(
        budget=from_units(rule.quota),
        window=rule.window,
        window_start=window_start(rule.window, now),
        spent=from_units(spent),
        remaining=from_units(max(rule.quota - spent, 0)),
        percent=round(spent * 100 / rule.quota, 1) if rule.quota else 100.0,
        warning=enforced and spent >= int(rule.quota * WARN_AT),
    )


def _key_quotas(tokens, used: dict, now, *, enforced: bool) -> list[KeyQuota]:
    """`tokens`: (APIToken, its rules) pairs."""
    out = []
    for token, rules in tokens:
        by_scope = {rule.scope: rule for rule in rules}
        out.append(
            KeyQuota(
                token_id=token.pk,
                name=token.name,
                prefix=token.prefix,
                quota=_entry(
                    by_scope.get(QuotaScope.KEY), token.quota_window, used, now, enforced=enforced
                ),
                budget=_budget_entry(
                    by_scope.get(QuotaScope.KEY_BUDGET),
                    token.quota_window,
                    used,
                    now,
                    enforced=enforced,
                ),
            )
        )
    return out


def quota_status(*, tenant: Tenant, now: datetime | None = None) -> QuotaStatus:
    """The tenant's token quota and budget, each of its model configurations with a quota and
    each of its live application keys with a quota or a budget.

    `used` is the quota counter of the current window, the number calls are checked against
    (Redis's when it serves quotas, else the database's); a quota no call has met yet in this
    window reads the ledger, as its counter will be seeded. An unlimited tenant (flagged, or
    owned by a superuser) bypasses quotas: its counters do not move and nothing warns.
    """
    configs = list(
        TenantLLM.objects.filter(tenant=tenant, token_quota__isnull=False)
        .select_related("factory")
        .order_by("factory__name", "llm_name")
    )
    tokens = [
        (token, key_rules(key_limits_of(token), tenant.pk))
        for token in APIToken.objects.filter(tenant=tenant, revoked_at__isnull=True)
        .filter(Q(token_quota__isnull=False) | Q(budget__isnull=False))
        .order_by("name", "pk")
    ]
    unlimited = tenant_is_unlimited(tenant=tenant)
    budget = tenant_budget_rule(tenant)
    rules: list[QuotaRule] = [r for r in [tenant_rule(tenant), budget] if r is not None]
    config_rules = [(config, config_rule(config)) for config in configs]
    rules += [rule for _, rule in config_rules if rule is not None]
    rules += [rule for _, key in tokens for rule in key]
    used = _counters(rules, now, configs={str(config.pk): config for config in configs})
    enforced = not unlimited
    return QuotaStatus(
        unlimited=unlimited,
        tenant=_entry(tenant_rule(tenant), tenant.quota_window, used, now, enforced=enforced),
        budget=_budget_entry(budget, tenant.quota_window, used, now, enforced=enforced),
        keys=_key_quotas(tokens, used, now, enforced=enforced),
        models=[
            ModelQuota(
                config_id=config.pk,
                model=f"{config.llm_name}@{config.factory.name}",
                model_type=config.model_type,
                used_tokens=config.used_tokens,
                quota=_entry(rule, config.quota_window, used, now, enforced=enforced),
            )
            for config, rule in config_rules
        ],
    )


_GROUP = ("tenant_id", "factory", "llm_name", "token_id")


def _ledger_filters(rules: list[QuotaRule], known: dict[str, TenantLLM]) -> list[dict | None]:
    """What of the ledger counts against each rule, as equalities on the rollups' grouping
    columns (None: the ledger cannot tell). Model configurations not in `known` (by id) are
    read in one query."""
    configs = {
        pk: {"tenant_id": c.tenant_id, "factory": c.factory.name, "llm_name": c.llm_name}
        for pk, c in known.items()
    }
    config_ids = [
        int(r.scope_id) for r in rules if r.scope == QuotaScope.CONFIG and r.scope_id not in known
    ]
    configs |= {
        str(pk): {"tenant_id": tenant_id, "factory": factory, "llm_name": llm_name}
        for pk, tenant_id, factory, llm_name in (
            TenantLLM.objects.filter(pk__in=config_ids).values_list(
                "pk", "tenant_id", "factory__name", "llm_name"
            )
            if config_ids
            else ()
        )
    }
    filters: list[dict | None] = []
    for rule in rules:
        if rule.scope in (QuotaScope.TENANT, QuotaScope.TENANT_BUDGET):
            filters.append({"tenant_id": UUID(rule.scope_id)})
        elif rule.scope == QuotaScope.CONFIG:
            filters.append(configs.get(rule.scope_id))
        else:  # an application key: the ledger records the key of each call
            filters.append({"token_id": int(rule.scope_id)})
    return filters


def _first_hour(start: datetime) -> datetime:
    hour = start.replace(minute=0, second=0, microsecond=0)
    return hour + timedelta(hours=1) if hour < start else hour


def _grouped_sums(model, time_field: str, filters: list[dict], spans: list[tuple]) -> list:
    """One grouped query: per (tenant, factory, model, key) group touched by `filters`, the
    tokens and the cost inside each of `spans` ((from, to or None) on `time_field`)."""
    tenant_ids = {f["tenant_id"] for f in filters if "tenant_id" in f}
    token_ids = {f["token_id"] for f in filters if "token_id" in f}
    where = Q()
    if tenant_ids:
        where |= Q(tenant_id__in=tenant_ids)
    if token_ids:
        where |= Q(token_id__in=token_ids)
    sums = {}
    for i, (low, high) in enumerate(spans):
        span = Q(**{f"{time_field}__gte": low})
        if high is not None:
            span &= Q(**{f"{time_field}__lt": high})
        sums[f"t{i}"] = Sum("total_tokens", filter=span)
        sums[f"c{i}"] = Sum("cost", filter=span)
    bounds = {f"{time_field}__gte": min(low for low, _ in spans)}
    if all(high is not None for _, high in spans):
        bounds[f"{time_field}__lt"] = max(high for _, high in spans)
    return list(model.objects.filter(where, **bounds).values(*_GROUP).annotate(**sums).order_by())


def _matches(row: dict, wanted: dict) -> bool:
    return all(row[name] == value for name, value in wanted.items())


def quota_ledger_used_many(
    *, wanted: list[tuple[QuotaRule, datetime]], configs: dict[str, TenantLLM] | None = None
) -> list[int]:
    """What the ledger holds for each (rule, window start), in the rule's units: whole UTC
    hours from the hourly rollup, the part of an hour before the first one from the events.

    At most three queries whatever the number of rules: the rules' model configurations, the
    rollup grouped by (tenant, factory, model, key) with one conditional sum per distinct
    start, and the same over the events when a start is not on a whole hour. `configs`: the
    rules' model configurations (by id, with their factory) when the caller has them."""
    if not wanted:
        return []
    filters = _ledger_filters([rule for rule, _ in wanted], configs or {})
    known = [f for f in filters if f is not None]
    if not known:
        return [0] * len(wanted)
    hours = sorted({_first_hour(start) for _, start in wanted})
    hourly = _grouped_sums(UsageHourly, "bucket", known, [(h, None) for h in hours])
    parts = sorted(
        {(start, _first_hour(start)) for _, start in wanted if _first_hour(start) > start}
    )
    events = _grouped_sums(UsageEvent, "created_at", known, parts) if parts else []
    out = []
    for (rule, start), wanted_rows in zip(wanted, filters, strict=True):
        if wanted_rows is None:
            out.append(0)
            continue
        column = "c" if rule.kind == COST else "t"
        hour = _first_hour(start)
        i = hours.index(hour)
        total = sum(r[f"{column}{i}"] or 0 for r in hourly if _matches(r, wanted_rows))
        if hour > start:
            j = parts.index((start, hour))
            total += sum(r[f"{column}{j}"] or 0 for r in events if _matches(r, wanted_rows))
        out.append(to_units(total) if rule.kind == COST else int(total))
    return out


def quota_ledger_used(*, rule: QuotaRule, start: datetime) -> int:
    """What the ledger holds for `rule` since `start`, in the rule's units."""
    return quota_ledger_used_many(wanted=[(rule, start)])[0]


def quota_used(*, rule: QuotaRule, now: datetime | None = None) -> int:
    """The counter calls are checked against in the current window (0 when none exists)."""
    return _counters([rule], now)[(rule.scope, rule.scope_id, rule.quota)]


def _counters(
    rules: list[QuotaRule], now: datetime | None = None, configs: dict | None = None
) -> dict:
    """(scope, scope_id, limit) -> the current window's counter of each rule, from Redis when
    it serves quotas, else the database; a rule without a counter yet reads the ledger."""
    from ..services.quota_redis import QuotaStoreDown, counter_key, quota_store

    starts = [window_start(rule.window, now) for rule in rules]
    found: dict[tuple[str, str, int], int | None] = {}
    store = quota_store()
    if store is not None and rules:
        try:
            values = store.used([counter_key(r, s) for r, s in zip(rules, starts, strict=True)])
            found = {(r.scope, r.scope_id, r.quota): v for r, v in zip(rules, values, strict=True)}
        except QuotaStoreDown:
            found = {}
    if rules and not found:
        wanted = Q()
        for rule, start in zip(rules, starts, strict=True):
            wanted |= Q(
                scope=rule.scope, scope_id=rule.scope_id, limit=rule.quota, window_start=start
            )
        for scope, scope_id, limit, used in QuotaCounter.objects.filter(wanted).values_list(
            "scope", "scope_id", "limit", "used"
        ):
            found[(scope, scope_id, limit)] = used
    keys = [(rule.scope, rule.scope_id, rule.quota) for rule in rules]
    out = {key: found.get(key) for key in keys}
    missing = [
        (rule, start, key)
        for rule, start, key in zip(rules, starts, keys, strict=True)
        if out[key] is None
    ]
    seeded = quota_ledger_used_many(
        wanted=[(rule, start) for rule, start, _ in missing], configs=configs
    )
    for (_, _, key), value in zip(missing, seeded, strict=True):
        out[key] = value
    return out


def rule_of_counter(*, scope: str, scope_id: str, limit: int) -> QuotaRule | None:
    """The rule a counter belongs to, as it stands now; None if it changed or is gone."""
    rule = None
    if scope in (QuotaScope.TENANT, QuotaScope.TENANT_BUDGET):
        tenant = Tenant.objects.filter(pk=scope_id).first()
        if tenant is not None:
            rule = (tenant_rule if scope == QuotaScope.TENANT else tenant_budget_rule)(tenant)
    elif scope == QuotaScope.CONFIG:
        config = TenantLLM.objects.select_related("factory").filter(pk=scope_id).first()
        rule = config_rule(config) if config is not None else None
    elif scope in (QuotaScope.KEY, QuotaScope.KEY_BUDGET):
        token = APIToken.objects.filter(pk=scope_id, tenant__isnull=False).first()
        if token is not None:
            rules = key_rules(key_limits_of(token), token.tenant_id)
            rule = next((r for r in rules if r.scope == scope), None)
    return rule if rule is not None and rule.quota == limit else None


def key_limits_of(token) -> KeyLimits:
    """An application key's limits (APIToken, or tenants.identity.TokenIdentity)."""
    token_id = getattr(token, "token_id", None) or token.pk
    return KeyLimits(
        token_id=token_id,
        label=f"key {token_id}",
        token_quota=token.token_quota,
        budget=token.budget,
        window=token.quota_window,
    )


@functools.lru_cache(maxsize=4096)
def key_limits(identity) -> KeyLimits | None:
    """The quota and budget of the application key `identity` (tenants.identity's
    TokenIdentity) is, or None: a personal token, or a key without either. No I/O."""
    if identity is None or getattr(identity, "tenant_id", None) is None:
        return None
    if identity.token_quota is None and identity.budget is None:
        return None
    return key_limits_of(identity)
