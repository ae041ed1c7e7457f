"""Quota counters: reserve before a call, settle with the real usage after it.

Reserving is one conditional UPDATE (`used = used + n WHERE used + n <= quota`): concurrent
calls cannot both take the last tokens, and at most the reservations in flight are outstanding.
A call reserves its prompt estimate plus its completion allowance, then settles the difference
with the provider's real count.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import F, QuerySet

from providers.errors import QuotaExceededError

from ..models import QuotaCounter
from ..quotas import WARN_AT, QuotaRule, Reservation, window_name, window_start

logger = logging.getLogger(__name__)


def _counter(rule: QuotaRule, start: datetime) -> QuerySet[QuotaCounter]:
    """The rule's counter row of the window starting at `start`, created at zero if missing."""
    QuotaCounter.objects.bulk_create(
        [QuotaCounter(scope=rule.scope, scope_id=rule.scope_id, window_start=start)],
        ignore_conflicts=True,
    )
    return QuotaCounter.objects.filter(scope=rule.scope, scope_id=rule.scope_id, window_start=start)


def quota_reserve(
    *, rules: tuple[QuotaRule, ...], tokens: int, provider: str = "", model: str = ""
) -> Reservation:
    """Hold `tokens` under every rule, or hold nothing and raise QuotaExceededError."""
    reservation = Reservation()
    tokens = max(int(tokens), 0)
    for rule in rules:
        start = window_start(rule.window)
        counter = _counter(rule, start)
        taken = counter.filter(used__lte=rule.quota - tokens).update(used=F("used") + tokens)
        if not taken:
            quota_release(reservation=reservation)
            used = counter.values_list("used", flat=True).first() or 0
            raise QuotaExceededError(
                f"token quota of {rule.label} exceeded: {used} of {rule.quota} tokens used "
                f"{window_name(rule.window)}, this call needs up to {tokens}",
                provider=provider,
                model=model,
            )
        reservation.held.append((rule, start, tokens))
    return reservation


def quota_hold_nothing(*, rules: tuple[QuotaRule, ...]) -> Reservation:
    """A zero reservation under `rules`, for usage that is recorded after the fact."""
    held = []
    for rule in rules:
        start = window_start(rule.window)
        _counter(rule, start)
        held.append((rule, start, 0))
    return Reservation(held=held)


def quota_release(*, reservation: Reservation) -> None:
    for rule, start, tokens in reservation.held:
        QuotaCounter.objects.filter(
            scope=rule.scope, scope_id=rule.scope_id, window_start=start
        ).update(used=F("used") - tokens)
    reservation.held.clear()


def quota_settle(*, reservation: Reservation, actual_tokens: int) -> None:
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
                window_name(rule.window),
            )
    reservation.held.clear()
