"""How often a provider call is tried, how long to wait between tries, how long one may take.

Retryable failures (rate limit, 5xx, timeout, connection) are retried at most
`LLM_MAX_RETRIES` times with capped, fully jittered exponential backoff from `LLM_BASE_DELAY`,
honouring `Retry-After`; each attempt is bounded by `LLM_TIMEOUT_SECONDS`. The settings are
read at each call, so operators and tests can change them without a restart.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .errors import MaxRetriesExceededError, ProviderError
from .runner import Flow, Sleep

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BASE_DELAY = 1.0
# RAGFlow slept LLM_BASE_DELAY * uniform(10, 150), i.e. up to five minutes; we never wait
# longer than this between attempts, whatever the backoff or Retry-After says.
MAX_RETRY_DELAY = 30.0


def _setting(name: str, default: float) -> Any:
    # Fall back to the default when Django settings are not configured (scripts, REPL).
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, how long to wait, and how long one attempt may take.

    `sleep`, `async_sleep` and `jitter` are injectable so tests never sleep for real.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base_delay: float = DEFAULT_BASE_DELAY
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_delay: float = MAX_RETRY_DELAY
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    @classmethod
    def from_settings(cls, **overrides: Any) -> RetryPolicy:
        policy = cls(
            max_retries=int(_setting("LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
            base_delay=float(_setting("LLM_BASE_DELAY", DEFAULT_BASE_DELAY)),
            timeout=float(_setting("LLM_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
        )
        return replace(policy, **overrides) if overrides else policy

    def delay(self, retry: int, error: ProviderError) -> float:
        """Seconds to wait before retry number `retry` (0-based) after `error`."""
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_delay)
        # "Full jitter": uniform in [0, min(cap, base * 2^n)] spreads retrying clients apart.
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        return ceiling * self.jitter()


def with_retries(
    attempt: Callable[[], Flow[T]], *, policy: RetryPolicy, secrets: tuple[str, ...] = ()
) -> Flow[T]:
    """A flow making `attempt()`s until one succeeds, one fails for good, or the retries run
    out (then MaxRetriesExceededError, or the error itself when retries are off)."""
    retries = 0
    while True:
        try:
            return (yield from attempt())
        except ProviderError as error:
            _give_up_or_log(error, retries, policy, secrets)
            delay = policy.delay(retries, error)
        yield Sleep(delay, policy.sleep, policy.async_sleep)
        retries += 1


def _give_up_or_log(
    error: ProviderError, retries: int, policy: RetryPolicy, secrets: tuple[str, ...]
) -> None:
    """Raise when `error` is final; otherwise log that a retry follows."""
    if not error.retryable:
        raise error
    if retries >= policy.max_retries:
        if retries == 0:
            raise error  # retries are disabled: report the error itself
        raise MaxRetriesExceededError(last_error=error, retries=retries, secrets=secrets) from error
    logger.warning("retrying after %s (retry %d of %d)", error, retries + 1, policy.max_retries)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or HTTP date) or Azure's `retry-after-ms`."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
