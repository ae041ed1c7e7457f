"""Recording usage without making the call wait on a database write (or on Redis).

`record_usage` appends the record (a tuple) to an in-process deque and returns: nothing is
encoded on the caller's thread. A forwarder thread takes up to FORWARD_BATCH records at a
time, packs them into one msgpack payload and sends it as one stream entry (one XADD), every
few milliseconds; the writers apply the stream to the database. When Redis is not configured,
or while it is down, records go to the in-process database writer instead (RAGFlow's design),
so calls never fail because of the usage path. Both queues are flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time

from django.core.signals import setting_changed

from .buffer import ProcessThread, local_buffer, redis_buffer
from .records import UsageRecord

logger = logging.getLogger(__name__)

# After Redis fails, records skip it for this long instead of each waiting for a timeout.
REDIS_RETRY_AFTER = 2.0
FORWARD_INTERVAL = 0.005
FORWARD_BATCH = 2000


class RedisForwarder:
    """Moves records from this process to the Redis stream, in packed batches, off the call
    path."""

    def __init__(self) -> None:
        self._queue: collections.deque[UsageRecord] = collections.deque()
        self.append = self._queue.append
        self._lock = threading.Lock()  # one flusher at a time
        self._sender = ProcessThread(self._run, name="ragllm-usage-forwarder")
        self.started_in: int | None = None  # the pid whose forwarder thread runs
        self.down_until = 0.0

    def start(self) -> None:
        self._sender.ensure_started()
        self.started_in = os.getpid()

    def _run(self) -> None:
        while True:
            time.sleep(FORWARD_INTERVAL)
            try:
                self.flush()
            except Exception:  # never let the thread die; flush() already kept the records
                logger.exception("usage forwarder failed")

    def flush(self) -> int:
        """Send everything queued now. Records Redis refuses go to the database writer."""
        sent = 0
        queue = self._queue
        with self._lock:
            while queue:
                take = queue.popleft
                batch = [take() for _ in range(min(FORWARD_BATCH, len(queue)))]
                buffer = redis_buffer()
                if buffer is not None and time.monotonic() >= self.down_until:
                    try:
                        buffer.push_many(batch)
                        sent += len(batch)
                        continue
                    except Exception:
                        # Perhaps written before the connection broke: the records keep their
                        # ids and times, so applying them again below changes nothing.
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
_use_redis: bool | None = None  # whether USAGE_REDIS_URL is set (read once, reset on change)


def record_usage(record: UsageRecord) -> None:
    """Buffer one usage record; returns at once (a deque append)."""
    if _use_redis is None:
        _configure()
    if _use_redis:
        _forwarder.append(record)
        if _forwarder.started_in != _pid:
            _forwarder.start()
    else:
        local_buffer().put(record)


def _configure() -> None:
    global _use_redis
    _use_redis = redis_buffer() is not None


_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()
    _forwarder._queue.clear()  # the parent sends what it had queued, not its children too


os.register_at_fork(after_in_child=_after_fork)


def _settings_changed(*, setting: str, **kwargs) -> None:
    global _use_redis
    if setting in ("USAGE_REDIS_URL", "USAGE_WRITER_THREAD"):
        _use_redis = None


setting_changed.connect(_settings_changed)


def flush_forwarder() -> int:
    """Push this process's queued records to Redis now (commands, tests, shutdown)."""
    return _forwarder.flush()


def reset_redis_state() -> None:
    """Forget a recorded Redis outage and the configuration read (tests, and after an
    operator fixes Redis)."""
    global _use_redis
    _forwarder.down_until = 0.0
    _use_redis = None


def _shutdown() -> None:
    flush_forwarder()
    local_buffer().close()


atexit.register(_shutdown)
