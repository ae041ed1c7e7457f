"""Usage events in and out: applying what the buffers hold, pruning old events."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ..buffer import DrainResult, local_buffer, redis_buffer
from ..models import UsageEvent
from ..recorder import flush_forwarder


def usage_drain(
    *, max_batches: int | None = None, claim_idle_ms: int = 30_000, batch_size: int = 5000
) -> DrainResult:
    """Apply what is buffered: this process's queues and the Redis stream (if configured)."""
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
