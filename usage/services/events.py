"""Usage events in: applying what the buffers hold (retention: `partitions`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

from ..buffer import DrainResult, local_buffer, redis_buffer
from ..recorder import flush_forwarder

logger = logging.getLogger(__name__)


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


@dataclass
class WriterProgress:
    applied: DrainResult = field(default_factory=DrainResult)
    failures: int = 0  # batches that failed (database or Redis down): retried


def usage_writer_run(
    *,
    stop: threading.Event,
    consumer: str | None = None,
    batch_size: int = 10,
    claim_idle_ms: int = 30_000,
    block_ms: int = 200,
    on_batch: Callable[[WriterProgress], None] | None = None,
) -> WriterProgress:
    """A writer process's loop: apply the stream batch by batch until `stop` is set.

    An empty stream is waited on for up to `block_ms` (a blocking read: new entries wake the
    writer at once), so `stop` is seen within that time when there is nothing to do.

    Any number of writers, on any machines, share the stream's consumer group: each entry goes
    to one of them; entries a dead writer held unacknowledged for `claim_idle_ms` are claimed
    by another (XAUTOCLAIM) and applied again, which changes nothing already applied. A batch
    that fails (the database or Redis down) stays pending and is retried with a backoff; `stop`
    is checked between batches, so a batch in flight is always finished.
    """
    from django.db import close_old_connections

    buffer = redis_buffer()
    if buffer is None:
        raise ImproperlyConfigured("the usage writer needs Redis: set USAGE_REDIS_URL")
    progress = WriterProgress()
    backoff = 0.1
    while not stop.is_set():
        try:
            result = buffer.drain(
                consumer=consumer,
                batch_size=batch_size,
                max_batches=1,
                claim_idle_ms=claim_idle_ms,
                block_ms=block_ms,
            )
            backoff = 0.1
        except Exception:
            progress.failures += 1
            logger.warning("usage writer: batch failed; retrying in %.1f s", backoff, exc_info=True)
            buffer._group_ready = False  # Redis may have restarted without its group
            close_old_connections()
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        if result.batches:
            progress.applied += result
            if on_batch is not None:
                on_batch(progress)
    return progress
