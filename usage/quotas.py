"""Token quotas: reserve before a call, settle with the real usage after it.

A quota belongs to a tenant (all its models) or to one model configuration, with a calendar
window (none, daily, monthly) in QUOTA_TIME_ZONE: the window is part of the counter's key, so
nothing has to reset counters. Reserving is one conditional UPDATE
(`used = used + n WHERE used + n <= quota`): concurrent calls cannot both take the last tokens,
and at most the reservations in flight are outstanding. A call reserves its prompt estimate
plus its completion allowance, then settles the difference with the provider's real count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F

from providers.errors import QuotaExceededError

from .models import QuotaCounter, QuotaScope

logger = logging.getLogger(__name__)

WARN_AT = 0.8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QuotaRule:
    scope: str
    scope_id: str
    quota: int
    window: str
    label: str  # for messages: "tenant Acme", "model gpt-4o@OpenAI"


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


def _window_name(window: str) -> str:
    return {"none": "in total", "daily": "today", "monthly": "this month"}[window]


@dataclass
class Reservation:
    held: list[tuple[QuotaRule, datetime, int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.held[0][2] if self.held else 0


def _counter(rule: QuotaRule, start: datetime):
    QuotaCounter.objects.bulk_create(
        [QuotaCounter(scope=rule.scope, scope_id=rule.scope_id, window_start=start)],
        ignore_conflicts=True,
    )
    return QuotaCounter.objects.filter(scope=rule.scope, scope_id=rule.scope_id, window_start=start)


def reserve(
    rules: list[QuotaRule], tokens: int, *, provider: str = "", model: str = ""
) -> Reservation:
    """Hold `tokens` under every rule, or hold nothing and raise QuotaExceededError."""
    reservation = Reservation()
    tokens = max(int(tokens), 0)
    for rule in rules:
        start = window_start(rule.window)
        counter = _counter(rule, start)
        taken = counter.filter(used__lte=rule.quota - tokens).update(used=F("used") + tokens)
        if not taken:
            release(reservation)
            used = counter.values_list("used", flat=True).first() or 0
            raise QuotaExceededError(
                f"token quota of {rule.label} exceeded: {used} of {rule.quota} tokens used "
                f"{_window_name(rule.window)}, this call needs up to {tokens}",
                provider=provider,
                model=model,
            )
        reservation.held.append((rule, start, tokens))
    return reservation


def hold_nothing(rules: list[QuotaRule]) -> Reservation:
    """A zero reservation under `rules`, for usage that is recorded after the fact."""
    held = []
    for rule in rules:
        start = window_start(rule.window)
        _counter(rule, start)
        held.append((rule, start, 0))
    return Reservation(held=held)


def release(reservation: Reservation) -> None:
    for rule, start, tokens in reservation.held:
        QuotaCounter.objects.filter(
            scope=rule.scope, scope_id=rule.scope_id, window_start=start
        ).update(used=F("used") - tokens)
    reservation.held.clear()


def settle(reservation: Reservation, actual_tokens: int) -> None:
    """Replace the reservation by the real usage; warn once per window past 80 %."""
    for rule, start, tokens in reservation.held:
        counter = QuotaCounter.objects.filter(
            scope=rule.scope, scope_id=rule.scope_id, window_start=start
        )
        delta = int(actual_tokens) - tokens
        if delta:
            counter.update(used=F("used") + delta)
        threshold = int(rule.quota * WARN_AT)
        if counter.filter(used__gte=threshold, warned=False).update(warned=True):
            logger.warning(
                "%s has used %d%% or more of its token quota (%d tokens %s)",
                rule.label,
                int(WARN_AT * 100),
                rule.quota,
                _window_name(rule.window),
            )
    reservation.held.clear()


def usage_in_window(rule: QuotaRule) -> int:
    return (
        QuotaCounter.objects.filter(
            scope=rule.scope, scope_id=rule.scope_id, window_start=window_start(rule.window)
        )
        .values_list("used", flat=True)
        .first()
        or 0
    )


def tenant_rule(tenant) -> QuotaRule | None:
    if tenant.token_quota is None:
        return None
    return QuotaRule(
        QuotaScope.TENANT,
        str(tenant.pk),
        tenant.token_quota,
        tenant.quota_window,
        f"tenant {tenant.name}",
    )


def config_rule(config) -> QuotaRule | None:
    if config.token_quota is None:
        return None
    return QuotaRule(
        QuotaScope.CONFIG,
        str(config.pk),
        config.token_quota,
        config.quota_window,
        f"model {config.llm_name}@{config.factory.name}",
    )
