"""Per-process caches of what the database says about tenants, invalidated everywhere at once.

Model resolutions, API token identities, memberships and tenants' model lists are read on
every call, so each process keeps them in memory. Any change that could alter one of them
(a config, tenant, member, user, token or catalog change) calls `invalidate()`: this process
forgets every cached value at once and bumps a generation number in the shared cache (Redis
when configured), which other processes look at no more than once a second
(REMOTE_CHECK_SECONDS). Entries also expire after CONFIG_CACHE_SECONDS, which bounds anything
that bypasses the signals (raw SQL).

`ProcessCache.get(key)` may query the database (on a miss) and the shared cache (once a
second); `peek(key)` never does I/O and answers MISS instead, so that async code can serve
the steady state on the event loop and send only misses to a worker thread. Async code also
runs `check_remote_generation()` in a worker thread when `remote_check_due()` says so, off
the request's path (gateway.bundle.refresh_caches_soon).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

GENERATION_KEY = "ragllm:llm-config-generation"
REMOTE_CHECK_SECONDS = 1.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()

_lock = threading.Lock()
_caches: list[ProcessCache[Any, Any]] = []
_epoch = 0  # bumped by every invalidation seen by this process
_seen_generation: object = None
_checked_at = 0.0


def invalidate(*, broadcast: bool = True) -> None:
    """Forget every cached value in this process and, with broadcast, in the others too."""
    global _epoch, _seen_generation
    with _lock:
        _epoch += 1
        for process_cache in _caches:
            process_cache.clear()
    if broadcast:
        # What this process sees next is its own change, already applied here: remember it,
        # so that the next remote check does not clear the caches once more.
        try:
            _seen_generation = cache.incr(GENERATION_KEY)
        except ValueError:
            cache.set(GENERATION_KEY, 1, timeout=None)
            _seen_generation = 1
        except Exception:  # the shared cache being down must not break a change
            logger.warning(
                "cannot broadcast the change; other processes catch up within CONFIG_CACHE_SECONDS"
            )


def remote_check_due() -> bool:
    return time.monotonic() - _checked_at >= REMOTE_CHECK_SECONDS


def check_remote_generation() -> None:
    """Catch up with invalidations made by other processes (at most once a second)."""
    global _seen_generation, _checked_at
    if not remote_check_due():
        return
    _checked_at = time.monotonic()
    try:
        generation = cache.get(GENERATION_KEY)
    except Exception:
        return
    if generation != _seen_generation:
        if _seen_generation is not None:
            invalidate(broadcast=False)
        _seen_generation = generation


class ProcessCache(Generic[K, V]):
    """`load(key)` results kept in this process (see the module docstring). Exceptions raised
    by `load` are not cached, nor None when `keep_none` is False (answers an outsider could
    multiply at will, such as unknown tokens)."""

    def __init__(self, load: Callable[[K], V], *, keep_none: bool = True) -> None:
        self._load = load
        self._keep_none = keep_none
        self._entries: dict[K, tuple[float, V]] = {}
        with _lock:
            _caches.append(self)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: K, load: Callable[[], V] | None = None) -> V:
        """The cached value, else `load()` (or the cache's loader) stored and returned."""
        check_remote_generation()
        value = self._fresh(key)
        if value is not MISS:
            return value
        epoch = _epoch
        value = load() if load is not None else self._load(key)
        if value is None and not self._keep_none:
            return value
        with _lock:
            # Read before an invalidation that happened meanwhile: use it once, keep it not.
            if epoch == _epoch:
                self._entries[key] = (time.monotonic(), value)
        return value

    def peek(self, key: K) -> V:
        """The cached value, or MISS when it is absent or expired. No I/O."""
        return self._fresh(key)

    def _fresh(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] >= settings.CONFIG_CACHE_SECONDS:
            return MISS
        return entry[1]
