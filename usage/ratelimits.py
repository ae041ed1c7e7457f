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
window in Redis, so the same script does it; what the previous minute's counter holds, the
window having moved on meanwhile, is given back from it too). On the event loop a settlement
rides along with the next check (no round trip of its own under load), or is sent alone
within 50 ms; and checks made while one script run is out wait for it and go together in
the next, so under load a process sends one run for many calls. A request refused later
for its quota gives back its request and its tokens.

If Redis cannot be reached the call goes ahead unlimited (a warning is logged): rate limits
protect the providers' capacity, not money; quotas and budgets keep their own checks.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings

from providers.errors import RateLimitError

from .ratestore import (
    KEY_PREFIX,
    REQUESTS,
    TOKENS,
    CounterState,
    MemoryBackend,
    RedisBackend,
    Scope,
    storage_key,
)

logger = logging.getLogger(__name__)


class RateLimitExceeded(RateLimitError):
    """A tenant's or key's own rate limit refused the call before the provider was called."""

    def __init__(self, message: str, *, kind: str, retry_after: float | None) -> None:
        super().__init__(message, provider="ragllm", retry_after=retry_after)
        self.kind = kind  # "requests" or "tokens"


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
        verdict = Verdict(*backend().acquire(_charges(limits, tokens)))
    except Exception as exc:
        _unavailable(exc)
        return None
    return _granted(limits, tokens, verdict)


async def aacquire(limits: Limits, tokens: int) -> Grant | None:
    try:
        verdict = Verdict(*await backend().aacquire(_charges(limits, tokens)))
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
    return Verdict(*backend().acquire(_charges(limits, 0, requests=0)))


async def apeek(limits: Limits) -> Verdict | None:
    """The limits' state without charging anything (for the headers of a refused request)."""
    try:
        return Verdict(*await backend().aacquire(_charges(limits, 0, requests=0)))
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


__all__ = [
    "KEY_PREFIX",
    "CounterState",
    "Grant",
    "Limits",
    "MemoryBackend",
    "RateLimitExceeded",
    "RedisBackend",
    "RequestLimits",
    "Scope",
    "Verdict",
    "aacquire",
    "acquire",
    "apeek",
    "asettle",
    "backend",
    "limits_for",
    "peek",
    "request_limits",
    "settle",
    "storage_key",
]
