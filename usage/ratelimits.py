"""Rate limits (issue 11): requests and tokens per minute, per tenant and per application key.

Each limit is a sliding window counter of the `limits` library (a counter per minute, the
previous minute's count weighted by the part of it still inside the last 60 s), kept in
Redis (RATELIMIT_REDIS_URL, by default REDIS_URL: shared by every process) or, without
Redis, in the library's in-process MemoryStorage (each process then counts on its own).

A call checks every limit that applies to it at once: its tenant's RPM and TPM and, through
the gateway, its key's. In Redis that is one script run, one round trip, atomic over all the
counters (the library runs one script per limit and another to read each one's state for the
headers: eight round trips for four limits). The script keeps the library's key layout and
arithmetic, so the library's own readers (`SlidingWindowCounterRateLimiter.get_window_stats`)
see the same counts. Either every counter is charged or none is.

TPM is charged before the call with the estimate the quota uses (prompt tokens plus the
completion allowance, `max_tokens` or QUOTA_COMPLETION_RESERVE) and settled after it with the
real usage: the difference is added, or given back (the library cannot decrement a sliding
window in Redis, so `_SETTLE` does it; what the previous minute's counter holds, the window
having moved on meanwhile, is given back from it too). A request refused later for its quota
gives back its request and its tokens.

If Redis cannot be reached the call goes ahead unlimited (a warning is logged): rate limits
protect the providers' capacity, not money; quotas and budgets keep their own checks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage

from providers.errors import RateLimitError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "ragllm-ratelimit"
REQUESTS, TOKENS = "requests", "tokens"

# KEYS: (previous, current) window keys per counter; ARGV: window in ms, then (limit, cost)
# per counter. The library's acquire_sliding_window.lua, for all counters at once: shift
# each window if due, refuse if any would pass its limit, else charge all. Returns the
# verdict, then (previous count, its ttl, current count, its ttl) per counter after it.
_ACQUIRE = """
local expiry = tonumber(ARGV[1])
local n = #KEYS / 2
local out = {1}
local state = {}
for i = 1, n do
  local pk, ck = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, cost = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local cttl = tonumber(redis.call('pttl', ck))
  if cttl > 0 and cttl < expiry then
    redis.call('rename', ck, pk)
    redis.call('set', ck, 0, 'PX', cttl + expiry)
  end
  local pc = tonumber(redis.call('get', pk)) or 0
  local pttl = math.max(tonumber(redis.call('pttl', pk)), 0)
  local cc = tonumber(redis.call('get', ck)) or 0
  cttl = math.max(tonumber(redis.call('pttl', ck)), 0)
  if math.floor(pc * pttl / expiry) + cc + cost > limit then out[1] = 0 end
  state[i] = {pc, pttl, cc, cttl}
end
for i = 1, n do
  local ck, cost = KEYS[2 * i], tonumber(ARGV[2 * i + 1])
  if out[1] == 1 and cost > 0 then
    if redis.call('exists', ck) == 1 then
      redis.call('incrby', ck, cost)
    else
      redis.call('set', ck, cost, 'PX', expiry * 2)
      state[i][4] = expiry * 2
    end
    state[i][3] = state[i][3] + cost
  end
  for _, v in ipairs(state[i]) do out[#out + 1] = v end
end
return out
"""

# KEYS: (previous, current) per counter; ARGV: window in ms, then a delta per counter. A
# positive delta is added to the current window; a negative one is taken from the current
# window, then the previous one, never below zero.
_SETTLE = """
local expiry = tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local pk, ck = KEYS[2 * i - 1], KEYS[2 * i]
  local delta = tonumber(ARGV[i + 1])
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
end
return 1
"""


class RateLimitExceeded(RateLimitError):
    """A tenant's or key's own rate limit refused the call before the provider was called."""

    def __init__(self, message: str, *, kind: str, retry_after: float | None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.kind = kind  # "requests" or "tokens"


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a limit belongs to: `tenant:<hex>` or `key:<id>`, with its RPM and TPM."""

    name: str
    label: str  # for messages: "tenant", "API key"
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit a call is held to."""

    scopes: tuple[Scope, ...]

    @property
    def counts_tokens(self) -> bool:
        return any(scope.tpm is not None for scope in self.scopes)

    def counters(self) -> list[tuple[Scope, str, int]]:
        out = []
        for scope in self.scopes:
            if scope.rpm is not None:
                out.append((scope, REQUESTS, scope.rpm))
            if scope.tpm is not None:
                out.append((scope, TOKENS, scope.tpm))
        return out


def limits_for(
    *,
    tenant_id: str,
    tenant_rpm: int | None,
    tenant_tpm: int | None,
    key_id: int | None = None,
    key_rpm: int | None = None,
    key_tpm: int | None = None,
) -> Limits | None:
    """The limits of a call, or None when none applies."""
    scopes = []
    if tenant_rpm is not None or tenant_tpm is not None:
        scopes.append(Scope(f"tenant:{tenant_id}", "tenant", tenant_rpm, tenant_tpm))
    if key_id is not None and (key_rpm is not None or key_tpm is not None):
        scopes.append(Scope(f"key:{key_id}", "API key", key_rpm, key_tpm))
    return Limits(tuple(scopes)) if scopes else None


@lru_cache(maxsize=16384)
def storage_key(scope: Scope, kind: str, limit: int) -> str:
    """The counter's key as the library names it: LIMITER/ragllm/<scope>/<kind>/<limit>/1/minute."""
    return RateLimitItemPerMinute(limit).key_for("ragllm", scope.name, kind)


# --- what a check found ----------------------------------------------------------------------


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


@dataclass(slots=True)
class Verdict:
    allowed: bool
    states: list[CounterState]

    def tightest(self, kind: str) -> CounterState | None:
        states = [s for s in self.states if s.kind == kind]
        return min(states, key=lambda s: (s.remaining, -s.reset_seconds), default=None)

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the tightest request and token limits."""
        headers = {}
        for kind in (REQUESTS, TOKENS):
            state = self.tightest(kind)
            if state is not None:
                headers[f"x-ratelimit-limit-{kind}"] = str(state.limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(state.remaining)
                headers[f"x-ratelimit-reset-{kind}"] = duration(state.reset_seconds)
        return headers

    def refusal(self) -> RateLimitExceeded:
        refused = [s for s in self.states if not s.fits()]
        waits = [s.retry_after() for s in refused]
        state = refused[0]
        retry = None if None in waits else max(waits)
        unit = "RPM" if state.kind == REQUESTS else "TPM"
        per = "requests per min" if state.kind == REQUESTS else "tokens per min"
        message = (
            f"Rate limit reached for the {state.scope.label}'s {per} ({unit}): Limit "
            f"{state.limit}, Used {state.used}, Requested {state.cost}."
        )
        if retry is None:
            message += " The request is larger than the limit itself; send a smaller one."
        else:
            message += f" Please try again in {duration(retry)}."
        return RateLimitExceeded(message, kind=state.kind, retry_after=retry)


def duration(seconds: float) -> str:
    """OpenAI's duration format: "20ms", "1s", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms" if seconds > 0 else "0s"
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


# --- storages --------------------------------------------------------------------------------


@dataclass
class Grant:
    """What one call holds: the counters it charged and the tokens it was charged."""

    limits: Limits
    tokens: int
    verdict: Verdict
    settled: bool = field(default=False)

    def deltas(self, *, requests: int, tokens: int) -> list[tuple[CounterState, int]]:
        return [
            (s, requests if s.kind == REQUESTS else tokens)
            for s in self.verdict.states
            if (requests if s.kind == REQUESTS else tokens)
        ]


def _window(raw: list[int], offset: int) -> tuple[int, float, int, float]:
    return int(raw[offset]), float(raw[offset + 1]), int(raw[offset + 2]), float(raw[offset + 3])


class RedisBackend:
    """The counters in Redis, through the `limits` library's storages and key layout."""

    def __init__(self, url: str) -> None:
        from limits.storage import RedisStorage

        self.url = url
        self.sync = RedisStorage(url, key_prefix=KEY_PREFIX)
        connection = self.sync.get_connection()
        self._acquire = connection.register_script(_ACQUIRE)
        self._settle = connection.register_script(_SETTLE)
        self._async: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._keys: dict[str, tuple[str, str]] = {}

    def _redis_keys(self, key: str) -> tuple[str, str]:
        keys = self._keys.get(key)
        if keys is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            current = self.sync.prefixed_key(self.sync._current_window_key(key))
            keys = self._keys[key] = (f"{current}/-1", current)
        return keys

    def _scripts_for_loop(self):
        loop = asyncio.get_running_loop()
        scripts = self._async.get(loop)
        if scripts is None:
            from limits.aio.storage import RedisStorage

            storage = RedisStorage(
                f"async+{self.url}", implementation="redispy", key_prefix=KEY_PREFIX
            )
            connection = storage.bridge.get_connection()
            scripts = (connection.register_script(_ACQUIRE), connection.register_script(_SETTLE))
            self._async[loop] = scripts
        return scripts

    def _args(self, charges):
        keys, args = [], [WINDOW_SECONDS * 1000]
        for scope, kind, limit, cost in charges:
            keys.extend(self._redis_keys(storage_key(scope, kind, limit)))
            args.extend((limit, cost))
        return keys, args

    @staticmethod
    def _verdict(charges, raw) -> Verdict:
        states = [
            CounterState(scope, kind, limit, cost, *_window(raw, 1 + 4 * i))
            for i, (scope, kind, limit, cost) in enumerate(charges)
        ]
        return Verdict(bool(raw[0]), states)

    def acquire(self, charges) -> Verdict:
        keys, args = self._args(charges)
        return self._verdict(charges, self._acquire(keys=keys, args=args))

    async def aacquire(self, charges) -> Verdict:
        keys, args = self._args(charges)
        return self._verdict(charges, await self._scripts_for_loop()[0](keys=keys, args=args))

    def _settle_args(self, deltas):
        keys, args = [], [WINDOW_SECONDS * 1000]
        for state, delta in deltas:
            keys.extend(self._redis_keys(storage_key(state.scope, state.kind, state.limit)))
            args.append(delta)
        return keys, args

    def adjust(self, deltas) -> None:
        keys, args = self._settle_args(deltas)
        self._settle(keys=keys, args=args)

    async def aadjust(self, deltas) -> None:
        keys, args = self._settle_args(deltas)
        await self._scripts_for_loop()[1](keys=keys, args=args)


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

    def acquire(self, charges) -> Verdict:
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
        return Verdict(allowed, states)

    async def aacquire(self, charges) -> Verdict:
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


_backend: RedisBackend | MemoryBackend | None = None
_backend_lock = threading.Lock()


def backend() -> RedisBackend | MemoryBackend:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                url = settings.RATELIMIT_REDIS_URL
                _backend = RedisBackend(url) if url else MemoryBackend()
    return _backend


# --- checking a call -------------------------------------------------------------------------


def _charges(limits: Limits, tokens: int, requests: int = 1):
    return [
        (scope, kind, limit, requests if kind == REQUESTS else tokens)
        for scope, kind, limit in limits.counters()
    ]


_failures_logged_at = 0.0


def _unavailable(exc: Exception) -> None:
    global _failures_logged_at
    now = time.monotonic()
    if now - _failures_logged_at > 10:
        _failures_logged_at = now
        logger.warning("rate limits not checked: their storage failed (%s)", exc)


def _granted(limits: Limits, tokens: int, verdict: Verdict) -> Grant:
    current = request_limits.get()
    if current is not None:
        current.verdict = verdict
    if not verdict.allowed:
        raise verdict.refusal()
    return Grant(limits, tokens, verdict)


def acquire(limits: Limits, tokens: int) -> Grant | None:
    """Charge one request and `tokens` to every limit, or raise RateLimitExceeded (nothing
    charged). None when the storage failed (the call goes ahead)."""
    try:
        verdict = backend().acquire(_charges(limits, tokens))
    except Exception as exc:
        _unavailable(exc)
        return None
    return _granted(limits, tokens, verdict)


async def aacquire(limits: Limits, tokens: int) -> Grant | None:
    try:
        verdict = await backend().aacquire(_charges(limits, tokens))
    except Exception as exc:
        _unavailable(exc)
        return None
    return _granted(limits, tokens, verdict)


def _settlement(grant: Grant, actual_tokens: int | None) -> list:
    if grant.settled:
        return []
    grant.settled = True
    if actual_tokens is None:  # released: the call never reached the provider
        return grant.deltas(requests=-1, tokens=-grant.tokens)
    return grant.deltas(requests=0, tokens=actual_tokens - grant.tokens)


def settle(grant: Grant, actual_tokens: int | None) -> None:
    """Correct the tokens charged to the real usage; None gives back the request and its
    tokens (the call was refused before the provider was called)."""
    deltas = _settlement(grant, actual_tokens)
    if deltas:
        try:
            backend().adjust(deltas)
        except Exception as exc:
            _unavailable(exc)


async def asettle(grant: Grant, actual_tokens: int | None) -> None:
    deltas = _settlement(grant, actual_tokens)
    if deltas:
        try:
            await backend().aadjust(deltas)
        except Exception as exc:
            _unavailable(exc)


def peek(limits: Limits) -> Verdict:
    """The limits' state without charging anything. Raises if the storage fails."""
    return backend().acquire(_charges(limits, 0, requests=0))


async def apeek(limits: Limits) -> Verdict | None:
    """The limits' state without charging anything (for the headers of a refused request)."""
    try:
        return await backend().aacquire(_charges(limits, 0, requests=0))
    except Exception as exc:
        _unavailable(exc)
        return None


# --- the gateway's request -------------------------------------------------------------------


@dataclass(slots=True)
class RequestLimits:
    """The limits of the request being served (set by the gateway), and what their last
    check found (for the response's headers)."""

    limits: Limits | None
    verdict: Verdict | None = None


# Unset outside the gateway: LLMBundle then applies the tenant's own limits.
request_limits: ContextVar[RequestLimits | None] = ContextVar("request_limits", default=None)
