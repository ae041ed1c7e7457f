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
`atts`) run the same accounting on the event loop (gateway.metering): the resolution and the
quota rules come from the in-process caches without I/O in steady state, the quota's Redis
reservation is awaited on the loop and its settlement sent after the call; a cache miss and
the quota's database work run in the one thread-sensitive worker thread (`run_db`), never on
the loop and never in a thread per request.
"""

from __future__ import annotations

import logging
from typing import Any

from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from providers.types import ModelType, normalize_model_type
from tenants.resolution import ModelNotAuthorized, ResolvedModel, peek_model, resolve_model
from usage.selectors.quotas import quota_rules_for
from usage.services.quotas import quota_hold_nothing

from .metering import (
    _Call,
    _in_event_loop,
    _recorded,
    calling_token,
    in_background,
    refresh_caches_soon,
    run_db,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LLMBundle",
    "ModelNotAuthorized",
    "ModelType",
    "calling_token",
    "in_background",
    "increase_usage",
    "refresh_caches_soon",
    "run_db",
]


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
