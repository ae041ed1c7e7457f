"""Recording usage without making the call wait on a database write."""

from __future__ import annotations

import logging
import threading
import time

from .buffer import local_buffer, redis_buffer
from .records import UsageRecord

logger = logging.getLogger(__name__)

# After Redis fails, calls skip it for this long instead of each waiting for a timeout.
REDIS_RETRY_AFTER = 2.0
_redis_down_until = 0.0
_down_lock = threading.Lock()


def record_usage(record: UsageRecord) -> None:
    """Buffer one usage record: the Redis stream if it is up, else the in-process writer."""
    global _redis_down_until
    buffer = redis_buffer()
    if buffer is not None and time.monotonic() >= _redis_down_until:
        try:
            buffer.push(record)
            return
        except Exception:  # redis.RedisError and socket errors alike
            with _down_lock:
                if time.monotonic() >= _redis_down_until:
                    logger.warning(
                        "Redis is unavailable; usage goes to the database directly for now"
                    )
                _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
    local_buffer().put(record)


def reset_redis_state() -> None:
    """Forget a recorded Redis outage (tests, and after an operator fixes Redis)."""
    global _redis_down_until
    _redis_down_until = 0.0
