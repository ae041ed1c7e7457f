"""Recording usage without making the call wait on a database write (or on Redis).

`record_usage` appends the record to an in-process queue and returns. A forwarder thread sends
the queue to the Redis stream every few milliseconds, many records per round trip; the batched
writer applies the stream to the database. When Redis is not configured, or while it is down,
records go to the in-process database writer instead (RAGFlow's design), so calls never fail
because of the usage path. Both queues are flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time

from .buffer import ProcessThread, local_buffer, redis_buffer
from .records import UsageRecord

logger = logging.getLogger(__name__)

# After Redis fails, records skip it for this long instead of each waiting for a timeout.
REDIS_RETRY_AFTER = 2.0
FORWARD_INTERVAL = 0.005
FORWARD_BATCH = 500


class RedisForwarder:
    """Moves records from this process to the Redis stream, in batches, off the call path."""

    def __init__(self) -> None:
        self._queue: collections.deque[UsageRecord] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one flusher at a time
        self._sender = ProcessThread(self._run, name="ragllm-usage-forwarder")
        self.down_until = 0.0

    def put(self, record: UsageRecord) -> None:
        self._queue.append(record)
        self._sender.ensure_started()
        if len(self._queue) >= FORWARD_BATCH:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(FORWARD_INTERVAL)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the thread die; flush() already kept the records
                logger.exception("usage forwarder failed")

    def flush(self) -> int:
        """Send everything queued now. Records Redis refuses go to the database writer."""
        sent = 0
        with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(FORWARD_BATCH, len(self._queue)))]
                buffer = redis_buffer()
                if buffer is not None and time.monotonic() >= self.down_until:
                    try:
                        buffer.push_many(batch)
                        sent += len(batch)
                        continue
                    except Exception:
                        if time.monotonic() >= self.down_until:
                            logger.warning(
                                "Redis is unavailable; usage goes to the database directly for now"
                            )
                        self.down_until = time.monotonic() + REDIS_RETRY_AFTER
                local = local_buffer()
                for record in batch:
                    local.put(record)
        return sent

    def __len__(self) -> int:
        return len(self._queue)


_forwarder = RedisForwarder()


def record_usage(record: UsageRecord) -> None:
    """Buffer one usage record; returns at once."""
    if redis_buffer() is not None:
        _forwarder.put(record)
    else:
        local_buffer().put(record)


def flush_forwarder() -> int:
    """Push this process's queued records to Redis now (commands, tests, shutdown)."""
    return _forwarder.flush()


def reset_redis_state() -> None:
    """Forget a recorded Redis outage (tests, and after an operator fixes Redis)."""
    _forwarder.down_until = 0.0


def _shutdown() -> None:
    flush_forwarder()
    local_buffer().close()


atexit.register(_shutdown)
