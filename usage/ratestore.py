"""Rate limit counters (usage.ratelimits' storage): sliding window counters of the `limits`
library, in Redis (one script run checks and charges every counter of a call, on the
library's key layout) or in the library's in-process MemoryStorage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "ragllm-ratelimit"
REQUESTS, TOKENS = "requests", "tokens"

# One script for checking and settling, for several calls at once. KEYS: the (previous,
# current) window keys of every counter to check, call after call, then of the counters to
# settle. ARGV: the window in ms, the number of calls, then per call its number of counters
# and (limit, cost) per counter, then a delta per counter to settle.
#
# Settling first: a positive delta is added to the current window; a negative one is taken
# from the current window, then the previous one, never below zero (the library has no
# decrement for a sliding window). Then each call in turn, as the library's
# acquire_sliding_window.lua for all of the call's counters at once: shift each window if
# due, refuse if any would pass its limit, else charge all. Returns per call its verdict,
# then (previous count, its ttl, current count, its ttl) per counter.
_SCRIPT = """
local expiry = tonumber(ARGV[1])
local calls = tonumber(ARGV[2])
local a, k = 3, 1
local checks = {}
for c = 1, calls do
  local n = tonumber(ARGV[a])
  checks[c] = {a + 1, k, n}
  a = a + 1 + 2 * n
  k = k + 2 * n
end
while k < #KEYS do
  local pk, ck, delta = KEYS[k], KEYS[k + 1], tonumber(ARGV[a])
  if delta > 0 then
    if redis.call('exists', ck) == 1 then
      redis.call('incrby', ck, delta)
    else
      redis.call('set', ck, delta, 'PX', expiry * 2)
    end
  else
    local owed = -delta
    for _, key in ipairs({ck, pk}) do
      local have = tonumber(redis.call('get', key)) or 0
      local take = math.min(have, owed)
      if take > 0 then redis.call('decrby', key, take) end
      owed = owed - take
    end
  end
  k, a = k + 2, a + 1
end
local out = {}
for c = 1, calls do
  local first_arg, first_key, n = checks[c][1], checks[c][2], checks[c][3]
  local allowed = 1
  local state = {}
  for i = 1, n do
    local pk, ck = KEYS[first_key + 2 * i - 2], KEYS[first_key + 2 * i - 1]
    local limit = tonumber(ARGV[first_arg + 2 * i - 2])
    local cost = tonumber(ARGV[first_arg + 2 * i - 1])
    local cttl = tonumber(redis.call('pttl', ck))
    if cttl > 0 and cttl < expiry then
      redis.call('rename', ck, pk)
      redis.call('set', ck, 0, 'PX', cttl + expiry)
    end
    local pc = tonumber(redis.call('get', pk)) or 0
    local pttl = math.max(tonumber(redis.call('pttl', pk)), 0)
    local cc = tonumber(redis.call('get', ck)) or 0
    cttl = math.max(tonumber(redis.call('pttl', ck)), 0)
    if math.floor(pc * pttl / expiry) + cc + cost > limit then allowed = 0 end
    state[i] = {pc, pttl, cc, cttl, cost}
  end
  out[#out + 1] = allowed
  for i = 1, n do
    local ck, cost = KEYS[first_key + 2 * i - 1], state[i][5]
    if allowed == 1 and cost > 0 then
      if redis.call('exists', ck) == 1 then
        redis.call('incrby', ck, cost)
      else
        redis.call('set', ck, cost, 'PX', expiry * 2)
        state[i][4] = expiry * 2
      end
      state[i][3] = state[i][3] + cost
    end
    for j = 1, 4 do out[#out + 1] = state[i][j] end
  end
end
return out
"""

# Settlements made on an event loop wait this long for the next check to carry them (no
# round trip of their own under load), else are sent by themselves.
SETTLE_DELAY_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a limit belongs to: `tenant:<hex>` or `key:<id>`, with its RPM and TPM."""

    name: str
    label: str  # for messages: "tenant", "API key"
    rpm: int | None
    tpm: int | None


@lru_cache(maxsize=16384)
def storage_key(scope: Scope, kind: str, limit: int) -> str:
    """The counter's key as the library names it: LIMITER/ragllm/<scope>/<kind>/<limit>/1/minute."""
    return RateLimitItemPerMinute(limit).key_for("ragllm", scope.name, kind)


@dataclass(frozen=True, slots=True)
class CounterState:
    scope: Scope
    kind: str
    limit: int
    cost: int
    previous: int
    previous_ttl_ms: float
    current: int
    current_ttl_ms: float

    @property
    def used(self) -> int:
        window = WINDOW_SECONDS * 1000
        return math.floor(self.previous * self.previous_ttl_ms / window) + self.current

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def reset_seconds(self) -> float:
        """Until the counter is back to its full limit."""
        if self.current:
            return self.current_ttl_ms / 1000
        return self.previous_ttl_ms / 1000 if self.previous else 0.0

    def fits(self) -> bool:
        return self.used + self.cost <= self.limit

    def retry_after(self) -> float | None:
        """Seconds until `cost` fits (None: never, the cost is over the limit itself)."""
        if self.cost > self.limit:
            return None
        window = WINDOW_SECONDS * 1000
        room = self.limit - self.cost - self.current
        if room >= 0:  # the previous window's share has to fall to `room`
            wait = self.previous_ttl_ms - room * window / self.previous if self.previous else 0
        else:  # the current window has to become the previous one and fade
            shift = max(0.0, self.current_ttl_ms - window)
            wait = shift + window - (self.limit - self.cost) * window / self.current
        return max(0.0, wait) / 1000


def _window(raw: list[int], offset: int) -> tuple[int, float, int, float]:
    return int(raw[offset]), float(raw[offset + 1]), int(raw[offset + 2]), float(raw[offset + 3])


class _LoopState:
    """An event loop's script, the checks waiting to be sent and whether a batch is out."""

    def __init__(self, script) -> None:
        self.script = script
        self.queue: list[tuple[list, asyncio.Future]] = []
        self.sending = False
        self.flush_scheduled = False


class RedisBackend:
    """The counters in Redis, through the `limits` library's storages and key layout.

    On an event loop, one script run is out at a time: checks made while it is (other
    requests of this process) wait for it and go together in the next one, with the
    settlements made meanwhile; under load a process sends one run for many calls, and
    without load each call is sent at once."""

    def __init__(self, url: str) -> None:
        from limits.storage import RedisStorage

        self.url = url
        self.sync = RedisStorage(url, key_prefix=KEY_PREFIX)
        self._script = self.sync.get_connection().register_script(_SCRIPT)
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._keys: dict[str, tuple[str, str]] = {}
        # Settlements waiting for the next script run on an event loop: window keys -> delta.
        self._pending: dict[tuple[str, str], int] = {}

    def _redis_keys(self, scope: Scope, kind: str, limit: int) -> tuple[str, str]:
        key = storage_key(scope, kind, limit)
        keys = self._keys.get(key)
        if keys is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            current = self.sync.prefixed_key(self.sync._current_window_key(key))
            keys = self._keys[key] = (f"{current}/-1", current)
        return keys

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            from limits.aio.storage import RedisStorage

            storage = RedisStorage(
                f"async+{self.url}", implementation="redispy", key_prefix=KEY_PREFIX
            )
            script = storage.bridge.get_connection().register_script(_SCRIPT)
            state = self._loops[loop] = _LoopState(script)
        return state

    def _args(self, calls, settlements=None):
        keys, args = [], [WINDOW_SECONDS * 1000, len(calls)]
        for charges in calls:
            args.append(len(charges))
            for scope, kind, limit, cost in charges:
                keys.extend(self._redis_keys(scope, kind, limit))
                args.extend((limit, cost))
        for window_keys, delta in (settlements or {}).items():
            keys.extend(window_keys)
            args.append(delta)
        return keys, args

    @staticmethod
    def _results(calls, raw) -> list[tuple[bool, list[CounterState]]]:
        results, at = [], 0
        for charges in calls:
            states = [
                CounterState(scope, kind, limit, cost, *_window(raw, at + 1 + 4 * i))
                for i, (scope, kind, limit, cost) in enumerate(charges)
            ]
            results.append((bool(raw[at]), states))
            at += 1 + 4 * len(charges)
        return results

    def acquire(self, charges) -> tuple[bool, list[CounterState]]:
        keys, args = self._args([charges])
        return self._results([charges], self._script(keys=keys, args=args))[0]

    async def aacquire(self, charges) -> tuple[bool, list[CounterState]]:
        state = self._loop_state()
        future = asyncio.get_running_loop().create_future()
        state.queue.append((charges, future))
        if not state.sending:
            self._send_soon(state)
        return await future

    def _send_soon(self, state: _LoopState) -> None:
        state.sending = True
        task = asyncio.get_running_loop().create_task(self._send(state))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    async def _send(self, state: _LoopState) -> None:
        """Send what waits, batch after batch, until nothing does."""
        try:
            while state.queue or self._pending:
                batch, state.queue = state.queue, []
                pending, self._pending = self._pending, {}
                calls = [charges for charges, _ in batch]
                try:
                    keys, args = self._args(calls, pending)
                    results = self._results(calls, await state.script(keys=keys, args=args))
                except Exception as exc:
                    if not batch:
                        logger.warning("rate limit settlements lost: %s", exc)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            state.sending = False

    def _deltas(self, deltas) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for state, delta in deltas:
            window_keys = self._redis_keys(state.scope, state.kind, state.limit)
            out[window_keys] = out.get(window_keys, 0) + delta
        return out

    def adjust(self, deltas) -> None:
        keys, args = self._args([], self._deltas(deltas))
        self._script(keys=keys, args=args)

    async def aadjust(self, deltas) -> None:
        """Queue the settlement for the next script run on this loop (sent alone if none
        comes within SETTLE_DELAY_SECONDS)."""
        for window_keys, delta in self._deltas(deltas).items():
            self._pending[window_keys] = self._pending.get(window_keys, 0) + delta
        state = self._loop_state()
        if not state.flush_scheduled:
            state.flush_scheduled = True
            loop = asyncio.get_running_loop()
            loop.call_later(SETTLE_DELAY_SECONDS, self._flush_due, state)

    def _flush_due(self, state: _LoopState) -> None:
        state.flush_scheduled = False
        if self._pending and not state.sending:
            self._send_soon(state)

    async def aflush(self) -> None:
        """Send the settlements waiting on this loop now."""
        state = self._loop_state()
        if self._pending and not state.sending:
            state.sending = True
            await self._send(state)


_tasks: set[asyncio.Task] = set()


class MemoryBackend:
    """The counters in this process (the library's MemoryStorage): per process only."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self._lock = threading.Lock()

    def _window(self, key: str) -> tuple[int, float, int, float]:
        previous, previous_ttl, current, current_ttl = self.storage.get_sliding_window(
            key, WINDOW_SECONDS
        )
        return previous, previous_ttl * 1000, current, current_ttl * 1000

    def acquire(self, charges) -> tuple[bool, list[CounterState]]:
        with self._lock:
            states = [
                CounterState(*charge, *self._window(storage_key(*charge[:3]))) for charge in charges
            ]
            allowed = all(s.fits() for s in states)
            if allowed:
                for s in states:
                    if s.cost:
                        key = storage_key(s.scope, s.kind, s.limit)
                        self.storage.acquire_sliding_window_entry(
                            key, s.limit, WINDOW_SECONDS, s.cost
                        )
                states = [
                    CounterState(
                        s.scope, s.kind, s.limit, s.cost,
                        *self._window(storage_key(s.scope, s.kind, s.limit)),
                    )
                    for s in states
                ]  # fmt: skip
        return allowed, states

    async def aacquire(self, charges) -> tuple[bool, list[CounterState]]:
        return self.acquire(charges)

    def adjust(self, deltas) -> None:
        with self._lock:
            for state, delta in deltas:
                key = storage_key(state.scope, state.kind, state.limit)
                previous, current = self.storage.sliding_window_keys(
                    key, WINDOW_SECONDS, time.time()
                )
                if delta > 0:
                    self.storage.incr(current, 2 * WINDOW_SECONDS, delta)
                    continue
                owed = -delta
                for window in (current, previous):
                    take = min(self.storage.get(window), owed)
                    if take > 0:
                        self.storage.decr(window, take)
                    owed -= take

    async def aadjust(self, deltas) -> None:
        self.adjust(deltas)
