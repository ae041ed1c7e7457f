"""Token quotas: what a rule is, its calendar windows, and what a call holds.

A quota belongs to a tenant (all its models) or to one model configuration, with a calendar
window (none, daily, monthly) in QUOTA_TIME_ZONE: the window is part of the counter's key, so
nothing has to reset counters. The counters are written by `usage.services.quotas` and read
by `usage.selectors.quotas`, which also builds the rules of a call from its tenant and config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.conf import settings

from .models import QuotaScope

WARN_AT = 0.8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QuotaRule:
    scope: str
    scope_id: str
    quota: int
    window: str
    label: str  # for messages: "tenant Acme", "model gpt-4o@OpenAI"


@dataclass
class Reservation:
    """The tokens one call holds under each of its rules until it settles."""

    held: list[tuple[QuotaRule, datetime, int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.held[0][2] if self.held else 0


def window_start(window: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(tz=UTC)
    if window == "none":
        return _EPOCH
    local = now.astimezone(ZoneInfo(settings.QUOTA_TIME_ZONE))
    if window == "daily":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif window == "monthly":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unknown quota window {window!r}")
    return start.astimezone(UTC)


def window_name(window: str) -> str:
    return {"none": "in total", "daily": "today", "monthly": "this month"}[window]


def tenant_rule(tenant) -> QuotaRule | None:
    """The quota of all the tenant's models together, if it has one."""
    return _rule(QuotaScope.TENANT, tenant, f"tenant {tenant.name}")


def config_rule(config) -> QuotaRule | None:
    """The quota of one model configuration, if it has one."""
    return _rule(QuotaScope.CONFIG, config, f"model {config.llm_name}@{config.factory.name}")


def _rule(scope: str, owner, label: str) -> QuotaRule | None:
    if owner.token_quota is None:
        return None
    return QuotaRule(scope, str(owner.pk), owner.token_quota, owner.quota_window, label)
