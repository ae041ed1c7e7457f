"""Quota and budget counters: reserve before a call, settle with the real usage after it.

With QUOTA_REDIS_URL set (the default: REDIS_URL), a call's reservation is one atomic Redis
script over all its rules and its settlement one more (`quota_redis`): no database query in
steady state. Without it, or while Redis does not answer, the database path: one conditional
UPDATE per rule (`used = used + n WHERE used + n <= limit`), so concurrent calls cannot both
take the last of a window, then one UPDATE to settle. Either way a counter starts from the
ledger's sum for its window (a quota set or changed mid-window counts what was already used),
and at most the reservations in flight are outstanding. A call reserves its prompt estimate
plus its completion allowance (and their cost at the model's prices), then settles the
difference with the provider's real count; settling fires the 50/80/100 % alerts.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Greatest
from django.utils import timezone

from providers.errors import QuotaExceededError

from ..models import QuotaCounter
from ..quotas import COST, EPOCH, QuotaRule, Reservation, alert_level, amount_text, window_name
from ..quotas import window_start as _window_start
from ..selectors.quotas import quota_ledger_used
from .alerts import alerts_fire
from .quota_redis import (
    MissingCounter,
    OverLimit,
    QuotaStoreDown,
    counter_key,
    expire_at,
    mark_down,
    quota_store,
)

logger = logging.getLogger(__name__)

CATCH_UP_SECONDS = 60.0
_caught_up: dict[tuple, float] = {}


def _amounts(rules: tuple[QuotaRule, ...], tokens: int, cost_units: int) -> list[int]:
    return [max(int(cost_units if rule.kind == COST else tokens), 0) for rule in rules]


def _refused(rule: QuotaRule, used: int, amount: int, provider: str, model: str):
    what = "budget" if rule.kind == COST else "token quota"
    verb = "spent" if rule.kind == COST else "used"
    return QuotaExceededError(
        f"{what} of {rule.label} exceeded: {amount_text(rule, used)} of "
        f"{amount_text(rule, rule.quota)} {verb} {window_name(rule.window)}, "
        f"this call needs up to {amount_text(rule, amount)}",
        provider=provider,
        model=model,
    )


def quota_reserve(
    *,
    rules: tuple[QuotaRule, ...],
    tokens: int,
    cost_units: int = 0,
    provider: str = "",
    model: str = "",
) -> Reservation:
    """Hold `tokens` under every quota and `cost_units` under every budget, or hold nothing
    and raise QuotaExceededError."""
    amounts = _amounts(rules, tokens, cost_units)
    starts = [_window_start(rule.window) for rule in rules]
    store = quota_store()
    if store is not None:
        try:
            return _reserve_redis(store, rules, starts, amounts, provider, model)
        except QuotaStoreDown as exc:
            mark_down(exc)
    return _reserve_db(rules, starts, amounts, provider, model)


async def aquota_reserve(
    *,
    rules: tuple[QuotaRule, ...],
    tokens: int,
    cost_units: int = 0,
    provider: str = "",
    model: str = "",
) -> Reservation | None:
    """quota_reserve on the running event loop: the Redis script over the loop's own
    connection, no thread and no database query. None when the database is needed (Redis
    not configured or down, a counter to seed from the ledger): then the caller runs
    quota_reserve in its database thread, which seeds or falls back."""
    store = quota_store()
    if store is None:
        return None
    amounts = _amounts(rules, tokens, cost_units)
    starts = [_window_start(rule.window) for rule in rules]
    keys = [counter_key(rule, start) for rule, start in zip(rules, starts, strict=True)]
    try:
        await store.areserve(keys, [rule.quota for rule in rules], amounts)
    except MissingCounter:
        return None
    except OverLimit as over:
        raise _refused(rules[over.index], over.used, amounts[over.index], provider, model) from None
    except QuotaStoreDown as exc:
        mark_down(exc)
        return None
    return Reservation(held=list(zip(rules, starts, amounts, strict=True)), backend="redis")


def _reserve_redis(store, rules, starts, amounts, provider, model) -> Reservation:
    keys = [counter_key(rule, start) for rule, start in zip(rules, starts, strict=True)]
    limits = [rule.quota for rule in rules]
    for _ in range(len(rules) + 1):
        try:
            store.reserve(keys, limits, amounts)
        except MissingCounter as missing:
            rule, start = rules[missing.index], starts[missing.index]
            seed = quota_ledger_used(rule=rule, start=start)
            store.seed(keys[missing.index], seed, expire_at(rule, start))
            continue
        except OverLimit as over:
            raise _refused(
                rules[over.index], over.used, amounts[over.index], provider, model
            ) from None
        return Reservation(held=list(zip(rules, starts, amounts, strict=True)), backend="redis")
    raise QuotaStoreDown("quota counters vanished while being seeded")


def _counter(rule: QuotaRule, start: datetime) -> QuerySet[QuotaCounter]:
    return QuotaCounter.objects.filter(
        scope=rule.scope, scope_id=rule.scope_id, limit=rule.quota, window_start=start
    )


def _ensure_counter(rule: QuotaRule, start: datetime) -> None:
    """Create the rule's counter for the window, seeded from the ledger, if missing."""
    if not _counter(rule, start).exists():
        _create(rule, start, quota_ledger_used(rule=rule, start=start))


def _catch_up(rule: QuotaRule, start: datetime) -> None:
    """Redis is configured but down: Redis counted the window until now, this row did not.
    Raise the row to the ledger first (once a minute per process and counter)."""
    key = (rule.scope, rule.scope_id, rule.quota, start)
    now = time.monotonic()
    if now - _caught_up.get(key, -CATCH_UP_SECONDS) < CATCH_UP_SECONDS:
        return
    _caught_up[key] = now
    ledger = quota_ledger_used(rule=rule, start=start)
    if not _counter(rule, start).update(used=Greatest(F("used"), ledger)):
        _create(rule, start, ledger)


def _create(rule: QuotaRule, start: datetime, used: int) -> None:
    QuotaCounter.objects.bulk_create(
        [
            QuotaCounter(
                scope=rule.scope,
                scope_id=rule.scope_id,
                limit=rule.quota,
                window_start=start,
                used=used,
                # As in Redis: the first settlement fires what the seed already passed (the
                # Alert rows' uniqueness keeps an alert Redis fired from firing again).
                alerted=0,
            )
        ],
        ignore_conflicts=True,
    )


def _redis_configured() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "QUOTA_REDIS_URL", ""))


def _reserve_db(rules, starts, amounts, provider, model) -> Reservation:
    reservation = Reservation(backend="db")
    fallback = _redis_configured()
    for rule, start, amount in zip(rules, starts, amounts, strict=True):
        counter = _counter(rule, start)
        if fallback:
            _catch_up(rule, start)
        taken = counter.filter(used__lte=rule.quota - amount).update(used=F("used") + amount)
        if not taken:
            _ensure_counter(rule, start)
            taken = counter.filter(used__lte=rule.quota - amount).update(used=F("used") + amount)
        if not taken:
            quota_release(reservation=reservation)
            used = counter.values_list("used", flat=True).first() or 0
            raise _refused(rule, used, amount, provider, model)
        reservation.held.append((rule, start, amount))
    return reservation


def quota_hold_nothing(*, rules: tuple[QuotaRule, ...]) -> Reservation:
    """A zero reservation under `rules`, for usage that is recorded after the fact: settling
    adds it to counters that exist (a counter created later is seeded from the ledger)."""
    backend = "redis" if quota_store() is not None else "db"
    return Reservation(
        held=[(rule, _window_start(rule.window), 0) for rule in rules], backend=backend
    )


def quota_release(*, reservation: Reservation) -> None:
    """Give back what `reservation` holds (the call was never made)."""
    quota_settle(reservation=reservation, actual_tokens=0, alerts=False)


def _settlement_rows(reservation: Reservation, actual_tokens: int, actual_cost_units: int):
    held = list(reservation.held)
    reservation.held.clear()
    rows = []
    for rule, start, reserved in held:
        actual = actual_cost_units if rule.kind == COST else actual_tokens
        rows.append((rule, start, reserved, max(int(actual), 0)))
    return rows


def _redis_settlement(rows):
    return (
        [counter_key(rule, start) for rule, start, _, _ in rows],
        [(reserved, actual, rule.quota) for rule, _, reserved, actual in rows],
    )


def _alerts_crossed(rows, answers) -> list[tuple]:
    """(rule, start, used, levels) of each alert a Redis settlement crossed."""
    return [
        (rule, start, used, range(before + 1, after + 1))
        for (rule, start, _, _), (used, before, after) in zip(rows, answers, strict=True)
        if after > before
    ]


def quota_alerts_fire(*, crossed: list[tuple]) -> None:
    """Fire what aquota_settle found crossed (in a thread that may use the database)."""
    for rule, start, used, levels in crossed:
        alerts_fire(rule=rule, start=start, used=used, levels=levels)


async def aquota_settle(
    *, reservation: Reservation, actual_tokens: int, actual_cost_units: int = 0
) -> list[tuple] | None:
    """quota_settle of a Redis reservation on the running event loop, without a thread.
    Returns the alerts it crossed, for quota_alerts_fire in a database thread (usually
    none); None when it could not settle here and quota_settle must run instead."""
    if reservation.backend != "redis":
        return None
    store = quota_store(even_if_down=True)
    if store is None:
        return None
    rows = _settlement_rows(reservation, actual_tokens, actual_cost_units)
    if not rows:
        return []
    try:
        answers = await store.asettle(*_redis_settlement(rows))
    except QuotaStoreDown as exc:
        # The reservation stays counted in Redis (conservative) until reconciled.
        mark_down(exc)
        logger.warning("quota settlement not applied (Redis down): %s", exc)
        return []
    return _alerts_crossed(rows, answers)


def quota_settle(
    *,
    reservation: Reservation,
    actual_tokens: int,
    actual_cost_units: int = 0,
    alerts: bool = True,
) -> None:
    """Replace the reservation by the real usage; fire the alerts it crosses (once each)."""
    rows = _settlement_rows(reservation, actual_tokens, actual_cost_units)
    if not rows:
        return
    if reservation.backend == "redis":
        store = quota_store(even_if_down=True)
        if store is not None:
            try:
                answers = store.settle(*_redis_settlement(rows))
            except QuotaStoreDown as exc:
                # The reservation stays counted in Redis (conservative) until reconciled.
                mark_down(exc)
                logger.warning("quota settlement not applied (Redis down): %s", exc)
                return
            if alerts:
                quota_alerts_fire(crossed=_alerts_crossed(rows, answers))
            return
        logger.warning("quota settlement not applied: QUOTA_REDIS_URL is no longer set")
        return
    for rule, start, reserved, actual in rows:
        counter = _counter(rule, start)
        if actual != reserved:
            counter.update(used=F("used") + (actual - reserved))
        if not alerts:
            continue
        row = counter.values_list("used", "alerted").first()
        if row is None:
            continue
        used, before = row
        level = alert_level(used, rule.quota)
        if level > before and counter.filter(alerted__lt=level).update(alerted=level):
            alerts_fire(rule=rule, start=start, used=used, levels=range(before + 1, level + 1))


def quota_reconcile(*, idle_seconds: int = 600) -> int:
    """Bring quota counters back to the ledger (a beat job); returns how many were read.

    Redis counters whose settled part is below the ledger's sum (usage recorded while Redis
    was down or before a restart) are raised to it; a counter idle for `idle_seconds` with no
    usage waiting to be written is set to the ledger exactly, which drops reservations of
    calls that died before settling. Database counters of current windows are raised to the
    ledger too (the path Redis's outages fall back to).
    """
    from ..buffer import redis_buffer
    from ..quotas import window_start as start_of
    from ..selectors.quotas import rule_of_counter
    from .quota_redis import parse_key

    seen = 0
    store = quota_store()
    if store is not None:
        try:
            buffer = redis_buffer()
            exact = buffer is not None and buffer.backlog() == 0
            for key in store.counter_keys():
                scope, scope_id, limit, start = parse_key(key)
                rule = rule_of_counter(scope=scope, scope_id=scope_id, limit=limit)
                if rule is None or start_of(rule.window) != start:
                    continue  # a rule since changed, or a past window: left to expire
                ledger = quota_ledger_used(rule=rule, start=start)
                store.reconcile(key, ledger, idle_ms=idle_seconds * 1000, exact=exact)
                seen += 1
        except QuotaStoreDown as exc:
            mark_down(exc)
    recent = Q(window_start__gte=timezone.now() - timedelta(days=32)) | Q(window_start=EPOCH)
    for counter in QuotaCounter.objects.filter(recent).iterator():
        rule = rule_of_counter(scope=counter.scope, scope_id=counter.scope_id, limit=counter.limit)
        if rule is None or _window_start(rule.window) != counter.window_start:
            continue
        ledger = quota_ledger_used(rule=rule, start=counter.window_start)
        _counter(rule, counter.window_start).update(used=Greatest(F("used"), ledger))
        seen += 1
    return seen
