"""Quotas and budgets: what a rule is, its calendar windows, and what a call holds.

A rule limits the tokens (a quota) or the money (a budget, at the catalog's prices) spent by
a tenant (all its models), one model configuration or one application key, over a calendar
window (none, daily, monthly) in QUOTA_TIME_ZONE. A counter is keyed by the rule's scope, its
limit and the window's start: a new window or a changed limit starts a new counter, seeded
from the ledger (so a quota set mid-window counts what the window already used). Money is
counted in integer units of 10^-8 dollars, the ledger's precision.

The counters live in Redis when QUOTA_REDIS_URL is set (`usage.services.quota_redis`: one
script reserves under every rule of a call, one settles), else, or while Redis is down, in the
database (`usage.services.quotas`). `usage.selectors.quotas` builds the rules of a call and
reads the status.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from .models import QuotaScope

WARN_AT = 0.8
# Alerts fire once per threshold, rule and window: level 1, 2, 3 = 50 %, 80 %, 100 %.
ALERT_PERCENTS = (50, 80, 100)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COST_UNIT = Decimal("0.00000001")  # money is counted in these (the ledger's precision)

TOKENS = "tokens"
COST = "cost"
# The scopes whose rules count money rather than tokens.
COST_SCOPES = frozenset({QuotaScope.TENANT_BUDGET, QuotaScope.KEY_BUDGET})


@dataclass(frozen=True)
class QuotaRule:
    scope: str
    scope_id: str
    quota: int  # tokens, or units of COST_UNIT for a budget
    window: str
    label: str  # for messages: "tenant Acme", "model gpt-4o@OpenAI", "key rgl_ab12"
    tenant_id: str = ""  # hex: whose webhook hears its alerts

    @property
    def kind(self) -> str:
        return COST if self.scope in COST_SCOPES else TOKENS


@dataclass(frozen=True)
class KeyLimits:
    """An application key's own quota and budget (tenants.identity.TokenIdentity's)."""

    token_id: int
    label: str
    token_quota: int | None
    budget: Decimal | None
    window: str


# The application key a gateway call is made with, set by the gateway around the call: its
# limits are checked beside the tenant's and the model's.
acting_key: ContextVar[KeyLimits | None] = ContextVar("acting_key", default=None)


@dataclass
class Reservation:
    """What one call holds under each of its rules until it settles, and where."""

    held: list[tuple[QuotaRule, datetime, int]] = field(default_factory=list)
    backend: str = "db"  # "redis" or "db"

    @property
    def tokens(self) -> int:
        return next((n for rule, _, n in self.held if rule.kind == TOKENS), 0)


def to_units(cost: Decimal | str | float) -> int:
    """Dollars to integer COST_UNITs, rounded up (a budget never under-counts)."""
    units = Decimal(cost) / COST_UNIT
    return int(units.to_integral_value(rounding="ROUND_CEILING"))


def from_units(units: int) -> Decimal:
    return (Decimal(units) * COST_UNIT).quantize(COST_UNIT)


def window_start(window: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(tz=UTC)
    if window == "none":
        return EPOCH
    local = now.astimezone(ZoneInfo(settings.QUOTA_TIME_ZONE))
    if window == "daily":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif window == "monthly":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unknown quota window {window!r}")
    return start.astimezone(UTC)


def window_end(window: str, start: datetime) -> datetime | None:
    """When the window that began at `start` ends (None: never)."""
    if window == "none":
        return None
    local = start.astimezone(ZoneInfo(settings.QUOTA_TIME_ZONE))
    if window == "daily":
        nxt = (local + timedelta(days=1)).replace(hour=0)
    else:
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        nxt = local.replace(year=year, month=month, day=1)
    return nxt.astimezone(UTC)


def window_name(window: str) -> str:
    return {"none": "in total", "daily": "today", "monthly": "this month"}[window]


def alert_level(used: int, quota: int) -> int:
    """How many of ALERT_PERCENTS `used` has reached (0-3); a zero limit counts as reached
    once anything is used."""
    if quota <= 0:
        return len(ALERT_PERCENTS) if used > 0 else 0
    return sum(1 for percent in ALERT_PERCENTS if used * 100 >= percent * quota)


def amount_text(rule: QuotaRule, value: int) -> str:
    if rule.kind == COST:
        return f"${from_units(value).normalize():f}"
    return f"{value:,} tokens"


def tenant_rule(tenant) -> QuotaRule | None:
    """The token quota of all the tenant's models together, if it has one."""
    return _rule(QuotaScope.TENANT, tenant, f"tenant {tenant.name}", tenant.pk)


def tenant_budget_rule(tenant) -> QuotaRule | None:
    """The tenant's money budget over all its models, if it has one."""
    if tenant.budget is None:
        return None
    return QuotaRule(
        QuotaScope.TENANT_BUDGET,
        str(tenant.pk),
        to_units(tenant.budget),
        tenant.quota_window,
        f"tenant {tenant.name}",
        _hex(tenant.pk),
    )


def config_rule(config) -> QuotaRule | None:
    """The quota of one model configuration, if it has one."""
    label = f"model {config.llm_name}@{config.factory.name}"
    return _rule(QuotaScope.CONFIG, config, label, config.tenant_id)


@functools.lru_cache(maxsize=4096)
def key_rules(key: KeyLimits | None, tenant_id) -> tuple[QuotaRule, ...]:
    """An application key's token quota and budget, if it has them."""
    if key is None:
        return ()
    rules = []
    if key.token_quota is not None:
        rules.append(
            QuotaRule(
                QuotaScope.KEY,
                str(key.token_id),
                int(key.token_quota),
                key.window,
                key.label,
                _hex(tenant_id),
            )
        )
    if key.budget is not None:
        rules.append(
            QuotaRule(
                QuotaScope.KEY_BUDGET,
                str(key.token_id),
                to_units(key.budget),
                key.window,
                key.label,
                _hex(tenant_id),
            )
        )
    return tuple(rules)


def _hex(value) -> str:
    return value.hex if hasattr(value, "hex") and not isinstance(value, str) else str(value)


def _rule(scope: str, owner, label: str, tenant_id) -> QuotaRule | None:
    if owner.token_quota is None:
        return None
    return QuotaRule(
        scope, str(owner.pk), owner.token_quota, owner.quota_window, label, _hex(tenant_id)
    )
