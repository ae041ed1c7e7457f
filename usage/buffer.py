"""Durable buffers between a model call and the database.

- With Redis: a Redis stream. Calls append (XADD, sub-millisecond); writers read through a
  consumer group, apply a batch, then acknowledge it. A writer that dies after applying but
  before acknowledging leaves its entries pending; another writer claims them later and applies
  them again, which changes nothing (request ids are unique). A database outage leaves entries
  pending in the stream until it returns.
- Without Redis (or while Redis is down): RAGFlow's design, an in-process queue drained by a
  background writer thread, flushed at interpreter exit. A database outage keeps events queued
  and retried.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from . import wire
from .records import UsageRecord
from .services.ledger import ApplyResult, apply_records

logger = logging.getLogger(__name__)

STREAM = "ragllm:usage"
GROUP = "ragllm-writers"


@dataclass
class DrainResult(ApplyResult):
    read: int = 0  # stream entries
    batches: int = 0

    def __iadd__(self, other: ApplyResult) -> DrainResult:
        super().__iadd__(other)
        if isinstance(other, DrainResult):
            self.read += other.read
            self.batches += other.batches
        return self


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ProcessThread:
    """A daemon thread running `target`: started when first needed, and again after a fork
    (a forked child has none of its parent's threads)."""

    def __init__(self, target, *, name: str) -> None:
        self._target = target
        self._name = name
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def ensure_started(self) -> None:
        if self._running():
            return
        with self._lock:
            if self._running():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
            self._thread.start()


class RedisBuffer:
    def __init__(self, url: str, *, stream: str = STREAM, group: str = GROUP) -> None:
        import redis

        self.stream = stream
        self.group = group
        self.client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=0.5, health_check_interval=30
        )
        self._group_ready = False

    def push(self, record: UsageRecord) -> None:
        self.push_many([record])

    def push_many(self, records: list[UsageRecord]) -> None:
        """Append a batch as one entry (one XADD of one msgpack payload)."""
        self.client.xadd(self.stream, {wire.PACKED: wire.pack(records)})

    def ensure_group(self) -> None:
        import redis

        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def pending_count(self) -> int:
        self.ensure_group()
        info = self.client.xpending(self.stream, self.group)
        return int(info["pending"])

    def backlog(self) -> int:
        """Entries not yet applied: never delivered plus delivered but unacknowledged."""
        self.ensure_group()
        return int(self.client.xlen(self.stream))

    def _read(self, consumer: str, count: int, claim_idle_ms: int, block_ms: int | None = None):
        # Entries a dead writer left pending come first, then new ones.
        _, claimed, *_ = self.client.xautoclaim(
            self.stream,
            self.group,
            consumer,
            min_idle_time=claim_idle_ms,
            start_id="0-0",
            count=count,
        )
        if claimed:
            return claimed
        response = self.client.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return response[0][1] if response else []

    def drain(
        self,
        *,
        consumer: str | None = None,
        batch_size: int = 10,
        max_batches: int | None = None,
        claim_idle_ms: int = 30_000,
        block_ms: int | None = None,
        apply=apply_records,
    ) -> DrainResult:
        """Apply buffered records batch by batch until the stream is empty (or max_batches).

        A batch is up to `batch_size` stream entries (each up to the forwarder's 2,000
        records), applied in one transaction, then acknowledged and deleted. `block_ms`: how
        long an empty stream is waited on before returning.
        """
        self.ensure_group()
        consumer = consumer or consumer_name()
        result = DrainResult()
        while max_batches is None or result.batches < max_batches:
            entries = self._read(consumer, batch_size, claim_idle_ms, block_ms)
            if not entries:
                break
            records: list[tuple] = []  # fields in records.FIELDS order
            for entry_id, fields in entries:
                try:
                    records.extend(wire.unpack(fields or {}))
                except ValueError:
                    logger.error("dropping a malformed usage entry %r", entry_id)
            result += apply(records)  # raises on a database error: entries stay pending
            ids = [entry_id for entry_id, _ in entries]
            pipe = self.client.pipeline()
            pipe.xack(self.stream, self.group, *ids)
            pipe.xdel(self.stream, *ids)
            pipe.execute()
            result.read += len(entries)
            result.batches += 1
        return result


class LocalBuffer:
    """An in-process queue with a background writer thread (used when Redis is unavailable)."""

    def __init__(self, *, batch_size: int = 500, interval: float = 0.2) -> None:
        self.batch_size = batch_size
        self.interval = interval
        self._queue: collections.deque[UsageRecord] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one flusher at a time
        self._writer = ProcessThread(self._run, name="ragllm-usage-writer")
        self._stopping = False

    def put(self, record: UsageRecord) -> None:
        self._queue.append(record)
        if getattr(settings, "USAGE_WRITER_THREAD", True):
            self._writer.ensure_started()
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()

    def _run(self) -> None:
        backoff = self.interval
        while not self._stopping:
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                self.flush()
                backoff = self.interval
            except Exception:  # database down: keep the events, retry with backoff
                logger.warning("usage writer cannot reach the database; retrying", exc_info=True)
                backoff = min(backoff * 2, 5.0)
            finally:
                from django.db import connection

                connection.close_if_unusable_or_obsolete()

    def flush(self) -> ApplyResult:
        """Apply everything queued now, in batches; on failure the batch goes back in front."""
        total = ApplyResult()
        with self._lock:
            while self._queue:
                batch: list[UsageRecord] = []
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                try:
                    total += apply_records(batch)
                except Exception:
                    self._queue.extendleft(reversed(batch))
                    raise
        return total

    def close(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            # flush() takes the lock: it first waits for a batch the writer thread has taken
            # off the queue and is applying (an empty queue does not mean all is written; the
            # thread is a daemon, killed at exit), and sees a failed one put back.
            try:
                self.flush()
            except Exception:
                logger.error("usage writer: database unavailable at shutdown; retrying")
                time.sleep(0.5)
            if not self._queue or time.monotonic() >= deadline:
                break
        if self._queue:
            logger.error("usage writer: %d event(s) could not be written", len(self._queue))


_local: LocalBuffer | None = None
_redis: RedisBuffer | None = None
_redis_url: str | None = None
_state_lock = threading.Lock()


def local_buffer() -> LocalBuffer:
    global _local
    if _local is None:
        with _state_lock:
            if _local is None:
                _local = LocalBuffer()
                atexit.register(_local.close)
    return _local


def redis_buffer() -> RedisBuffer | None:
    """The Redis stream buffer when USAGE_REDIS_URL (default REDIS_URL) is set, else None."""
    global _redis, _redis_url
    url = getattr(settings, "USAGE_REDIS_URL", "") or ""
    if not url:
        return None
    if _redis is None or _redis_url != url:
        with _state_lock:
            if _redis is None or _redis_url != url:
                _redis = RedisBuffer(url)
                _redis_url = url
    return _redis
