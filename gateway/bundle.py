"""LLMBundle: call any of a tenant's models and record every token it uses.

    from gateway.bundle import LLMBundle

    bundle = LLMBundle(tenant_id, "chat")                  # the tenant's default chat model
    result = bundle.chat([{"role": "user", "content": "Hi"}])
    result.text, result.usage.total_tokens

    for delta in LLMBundle(tenant_id, "chat", "gpt-4o@OpenAI").chat_streamly(history):
        ...

Each call: resolve the model (cached in process), charge the rate limits that apply (the
tenant's, and through the gateway the key's: usage.ratelimits), reserve quota if a quota
applies (the provider is never called when either refuses), call the adapter, settle the
quota and the tokens-per-minute charge with the real usage, and hand one usage record to the
recorder (which never waits on the database).
Streams are recorded once when they end, fail midway, are closed, or are dropped unfinished
(outcome `abandoned` when the caller stopped reading before the end).

The async methods (`achat`, `achat_streamly`, `aencode`, `asimilarity`, `atranscription`,
`atts`) run the same accounting on the event loop: the resolution and the quota rules come
from the in-process caches without I/O in steady state; a cache miss and the quota's database
reservation and settlement run in the one thread-sensitive worker thread (`run_db`), never on
the loop and never in a thread per request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections

from providers.errors import ErrorCode, ProviderError
from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from providers.types import ModelType, normalize_model_type
from tenants.process_cache import check_remote_generation, remote_check_due
from tenants.resolution import ModelNotAuthorized, ResolvedModel, peek_model, resolve_model
from usage import ratelimits
from usage.quotas import COST, Reservation, acting_key, key_rules, to_units
from usage.recorder import record_usage
from usage.records import UsageRecord
from usage.selectors.quotas import quota_rules_for, quota_rules_known
from usage.selectors.ratelimits import MISS, call_limits, peek_call_limits
from usage.services.quotas import quota_hold_nothing, quota_reserve, quota_settle

logger = logging.getLogger(__name__)

__all__ = ["LLMBundle", "ModelNotAuthorized", "ModelType", "increase_usage", "run_db"]

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
        self.request_id = uuid.uuid4().hex
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
        """start() on the event loop: no I/O unless a quota applies (or the rules of this
        resolution were never read); the database work runs in run_db's thread."""
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
                reservation = await run_db(_reserve, resolved, rules, reserve_tokens)
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
        # The ORM may not run on an event loop's thread: settle in run_db's thread, without
        # making the caller wait for it.
        in_background(run_db(self._settle, tokens, cost_units))

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


def _reserve(resolved: ResolvedModel, rules, reserve_tokens) -> Reservation | None:
    if not rules:
        return None
    tokens = _tokens(reserve_tokens)
    cost_units = 0
    if any(rule.kind == COST for rule in rules):
        # The estimate at the higher of the model's two prices: never below the real cost of
        # a call within its token allowance.
        price = max(resolved.input_price or 0, resolved.output_price or 0)
        cost_units = to_units(Decimal(int(tokens)) * Decimal(price) / _MILLION)
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


class LLMBundle:
    """A tenant's model of one type, with usage accounting (RAGFlow's LLMBundle)."""

    def __init__(
        self,
        tenant_id,
        llm_type: str,
        llm_name: str | None = None,
        lang: str = "English",
        **kwargs: Any,
    ) -> None:
        self.tenant_id = str(tenant_id)
        self.model_type = normalize_model_type(llm_type).value
        self.llm_name = llm_name
        self.lang = lang
        self.options = kwargs
        self._adapter = None
        self._adapter_for: ResolvedModel | None = None
        if not _in_event_loop():
            self.resolved  # noqa: B018 - resolve now: an unknown model fails at construction

    @property
    def resolved(self) -> ResolvedModel:
        return resolve_model(self.tenant_id, self.model_type, self.llm_name)

    def adapter(self):
        return self._adapter_of(self.resolved)

    async def aresolved(self) -> ResolvedModel:
        """The resolution, from the cache without I/O, else read in run_db's thread."""
        refresh_caches_soon()
        resolved = peek_model(self.tenant_id, self.model_type, self.llm_name)
        if resolved is None:
            resolved = await run_db(resolve_model, self.tenant_id, self.model_type, self.llm_name)
        return resolved

    async def aadapter(self):
        return self._adapter_of(await self.aresolved())

    def _adapter_of(self, resolved: ResolvedModel):
        if self._adapter is None or self._adapter_for is not resolved:
            self._adapter = build_adapter(
                model_type=self.model_type,
                factory=resolved.factory,
                model_name=resolved.llm_name,
                api_key=resolved.api_key,
                base_url=resolved.api_base or None,
                **self.options,
            )
            self._adapter_for = resolved
        return self._adapter

    @property
    def model_id(self) -> str:
        """`name@factory` of the model this bundle last called (its name before any call)."""
        resolved = self._adapter_for
        return resolved.full_name if resolved is not None else self.llm_name or ""

    @property
    def max_length(self) -> int:
        return self.resolved.max_tokens

    # --- accounting around one call ---

    def _run(self, reserve_tokens, call, usage_of=lambda result: result.usage):
        adapter, accounting = self._start(reserve_tokens)
        try:
            result = call(adapter)
        except BaseException as exc:
            accounting.finish(None, exc)
            raise
        accounting.finish(usage_of(result))
        return result

    def _start(self, reserve_tokens):
        adapter = self.adapter()
        return adapter, _Call.start(self._adapter_for, reserve_tokens)

    def _stream(self, reserve_tokens, open_stream):
        adapter, accounting = self._start(reserve_tokens)
        try:
            stream = open_stream(adapter)
        except BaseException as exc:
            accounting.finish(None, exc)
            raise
        return _recorded(stream, accounting)

    async def _astart(self, reserve_tokens):
        adapter = await self.aadapter()
        return adapter, await _Call.astart(self._adapter_for, reserve_tokens)

    async def _arun(self, reserve_tokens, call):
        adapter, accounting = await self._astart(reserve_tokens)
        try:
            result = await call(adapter)
        except BaseException as exc:
            accounting.finish(None, exc)
            raise
        accounting.finish(result.usage)
        return result

    async def _astream(self, reserve_tokens, open_stream):
        adapter, accounting = await self._astart(reserve_tokens)
        try:
            stream = await open_stream(adapter)
        except BaseException as exc:
            accounting.finish(None, exc)
            raise
        return _recorded(stream, accounting)

    def _chat_reserve(self, history, system, gen_conf) -> int:
        from django.conf import settings

        text = (system or "") + "".join(str(m.get("content", "")) for m in history)
        gen_conf = gen_conf or {}
        completion = (
            gen_conf.get("max_tokens")
            or gen_conf.get("max_completion_tokens")
            or settings.QUOTA_COMPLETION_RESERVE
        )
        return num_tokens_from_string(text) + int(completion) + 8 * (len(history) + 1)

    # --- chat ---

    def chat(self, history, *, system=None, gen_conf=None, tools=None):
        return self._run(
            lambda: self._chat_reserve(history, system, gen_conf),
            lambda a: a.chat(history, system=system, gen_conf=gen_conf, tools=tools),
        )

    def chat_streamly(self, history, *, system=None, gen_conf=None, tools=None):
        return self._stream(
            lambda: self._chat_reserve(history, system, gen_conf),
            lambda a: a.chat_streamly(history, system=system, gen_conf=gen_conf, tools=tools),
        )

    async def achat(self, history, *, system=None, gen_conf=None, tools=None):
        return await self._arun(
            lambda: self._chat_reserve(history, system, gen_conf),
            lambda a: a.achat(history, system=system, gen_conf=gen_conf, tools=tools),
        )

    async def achat_streamly(self, history, *, system=None, gen_conf=None, tools=None):
        return await self._astream(
            lambda: self._chat_reserve(history, system, gen_conf),
            lambda a: a.achat_streamly(history, system=system, gen_conf=gen_conf, tools=tools),
        )

    # --- embedding, rerank ---

    def encode(self, texts: list[str]):
        return self._run(lambda: _count(texts), lambda a: a.encode(texts))

    async def aencode(self, texts: list[str]):
        return await self._arun(lambda: _count(texts), lambda a: a.aencode(texts))

    def encode_queries(self, text: str):
        return self._run(lambda: num_tokens_from_string(text), lambda a: a.encode_queries(text))

    def similarity(self, query: str, texts: list[str]):
        return self._run(lambda: _count_pairs(query, texts), lambda a: a.similarity(query, texts))

    async def asimilarity(self, query: str, texts: list[str]):
        return await self._arun(
            lambda: _count_pairs(query, texts), lambda a: a.asimilarity(query, texts)
        )

    # --- vision, audio, OCR ---

    def describe(self, image: bytes):
        from django.conf import settings

        return self._run(settings.QUOTA_COMPLETION_RESERVE * 2, lambda a: a.describe(image))

    def describe_with_prompt(self, image: bytes, prompt: str | None = None):
        from django.conf import settings

        reserve = settings.QUOTA_COMPLETION_RESERVE * 2 + num_tokens_from_string(prompt or "")
        return self._run(reserve, lambda a: a.describe_with_prompt(image, prompt))

    def transcription(self, audio: bytes, **kwargs: Any):
        from django.conf import settings

        return self._run(
            settings.QUOTA_COMPLETION_RESERVE, lambda a: a.transcription(audio, **kwargs)
        )

    async def atranscription(self, audio: bytes, **kwargs: Any):
        from django.conf import settings

        return await self._arun(
            settings.QUOTA_COMPLETION_RESERVE, lambda a: a.atranscription(audio, **kwargs)
        )

    def tts(self, text: str, *, voice: str | None = None):
        return self._stream(
            lambda: num_tokens_from_string(text), lambda a: a.tts(text, voice=voice)
        )

    async def atts(self, text: str, *, voice: str | None = None):
        return await self._astream(
            lambda: num_tokens_from_string(text), lambda a: a.atts(text, voice=voice)
        )

    def ocr(self, document: bytes, *, mime_type: str = "application/pdf"):
        from django.conf import settings

        return self._run(
            settings.QUOTA_COMPLETION_RESERVE * 4, lambda a: a.ocr(document, mime_type=mime_type)
        )


def _count(texts: list[str]) -> int:
    return sum(num_tokens_from_string(t) for t in texts)


def _count_pairs(query: str, texts: list[str]) -> int:
    """A reranker reads the query with each text."""
    return num_tokens_from_string(query) * len(texts) + _count(texts)


def increase_usage(
    tenant_id, model_type: str, used_tokens: int, llm_name: str | None = None
) -> bool:
    """Record `used_tokens` for a tenant's model, as RAGFlow's increase_usage did.

    Returns False (and records nothing) when the model cannot be resolved. The tokens count
    towards quotas and `used_tokens`, through the same buffered ledger as LLMBundle calls.
    """
    try:
        resolved = resolve_model(tenant_id, normalize_model_type(model_type).value, llm_name)
    except (ModelNotAuthorized, ValueError):
        logger.warning(
            "increase_usage: no model %s of type %s for tenant %s", llm_name, model_type, tenant_id
        )
        return False
    usage = Usage(prompt_tokens=int(used_tokens), total_tokens=int(used_tokens))
    # Tokens already spent: they count against quotas but are never refused.
    rules = quota_rules_for(resolved=resolved)
    reservation = quota_hold_nothing(rules=rules) if rules else None
    _Call(resolved, reservation).finish(usage)
    return True
