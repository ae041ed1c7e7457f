"""Usage events in: applying what the buffers hold (retention: `partitions`)."""

from __future__ import annotations

from ..buffer import DrainResult, local_buffer, redis_buffer
from ..recorder import flush_forwarder


def usage_drain(
    *, max_batches: int | None = None, claim_idle_ms: int = 30_000, batch_size: int = 10
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
