"""Writes for usage: draining the buffer, rolling hourly rows into days, pruning old events."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .buffer import DrainResult, local_buffer, redis_buffer
from .models import UsageDaily, UsageEvent, UsageHourly

logger = logging.getLogger(__name__)

_SUMS = ("calls", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost")


def usage_drain(
    *, max_batches: int | None = None, claim_idle_ms: int = 30_000, batch_size: int = 5000
) -> DrainResult:
    """Apply what is buffered: this process's queues and the Redis stream (if configured)."""
    from .recorder import flush_forwarder

    flush_forwarder()
    result = DrainResult()
    buffer = redis_buffer()
    if buffer is not None:
        result = buffer.drain(
            max_batches=max_batches, claim_idle_ms=claim_idle_ms, batch_size=batch_size
        )
    local = local_buffer()
    if len(local):
        applied = local.flush()
        result.inserted += applied.inserted
        result.duplicates += applied.duplicates
        result.dropped += applied.dropped
    return result


@transaction.atomic
def usage_rollup_daily(*, since: date | None = None) -> int:
    """Recompute the daily rows of every UTC day from `since` (default: yesterday) on.

    Daily rows are replaced by the sums of their hourly rows, so running it again, or after
    late events arrived, gives the same result. Returns the number of daily rows written.
    """
    since = since or (timezone.now().astimezone(UTC).date() - timedelta(days=1))
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    grouped = (
        UsageHourly.objects.filter(bucket__gte=start)
        .annotate(day=TruncDate("bucket", tzinfo=UTC))
        .values("tenant_id", "day", "factory", "llm_name", "model_type")
        .annotate(**{f"sum_{name}": Sum(name) for name in _SUMS})
        .order_by()
    )
    rows = [
        UsageDaily(
            tenant_id=item["tenant_id"],
            day=item["day"],
            factory=item["factory"],
            llm_name=item["llm_name"],
            model_type=item["model_type"],
            **{name: item[f"sum_{name}"] or 0 for name in _SUMS},
        )
        for item in grouped
    ]
    UsageDaily.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["tenant", "day", "factory", "llm_name", "model_type"],
        update_fields=list(_SUMS),
    )
    return len(rows)


def usage_prune_events(*, older_than_days: int) -> int:
    """Delete raw events older than the retention period, in batches; rollups stay."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = list(
            UsageEvent.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:5000]
        )
        if not ids:
            return deleted
        count, _ = UsageEvent.objects.filter(pk__in=ids).delete()
        deleted += count


def usage_event_totals(**filters) -> dict:
    """Sums over raw events (for reports and consistency checks)."""
    return UsageEvent.objects.filter(**filters).aggregate(
        calls=Count("pk"),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        total_tokens=Sum("total_tokens"),
        cost=Sum("cost"),
    )
