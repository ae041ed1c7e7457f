"""The gateway's endpoints: each parses its input, picks the model, calls LLMBundle's async
path (resolution, quota, the adapter, settlement, one usage record) and answers in OpenAI's
shapes. Errors are raised as GatewayError or left to gateway.errors.error_for.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from providers.results import ChatResult, Usage
from providers.streams import StreamDelta

from . import inputs
from .auth import Caller, check_model, model_allowed
from .bundle import LLMBundle
from .errors import error_for, model_not_found
from .http import Request, dumps, send_body, send_json, send_stream
from .metering import calling_token
from .naming import Choice, choose, find, models_of

SSE_TYPE = b"text/event-stream; charset=utf-8"
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

# One LLMBundle per (tenant, type, model, options), reused across requests so that its adapter
# is built once per resolution. Bounded: cleared when full (bundles are cheap to rebuild).
_bundles: dict[tuple, LLMBundle] = {}
MAX_BUNDLES = 4096


def bundle_for(caller: Caller, choice: Choice, **options: Any) -> LLMBundle:
    calling_token.set(caller.token.token_id)  # this request's calls record the key's usage
    key = (caller.tenant.tenant_id, choice.model_type, choice.llm_name, *sorted(options.items()))
    bundle = _bundles.get(key)
    if bundle is None:
        if len(_bundles) >= MAX_BUNDLES:
            _bundles.clear()
        bundle = _bundles[key] = LLMBundle(
            caller.tenant.tenant_id, choice.model_type, choice.llm_name, **options
        )
    return bundle


async def permitted_bundle(caller: Caller, choice: Choice, **options: Any) -> LLMBundle:
    """bundle_for, refused (403) when the caller's key may not use the model it resolves to
    (from the resolution cache: no I/O in steady state)."""
    bundle = bundle_for(caller, choice, **options)
    if caller.token.allowed_models:
        resolved = await bundle.aresolved()
        check_model(caller, resolved.llm_name, resolved.factory)
    return bundle


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


# --- chat ----------------------------------------------------------------------------------


def _tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Tool calls in OpenAI's exact shape: an id, type function, arguments as a JSON string."""
    if not calls:
        return None
    return [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": (call.get("function") or {}).get("name") or "",
                "arguments": _arguments((call.get("function") or {}).get("arguments")),
            },
        }
        for call in calls
    ]


def _arguments(arguments: Any) -> str:
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _completion(completion_id: str, model: str, result: ChatResult) -> dict[str, Any]:
    tool_calls = _tool_calls(result.tool_calls)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.text if result.text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": result.finish_reason or ("tool_calls" if tool_calls else "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(result.usage),
        "system_fingerprint": None,
    }


async def chat_completions(request: Request, caller: Caller, receive, send) -> None:
    chat = inputs.chat_input(request.json())
    choice = await choose(
        caller.tenant.tenant_id, chat.model, "/v1/chat/completions", images=chat.has_images
    )
    bundle = await permitted_bundle(caller, choice)
    completion_id = f"chatcmpl-{os.urandom(16).hex()}"  # as random as uuid4, a third of its cost
    if not chat.stream:
        result = await bundle.achat(chat.messages, gen_conf=chat.gen_conf, tools=chat.tools)
        await send_json(send, 200, _completion(completion_id, bundle.model_id, result))
        return
    # Errors before the first byte (quota, resolution, a refused request) are plain responses.
    stream = await bundle.achat_streamly(chat.messages, gen_conf=chat.gen_conf, tools=chat.tools)
    chunks = _chat_chunks(stream, completion_id, bundle.model_id, chat.include_usage)
    await send_stream(send, receive, 200, SSE_TYPE, chunks)


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


async def _chat_chunks(
    stream, completion_id: str, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """The provider's deltas as OpenAI chunks, each sent as it arrives; with include_usage the
    last chunk carries the stream's usage (the provider's report, else our count), which is
    also what is recorded. Closing this closes the upstream stream."""
    created = int(time.time())
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if include_usage:
        head["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({**head, "choices": [choice]})

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        try:
            async for delta in stream.deltas():
                out = _delta(delta)
                finish = delta.finish_reason if not finished else None
                if out or finish:
                    finished = finished or bool(finish)
                    yield chunk(out, finish)
        except Exception as exc:  # a failure midway: OpenAI's SDKs raise on an error event
            yield _event(error_for(exc).body())
            return
        if not finished:
            yield chunk({}, "tool_calls" if stream.tool_calls else "stop")
        if include_usage:
            yield _event({**head, "choices": [], "usage": _usage(stream.usage)})
        yield b"data: [DONE]\n\n"
    finally:
        await stream.aclose()


def _delta(delta: StreamDelta) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if delta.text:
        out["content"] = delta.text
    if delta.tool_calls:
        fragments = []
        for position, fragment in enumerate(delta.tool_calls):
            function = fragment.get("function") or {}
            piece: dict[str, Any] = {"index": fragment.get("index", position)}
            if fragment.get("id"):
                piece["id"] = fragment["id"]
                piece["type"] = "function"
            shown: dict[str, Any] = {}
            if function.get("name"):
                shown["name"] = function["name"]
            if function.get("arguments") is not None:
                shown["arguments"] = _arguments(function["arguments"])
            piece["function"] = shown
            fragments.append(piece)
        out["tool_calls"] = fragments
    return out


# --- embeddings, rerank --------------------------------------------------------------------


async def embeddings(request: Request, caller: Caller, receive, send) -> None:
    given = inputs.embedding_input(request.json())
    choice = await choose(caller.tenant.tenant_id, given.model, "/v1/embeddings")
    options = {"dimensions": given.dimensions} if given.dimensions is not None else {}
    bundle = await permitted_bundle(caller, choice, **options)
    result = await bundle.aencode(given.texts)
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _base64(vector) if given.base64 else vector,
        }
        for index, vector in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens}
    payload = {"object": "list", "data": data, "model": bundle.model_id, "usage": usage}
    await send_json(send, 200, payload)


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


async def rerank(request: Request, caller: Caller, receive, send) -> None:
    given = inputs.rerank_input(request.json())
    choice = await choose(caller.tenant.tenant_id, given.model, "/v1/rerank")
    bundle = await permitted_bundle(caller, choice)
    result = await bundle.asimilarity(given.query, given.documents)
    ranked = sorted(enumerate(result.scores), key=lambda pair: pair[1], reverse=True)
    if given.top_n is not None:
        ranked = ranked[: given.top_n]
    results = []
    for index, score in ranked:
        item: dict[str, Any] = {"index": index, "relevance_score": score}
        if given.return_documents:
            item["document"] = {"text": given.documents[index]}
        results.append(item)
    usage = {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens}
    payload = {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": bundle.model_id,
        "results": results,
        "usage": usage,
    }
    await send_json(send, 200, payload)


# --- audio ---------------------------------------------------------------------------------


async def transcriptions(request: Request, caller: Caller, receive, send) -> None:
    given = inputs.transcription_input(request.headers.get("content-type", ""), request.body)
    choice = await choose(caller.tenant.tenant_id, given.model, "/v1/audio/transcriptions")
    bundle = await permitted_bundle(caller, choice)
    result = await bundle.atranscription(
        given.audio, filename=given.filename, language=given.language
    )
    if given.text_format:
        await send_body(send, 200, result.text.encode(), b"text/plain; charset=utf-8")
        return
    usage = {
        "type": "tokens",
        "input_tokens": result.usage.prompt_tokens,
        "output_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
    }
    await send_json(send, 200, {"text": result.text, "usage": usage})


async def speech(request: Request, caller: Caller, receive, send) -> None:
    given = inputs.speech_input(request.json())
    choice = await choose(caller.tenant.tenant_id, given.model, "/v1/audio/speech")
    options = {"response_format": given.response_format} if given.response_format else {}
    bundle = await permitted_bundle(caller, choice, **options)
    stream = await bundle.atts(given.text, voice=given.voice)
    content_type = stream.content_type or AUDIO_TYPES.get(given.response_format or "mp3")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    await send_stream(send, receive, 200, content_type.encode("latin-1"), chunks())


# --- models --------------------------------------------------------------------------------


def _model_entry(model) -> dict[str, Any]:
    return {
        "id": model.full_name,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.factory,
        "model_type": model.model_type,
        "model_types": sorted(model.types),
    }


async def list_models(request: Request, caller: Caller, receive, send) -> None:
    models = [
        model
        for model in await models_of(caller.tenant.tenant_id)
        if model_allowed(caller.token, model.name, model.factory)
    ]
    await send_json(send, 200, {"object": "list", "data": [_model_entry(m) for m in models]})


async def retrieve_model(request: Request, caller: Caller, receive, send, model_id: str) -> None:
    model = find(await models_of(caller.tenant.tenant_id), model_id)
    if model is None:
        raise model_not_found(f"The model `{model_id}` does not exist for this tenant.")
    check_model(caller, model.name, model.factory)
    await send_json(send, 200, _model_entry(model))
