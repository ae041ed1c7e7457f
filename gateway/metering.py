"""A call's metering: rate limits and quota reserved before the provider is called, one usage
record and the settlements after (LLMBundle's accounting, gateway.bundle).

On the event loop a steady-state call does no I/O but Redis's: the rules come from the
in-process caches, the rate limits' script and the quota's reservation go over the loop's own
Redis connections (usage.ratelimits.aacquire, usage.services.quotas.aquota_reserve), and the
settlements are sent after the response, never on the request's path (the quota's shares a
write to Redis with the loop's next command, usually the next call's reservation: one Redis
round trip per call in steady state, not two). The database work (a
cache miss, a quota counter to seed from the ledger, the database path while Redis is down,
alerts) runs in the one thread-sensitive worker thread (`run_db`), never on the loop and never
in a thread per request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections

from providers.errors import ErrorCode, ProviderError
from providers.results import Usage
from tenants.process_cache import check_remote_generation, remote_check_due
from tenants.resolution import ResolvedModel
from usage import ratelimits
from usage.quotas import COST, Reservation, acting_key, key_rules, to_units
from usage.recorder import record_usage
from usage.records import UsageRecord, new_request_id
from usage.selectors.quotas import quota_rules_for, quota_rules_known
from usage.selectors.ratelimits import MISS, call_limits, peek_call_limits
from usage.services.quotas import (
    aquota_reserve,
    aquota_settle,
    quota_alerts_fire,
    quota_reserve,
    quota_settle,
)

logger = logging.getLogger(__name__)

ABANDONED = "abandoned"

_MILLION = Decimal(1_000_000)

# The API token (tenants.APIToken id) of the gateway request being served, if any: set by the
# gateway per request, read when a call starts, recorded with its usage (per-key usage).
calling_token: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "ragllm_calling_token", default=None
)


def _cost(resolved: ResolvedModel, usage: Usage) -> Decimal:
    cost = Decimal(0)
    prompt = usage.prompt_tokens or (usage.total_tokens - usage.completion_tokens)
    if resolved.input_price is not None:
        cost += Decimal(prompt) * resolved.input_price / _MILLION
    if resolved.output_price is not None:
        cost += Decimal(usage.completion_tokens) * resolved.output_price / _MILLION
    return cost.quantize(Decimal("0.00000001"))


def _with_connection_kept(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    finally:
        # The worker thread keeps its one connection between calls (taking it from the pool
        # and giving it back each time costs more than the queries); one that broke is
        # closed, and the next call opens another.
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.connection is not None and connection.errors_occurred:
            connection.close_if_unusable_or_obsolete()


async def run_db(function, /, *args, **kwargs):
    """`function(*args, **kwargs)`, which may use the ORM, from async code: in asgiref's one
    thread-sensitive worker thread (one database connection for all of this process's async
    callers), never on the event loop's thread."""
    return await sync_to_async(_with_connection_kept, thread_sensitive=True)(
        function, *args, **kwargs
    )


# Work started from the event loop and not awaited (settlements, cache checks, token
# touches), kept until done: the loop holds tasks weakly.
_background: set[asyncio.Task] = set()


def in_background(coroutine) -> None:
    """Run `coroutine` on this event loop without making anyone wait for it."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


_refreshing = False


def refresh_caches_soon() -> None:
    """Catch up with other processes' cache invalidations, at most once a second, in run_db's
    thread and off the request's path (the shared cache is a network round trip)."""
    global _refreshing
    if _refreshing or not remote_check_due():
        return
    _refreshing = True

    async def check() -> None:
        global _refreshing
        try:
            await run_db(check_remote_generation)
        finally:
            _refreshing = False

    in_background(check())


class _Call:
    """One call's accounting: reservation, timing, and exactly one usage record."""

    def __init__(
        self,
        resolved: ResolvedModel,
        reservation: Reservation | None,
        grant: ratelimits.Grant | None = None,
    ) -> None:
        self.resolved = resolved
        self.reservation = reservation
        self.grant = grant  # what the rate limits were charged
        self.request_id = new_request_id()  # a counter's, no syscall (uuid4's)
        self.token_id = calling_token.get()
        self.started = time.perf_counter()
        self._done = False
        self._lock = threading.Lock()

    @classmethod
    def start(cls, resolved: ResolvedModel, reserve_tokens) -> _Call:
        """Reserve quota first: over quota, this raises and the provider is never called.

        `reserve_tokens` is a number or a function giving it (counted only under a quota or
        a tokens-per-minute limit). Rate limits are charged first: over one, this raises
        RateLimitExceeded; a quota refusal then gives the charge back.
        """
        limits = call_limits(tenant_id=resolved.tenant_id)
        grant = None
        if limits is not None:
            if limits.counts_tokens:
                reserve_tokens = _tokens(reserve_tokens)  # counted once, for both
            grant = ratelimits.acquire(limits, reserve_tokens if limits.counts_tokens else 0)
        try:
            reservation = _reserve(
                resolved, quota_rules_for(resolved=resolved) + _key_rules(resolved), reserve_tokens
            )
        except BaseException:
            if grant is not None:
                ratelimits.settle(grant, None)
            raise
        return cls(resolved, reservation, grant)

    @classmethod
    async def astart(cls, resolved: ResolvedModel, reserve_tokens) -> _Call:
        """start() on the event loop: no I/O but Redis in steady state (the rate limits' script
        if limits apply, the quota's if a quota does, both on the loop); the database work (rules
        never read, a counter to seed, Redis down) runs in run_db's thread."""
        limits = peek_call_limits(tenant_id=resolved.tenant_id)
        if limits is MISS:
            limits = await run_db(call_limits, tenant_id=resolved.tenant_id)
        grant = None
        if limits is not None:
            if limits.counts_tokens:
                reserve_tokens = _tokens(reserve_tokens)  # counted once, for both
            grant = await ratelimits.aacquire(limits, reserve_tokens if limits.counts_tokens else 0)
        rules = quota_rules_known(resolved=resolved)
        try:
            if rules is None:
                rules = await run_db(quota_rules_for, resolved=resolved)
            rules += _key_rules(resolved)
            reservation = None
            if rules:
                reservation = await _areserve(resolved, rules, reserve_tokens)
        except BaseException:
            if grant is not None:
                await ratelimits.asettle(grant, None)
            raise
        return cls(resolved, reservation, grant)

    def finish(
        self, usage: Usage | None, error: BaseException | None = None, outcome: str = ""
    ) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        usage = usage or Usage()
        resolved = self.resolved
        cost = _cost(resolved, usage)
        if self.reservation is not None:
            self._settle_soon(usage.total_tokens, to_units(cost))
        grant = self.grant
        if grant is not None and grant.limits.counts_tokens and grant.tokens != usage.total_tokens:
            if _in_event_loop():
                in_background(ratelimits.asettle(grant, usage.total_tokens))
            else:
                ratelimits.settle(grant, usage.total_tokens)
        code = ""
        if error is not None:
            code = str(error.code) if isinstance(error, ProviderError) else ErrorCode.GENERIC_ERROR
        record_usage(
            UsageRecord(
                request_id=self.request_id,
                tenant_id=resolved.tenant_id,
                tenant_llm_id=resolved.config_id,
                factory=resolved.factory,
                llm_name=resolved.llm_name,
                model_type=resolved.model_type,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                estimated=usage.estimated,
                cost=str(cost),
                latency_ms=int((time.perf_counter() - self.started) * 1000),
                outcome=outcome or ("error" if error is not None else "ok"),
                error_code=code,
                token_id=self.token_id,
            )
        )

    def _settle_soon(self, tokens: int, cost_units: int) -> None:
        if not _in_event_loop():
            self._settle(tokens, cost_units)
            return
        # Without making the caller wait: a Redis reservation is settled over the loop's own
        # connection once the response is on its way (the ORM's database path, and alerts,
        # in run_db's thread).
        asyncio.get_running_loop().call_soon(in_background, self._asettle(tokens, cost_units))

    async def _asettle(self, tokens: int, cost_units: int) -> None:
        try:
            crossed = await aquota_settle(
                reservation=self.reservation, actual_tokens=tokens, actual_cost_units=cost_units
            )
            if crossed is None:
                await run_db(self._settle, tokens, cost_units)
            elif crossed:
                await run_db(quota_alerts_fire, crossed=crossed)
        except Exception:
            logger.exception("quota settlement failed for %s", self.resolved.full_name)

    def _settle(self, tokens: int, cost_units: int) -> None:
        try:
            quota_settle(
                reservation=self.reservation, actual_tokens=tokens, actual_cost_units=cost_units
            )
        except Exception:
            logger.exception("quota settlement failed for %s", self.resolved.full_name)


def _key_rules(resolved: ResolvedModel) -> tuple:
    """The quota and budget of the application key the call is made with (the gateway sets
    usage.quotas.acting_key), checked beside the tenant's and the model's."""
    key = acting_key.get()
    return key_rules(key, resolved.tenant_id) if key is not None else ()


def _tokens(reserve_tokens) -> int:
    return reserve_tokens() if callable(reserve_tokens) else reserve_tokens


def _reserved_cost(resolved: ResolvedModel, rules, tokens: int) -> int:
    if not any(rule.kind == COST for rule in rules):
        return 0
    # The estimate at the higher of the model's two prices: never below the real cost of a
    # call within its token allowance.
    price = max(resolved.input_price or 0, resolved.output_price or 0)
    return to_units(Decimal(int(tokens)) * Decimal(price) / _MILLION)


async def _areserve(resolved: ResolvedModel, rules, reserve_tokens) -> Reservation:
    """The reservation on the loop (Redis, one script); in run_db's thread when it needs the
    database (a counter to seed, Redis down or not configured)."""
    tokens = _tokens(reserve_tokens)
    reservation = await aquota_reserve(
        rules=rules,
        tokens=tokens,
        cost_units=_reserved_cost(resolved, rules, tokens),
        provider=resolved.factory,
        model=resolved.llm_name,
    )
    if reservation is None:
        reservation = await run_db(_reserve, resolved, rules, tokens)
    return reservation


def _reserve(resolved: ResolvedModel, rules, reserve_tokens) -> Reservation | None:
    if not rules:
        return None
    tokens = _tokens(reserve_tokens)
    cost_units = _reserved_cost(resolved, rules, tokens)
    return quota_reserve(
        rules=rules,
        tokens=tokens,
        cost_units=cost_units,
        provider=resolved.factory,
        model=resolved.llm_name,
    )


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _recorded(stream, accounting: _Call):
    """`stream`, recording its usage once when it closes: at its end, on a failure midway, on
    close(), or when it is dropped unclosed (the stream's own safety net closes it then)."""
    # The callback holds the accounting, never the stream, so a dropped stream can be collected.
    stream.on_close(
        lambda state: accounting.finish(
            state.usage,
            state.error,
            "" if state.done or state.error is not None else ABANDONED,
        )
    )
    return stream
