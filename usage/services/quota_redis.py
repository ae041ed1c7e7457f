"""Quota counters in Redis: one atomic script reserves under every rule of a call, one settles.

Each counter is a hash `rq:{scope}:{scope_id}:{limit}:{window start}` with `u` (spent: settled
plus reserved), `h` (reserved by calls in flight), `a` (alerts fired, 0-3) and `t` (last
change, ms). A counter that does not exist yet is seeded from the ledger (the reserve script
says which) and expires a day after its window ends. `quota_reconcile` brings counters back
to the ledger (beat job). Any Redis error is raised as QuotaStoreDown: the caller falls back to
the database path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections import deque
from datetime import datetime, timedelta

import hiredis
from django.conf import settings

from ..quotas import QuotaRule, window_end

logger = logging.getLogger(__name__)

PREFIX = "rq:"

# KEYS: counters. ARGV: now (ms), then limit and amount per key. Checks every counter first
# and changes nothing unless all pass: {0} taken, {-1, i} counter i missing (seed it),
# {-2, i, used} counter i would pass its limit.
_RESERVE = """
local n = #KEYS
for i = 1, n do
  local used = redis.call('HGET', KEYS[i], 'u')
  if not used then return {-1, i} end
  if tonumber(used) + tonumber(ARGV[2 * i + 1]) > tonumber(ARGV[2 * i]) then
    return {-2, i, tonumber(used)}
  end
end
for i = 1, n do
  local amount = ARGV[2 * i + 1]
  redis.call('HINCRBY', KEYS[i], 'u', amount)
  redis.call('HINCRBY', KEYS[i], 'h', amount)
  redis.call('HSET', KEYS[i], 't', ARGV[1])
end
return {0}
"""

# KEYS: counters. ARGV: now (ms), then reserved, actual, limit per key. Returns per key
# {used after, alerts fired before, alerts fired now}; a counter gone (its window expired)
# is left alone and answers {-1, 0, 0}.
_SETTLE = """
local out = {}
for i = 1, #KEYS do
  local reserved = tonumber(ARGV[3 * i - 1])
  local actual = tonumber(ARGV[3 * i])
  local limit = tonumber(ARGV[3 * i + 1])
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local used = redis.call('HINCRBY', KEYS[i], 'u', actual - reserved)
    redis.call('HINCRBY', KEYS[i], 'h', 0 - reserved)  -- never '-0'
    redis.call('HSET', KEYS[i], 't', ARGV[1])
    local level = 0
    if limit <= 0 then
      if used > 0 then level = 3 end
    else
      if used * 100 >= 50 * limit then level = 1 end
      if used * 100 >= 80 * limit then level = 2 end
      if used >= limit then level = 3 end
    end
    local before = tonumber(redis.call('HGET', KEYS[i], 'a') or '0')
    if level > before then redis.call('HSET', KEYS[i], 'a', level) else level = before end
    out[i] = {used, before, level}
  else
    out[i] = {-1, 0, 0}
  end
end
return out
"""

# KEYS[1]: a counter. ARGV: seed, now (ms), expire-at (s, 0: never). Creates it if missing.
_SEED = """
if redis.call('HSETNX', KEYS[1], 'u', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'h', 0, 'a', 0, 't', ARGV[2])
  if tonumber(ARGV[3]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
end
return redis.call('HGET', KEYS[1], 'u')
"""

# KEYS[1]: a counter. ARGV: the ledger's sum, now (ms), idle (ms), exact (1: nothing waits to
# be written to the ledger). Raises the settled part to the ledger; a counter idle that long
# with nothing waiting is set to the ledger exactly (dropping reservations of dead calls).
_RECONCILE = """
local u = redis.call('HGET', KEYS[1], 'u')
if not u then return -1 end
u = tonumber(u)
local h = tonumber(redis.call('HGET', KEYS[1], 'h') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local ledger = tonumber(ARGV[1])
if ARGV[4] == '1' and tonumber(ARGV[2]) - t >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'u', ledger, 'h', 0)
  return ledger
end
if u - h < ledger then
  redis.call('HSET', KEYS[1], 'u', ledger + h)
  return ledger + h
end
return u
"""


class QuotaStoreDown(Exception):
    """Redis did not answer: use the database path."""


class MissingCounter(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


class OverLimit(Exception):
    def __init__(self, index: int, used: int) -> None:
        self.index = index
        self.used = used


def counter_key(rule: QuotaRule, start: datetime) -> str:
    return f"{PREFIX}{rule.scope}:{rule.scope_id}:{rule.quota}:{int(start.timestamp())}"


def parse_key(key: str) -> tuple[str, str, int, datetime]:
    scope, scope_id, limit, start = key[len(PREFIX) :].rsplit(":", 3)
    from datetime import UTC

    return scope, scope_id, int(limit), datetime.fromtimestamp(int(start), tz=UTC)


def _now_ms() -> int:
    return int(time.time() * 1000)


# How long a deferred command (a settlement) may wait to share a write with the next one.
DEFER_SECONDS = 0.002


class _Pipe(asyncio.Protocol):
    """One Redis connection of an event loop, commands pipelined: each is written at once and
    its future answered in order as replies arrive (no lock, no thread, one connection for
    all of the loop's calls).

    A deferred command (`send(..., defer=True)`: settlements, which nobody waits for) is
    written with the next command sent, or after DEFER_SECONDS at the latest: one write, one
    wake-up of Redis and one read of both replies instead of two of each, which is most of
    what a settlement costs the loop when calls come one after another."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.deferred: list[bytes] = []
        self._flush_at: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        try:
            reader.feed(data)
            answer = reader.gets()
            while answer is not False:
                future = waiting.popleft()
                if not future.done():
                    future.set_result(answer)
                answer = reader.gets()
        except (hiredis.ProtocolError, IndexError) as exc:
            self._fail(exc)

    def connection_lost(self, exc) -> None:
        self._fail(exc or OSError("connection closed by Redis"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        self.deferred.clear()
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(OSError(str(exc) or type(exc).__name__))

    def send(self, *command, timeout: float = 1.0, defer: bool = False) -> asyncio.Future:
        """The reply's future; it fails with TimeoutError after `timeout` seconds (a late reply
        still pops it, so the replies after it stay matched to their commands). Commands go
        out in the order they are sent, deferred ones included."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append(future)
        packed = hiredis.pack_command(command)
        if defer:
            self.deferred.append(packed)
            if self._flush_at is None:
                self._flush_at = loop.call_later(DEFER_SECONDS, self.flush)
        elif self.deferred:
            self.deferred.append(packed)
            self.flush()
        else:
            self.transport.write(packed)
        timer = loop.call_later(timeout, _expire, future)
        future.add_done_callback(lambda _: timer.cancel())
        return future

    def flush(self) -> None:
        """Write the deferred commands now."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if self.deferred and not self.closed:
            data = b"".join(self.deferred)
            self.deferred.clear()
            self.transport.write(data)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError("Redis did not answer in time"))


async def _open_pipe(url: str) -> _Pipe:
    """A pipe to `url`, authenticated, its database selected (redis://, rediss://, unix://)."""
    from redis.connection import parse_url

    options = parse_url(url)
    loop = asyncio.get_running_loop()
    if "path" in options:
        _, pipe = await loop.create_unix_connection(_Pipe, options["path"])
    else:
        ssl = None
        if url.startswith("rediss://"):
            import ssl as ssl_module

            ssl = ssl_module.create_default_context()
        _, pipe = await loop.create_connection(
            _Pipe, options.get("host", "localhost"), int(options.get("port", 6379)), ssl=ssl
        )
    setup = []
    if options.get("password"):
        user = options.get("username")
        setup.append(("AUTH", user, options["password"]) if user else ("AUTH", options["password"]))
    if options.get("db"):
        setup.append(("SELECT", int(options["db"])))
    for command in setup:
        answer = await pipe.send(*command)
        if isinstance(answer, hiredis.ReplyError):
            pipe._fail(answer)
            raise OSError(f"Redis refused {command[0]}: {answer}")
    return pipe


class RedisQuotaStore:
    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self._pipes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

        self.client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=0.5, health_check_interval=30
        )
        self._reserve = self.client.register_script(_RESERVE)
        self._settle = self.client.register_script(_SETTLE)
        self._seed = self.client.register_script(_SEED)
        self._reconcile = self.client.register_script(_RECONCILE)
        self._local = threading.local()

    def _run(self, script, keys, args):
        """EVALSHA on this thread's own connection, loading the script if Redis lost it.

        The connection is opened (and authenticated, TLS, database selected) by redis-py,
        then kept by the thread and spoken to directly: the command packed by hiredis, the
        answer parsed by a hiredis reader. That is a fifth of redis-py's client time per
        command, which is most of a reservation's cost.
        """
        import redis

        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid != os.getpid():
            conn = None  # inherited through a fork: the parent's socket is not ours
        try:
            if conn is None:
                conn = self.client.connection_pool.make_connection()
                conn.connect()
                local.conn, local.pid, local.reader = conn, os.getpid(), hiredis.Reader()
            answer = self._call(conn._sock, local.reader, script.sha, keys, args)
            if isinstance(answer, hiredis.ReplyError) and str(answer).startswith("NOSCRIPT"):
                script.sha = self.client.script_load(script.script)
                answer = self._call(conn._sock, local.reader, script.sha, keys, args)
        except (redis.RedisError, OSError, hiredis.ProtocolError) as exc:
            if conn is not None:
                conn.disconnect()
            local.conn = None
            raise QuotaStoreDown(str(exc) or type(exc).__name__) from exc
        if isinstance(answer, hiredis.ReplyError):
            raise QuotaStoreDown(f"quota script failed: {answer}")
        return answer

    @staticmethod
    def _call(sock, reader, sha: str, keys, args):
        sock.sendall(hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args)))
        answer = reader.gets()
        while answer is False:
            data = sock.recv(65536)
            if not data:
                raise OSError("connection closed by Redis")
            reader.feed(data)
            answer = reader.gets()
        return answer

    async def _arun(self, script, keys, args, *, defer: bool = False):
        """_run on the running event loop, over its pipe (opened on first use); `defer`: the
        command may wait for the next one to share its write (_Pipe.send)."""
        loop = asyncio.get_running_loop()
        pipe = self._pipes.get(loop)
        try:
            if pipe is None or pipe.closed:
                pipe = self._pipes[loop] = await asyncio.wait_for(_open_pipe(self.url), 0.5)
            command = ("EVALSHA", script.sha, len(keys), *keys, *args)
            try:
                answer = await pipe.send(*command, defer=defer)
            except asyncio.CancelledError:
                pipe.flush()  # cancelled (its loop closing, say): the command still goes out
                raise
            if isinstance(answer, hiredis.ReplyError) and str(answer).startswith("NOSCRIPT"):
                sha = await pipe.send("SCRIPT", "LOAD", script.script)
                script.sha = sha.decode() if isinstance(sha, bytes) else sha
                command = ("EVALSHA", script.sha, *command[2:])
                answer = await pipe.send(*command)
        except (OSError, TimeoutError, hiredis.ProtocolError) as exc:
            if pipe is not None:
                pipe._fail(exc)  # a late reply must not answer the next command
            raise QuotaStoreDown(str(exc) or type(exc).__name__) from exc
        if isinstance(answer, hiredis.ReplyError):
            raise QuotaStoreDown(f"quota script failed: {answer}")
        return answer

    @staticmethod
    def _reserve_args(limits: list[int], amounts: list[int]) -> list[int]:
        args: list[int] = [_now_ms()]
        for limit, amount in zip(limits, amounts, strict=True):
            args += [limit, amount]
        return args

    def reserve(self, keys: list[str], limits: list[int], amounts: list[int]) -> None:
        """Take `amounts` under every counter, or nothing (MissingCounter, OverLimit)."""
        self._reserved(self._run(self._reserve, keys, self._reserve_args(limits, amounts)))

    async def areserve(self, keys: list[str], limits: list[int], amounts: list[int]) -> None:
        """reserve() on the running event loop, without a thread."""
        args = self._reserve_args(limits, amounts)
        self._reserved(await self._arun(self._reserve, keys, args))

    @staticmethod
    def _reserved(answer) -> None:
        if answer[0] == -1:
            raise MissingCounter(int(answer[1]) - 1)
        if answer[0] == -2:
            raise OverLimit(int(answer[1]) - 1, int(answer[2]))

    def seed(self, key: str, value: int, expire_at: datetime | None) -> int:
        expire = int(expire_at.timestamp()) if expire_at else 0
        return int(self._run(self._seed, [key], [value, _now_ms(), expire]))

    def settle(self, keys: list[str], rows: list[tuple[int, int, int]]) -> list[tuple[int, ...]]:
        """rows: (reserved, actual, limit) per key; per key (used, alerts before, after)."""
        answer = self._run(self._settle, keys, self._settle_args(rows))
        return [tuple(int(v) for v in item) for item in answer]

    async def asettle(
        self, keys: list[str], rows: list[tuple[int, int, int]]
    ) -> list[tuple[int, ...]]:
        """settle() on the running event loop, without a thread; written with the loop's next
        command (a reservation, usually) or within DEFER_SECONDS."""
        answer = await self._arun(self._settle, keys, self._settle_args(rows), defer=True)
        return [tuple(int(v) for v in item) for item in answer]

    @staticmethod
    def _settle_args(rows) -> list[int]:
        args: list[int] = [_now_ms()]
        for row in rows:
            args += list(row)
        return args

    def used(self, keys: list[str]) -> list[int | None]:
        import redis

        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "u")
            return [None if v is None else int(v) for v in pipe.execute()]
        except redis.RedisError as exc:
            raise QuotaStoreDown(str(exc)) from exc

    def reconcile(self, key: str, ledger: int, *, idle_ms: int, exact: bool) -> int:
        return int(self._run(self._reconcile, [key], [ledger, _now_ms(), idle_ms, int(exact)]))

    def counter_keys(self) -> list[str]:
        import redis

        try:
            return [k.decode() for k in self.client.scan_iter(match=f"{PREFIX}*", count=1000)]
        except redis.RedisError as exc:
            raise QuotaStoreDown(str(exc)) from exc

    def delete(self, keys: list[str]) -> None:
        if keys:
            self._run_plain(lambda: self.client.delete(*keys))

    def _run_plain(self, function):
        import redis

        try:
            return function()
        except redis.RedisError as exc:
            raise QuotaStoreDown(str(exc)) from exc


def expire_at(rule: QuotaRule, start: datetime) -> datetime | None:
    end = window_end(rule.window, start)
    return end + timedelta(days=1) if end else None


_store: RedisQuotaStore | None = None
_store_url = ""
_lock = threading.Lock()
_down_until = 0.0
RETRY_AFTER_SECONDS = 2.0  # after Redis failed, how long calls go straight to the database


def quota_store(*, even_if_down: bool = False) -> RedisQuotaStore | None:
    """The Redis store when QUOTA_REDIS_URL is set and Redis was not just found down (a
    settlement of a Redis reservation asks `even_if_down`: it has nowhere else to go)."""
    global _store, _store_url
    url = getattr(settings, "QUOTA_REDIS_URL", "") or ""
    if not url or (time.monotonic() < _down_until and not even_if_down):
        return None
    if _store is None or _store_url != url:
        with _lock:
            if _store is None or _store_url != url:
                _store, _store_url = RedisQuotaStore(url), url
    return _store


def mark_down(exc: Exception) -> None:
    """Redis failed: the database path serves quotas for the next RETRY_AFTER_SECONDS."""
    global _down_until
    if time.monotonic() >= _down_until:
        logger.warning("quota store (Redis) unavailable, using the database: %s", exc)
    _down_until = time.monotonic() + RETRY_AFTER_SECONDS


def reset_store() -> None:
    """Forget the client and any outage (tests, settings changes)."""
    global _store, _store_url, _down_until
    with _lock:
        _store, _store_url, _down_until = None, "", 0.0
