"""Cohere's v2 API: chat, embed and rerank.

Endpoints, relative to https://api.cohere.com:
- POST v2/chat: {"model", "messages", "tools"?, "stream"?, sampling options} ->
  {"id", "finish_reason", "message": {"role", "content": [{"type": "text", "text"}],
  "tool_plan"?, "tool_calls"?}, "usage": {"billed_units": {...}, "tokens": {...}}}. Messages
  and tools are OpenAI-shaped already; sampling options have Cohere names (`p`, `k`,
  `stop_sequences`). Streamed as SSE events named by a `type` field: `content-delta` carries
  text, `tool-call-start` / `tool-call-delta` carry tool calls, `message-end` carries the
  finish reason and the usage, and ends the stream (there is no [DONE]).
- POST v2/embed: {"model", "texts", "input_type", "embedding_types": ["float"]} ->
  {"embeddings": {"float": [[...]]}, "meta": {"billed_units": {"input_tokens"}}}; at most 96
  texts per call. `input_type` is search_document for passages, search_query for queries.
- POST v2/rerank: {"model", "query", "documents", "top_n"} -> {"results": [{"index",
  "relevance_score"}] sorted by relevance, "meta": {"billed_units": {"search_units"}}}. Rerank
  is billed in searches, not tokens, so its token usage is estimated.
Authentication: `Authorization: Bearer <key>`. Errors: {"id"?, "message": "..."}.

Usage: `billed_units` (what the account pays) over `tokens` (which also counts the prompt
Cohere adds around the messages).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx

from ..base import (
    AsyncChatStream,
    BaseAdapter,
    ChatModel,
    ChatRequest,
    ChatStream,
    EmbeddingModel,
    RerankModel,
    StreamDelta,
    StreamStep,
)
from ..errors import AuthError, ProviderError
from ..http import ProviderResponse
from ..results import ChatResult, EmbeddingResult, RerankResult, Usage
from ..sse import SSEEvent
from ..tokens import usage_from_response
from .jina import scores_in_input_order

# Cohere answers a revoked or malformed key with its own status 498 "invalid token", which
# the generic classifier would take for a bad request.
INVALID_TOKEN_STATUS = 498
MAX_P = 0.99  # Cohere refuses p outside [0.01, 0.99]; OpenAI-style callers send top_p=1
FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "tool_plan")


class CohereWire(BaseAdapter):
    """Addressing, authentication and error quirks shared by Cohere's endpoints. Not
    registered."""

    default_base_url = "https://api.cohere.com"

    def headers(self) -> dict[str, str]:
        key = self.credentials.key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def post(self, path: str, body: dict[str, Any]) -> ProviderResponse:
        with self._invalid_token_is_auth():
            return self._request("POST", path, headers=self.headers(), json=body)

    async def apost(self, path: str, body: dict[str, Any]) -> ProviderResponse:
        with self._invalid_token_is_auth():
            return await self._arequest("POST", path, headers=self.headers(), json=body)

    def post_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        with self._invalid_token_is_auth():
            return self._open_stream("POST", path, headers=self.headers(), json=body)

    async def apost_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        with self._invalid_token_is_auth():
            return await self._aopen_stream("POST", path, headers=self.headers(), json=body)

    @contextlib.contextmanager
    def _invalid_token_is_auth(self) -> Iterator[None]:
        try:
            yield
        except ProviderError as error:
            if error.status != INVALID_TOKEN_STATUS or isinstance(error, AuthError):
                raise
            raise self.context.error(AuthError, error.detail, status=error.status) from error


# --- chat ----------------------------------------------------------------------------------------


class CohereChat(CohereWire, ChatModel):
    factories = ("Cohere",)

    def chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.wire_model_name,
            "messages": [_cohere_message(message) for message in request.messages()],
        }
        body.update(_options(request.gen_conf))
        if request.tools:
            body["tools"] = request.tools
        if stream:
            body["stream"] = True
        return body

    def _chat(self, request: ChatRequest) -> ChatResult:
        response = self.post("v2/chat", self.chat_body(request, stream=False))
        return self.parse_response(self._json(response), request)

    async def _achat(self, request: ChatRequest) -> ChatResult:
        response = await self.apost("v2/chat", self.chat_body(request, stream=False))
        return self.parse_response(self._json(response), request)

    def _chat_stream(self, request: ChatRequest) -> ChatStream:
        response = self.post_stream("v2/chat", self.chat_body(request, stream=True))
        return self.make_stream(request, self.stream_deltas(response), on_close=response.close)

    async def _achat_stream(self, request: ChatRequest) -> AsyncChatStream:
        response = await self.apost_stream("v2/chat", self.chat_body(request, stream=True))
        return self.make_async_stream(
            request, self.astream_deltas(response), on_close=response.aclose
        )

    def parse_response(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
            raise self._malformed("the chat response has no message")
        message = data["message"]
        content = message.get("content") or []
        if not isinstance(content, list):
            raise self._malformed("the message content is not a list")
        text = "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
        tool_calls = [_tool_call(call) for call in message.get("tool_calls") or []] or None
        usage = _reported_usage(data.get("usage"))
        if usage is None:
            arguments = "".join(call["function"]["arguments"] for call in tool_calls or ())
            usage = self.estimate_usage(request, text + arguments)
        return ChatResult(text, usage, tool_calls, _finish_reason(data.get("finish_reason")))

    # --- streaming ---

    stream_end_marker = "message-end"

    def stream_deltas(self, response: httpx.Response) -> Iterator[StreamDelta]:
        return self.sse_deltas(response, self.stream_step)

    def astream_deltas(self, response: httpx.Response) -> AsyncIterator[StreamDelta]:
        return self.asse_deltas(response, self.stream_step)

    def stream_step(self, event: SSEEvent) -> StreamStep:
        delta, ended = self.parse_event(event)
        return StreamStep((delta,) if delta is not None else (), complete=ended, stop=ended)

    def parse_event(self, event: SSEEvent) -> tuple[StreamDelta | None, bool]:
        """The delta one event carries (if any), and whether it ends the stream."""
        try:
            data = event.json()
        except ValueError:
            raise self._malformed(f"stream event is not JSON: {event.data[:200]!r}") from None
        if not isinstance(data, Mapping):
            raise self._malformed("stream event is not a JSON object")
        kind = data.get("type") or event.event
        delta = _mapping(data.get("delta"))
        message = _mapping(delta.get("message"))
        if kind == "content-delta":
            content = _mapping(message.get("content"))
            return StreamDelta(text=str(content.get("text") or "")), False
        if kind in ("tool-call-start", "tool-call-delta"):
            call = _mapping(message.get("tool_calls"))
            fragment: dict[str, Any] = {"index": data.get("index")}
            if call.get("id"):
                fragment["id"] = call["id"]
            if call.get("type"):
                fragment["type"] = call["type"]
            fragment["function"] = dict(_mapping(call.get("function")))
            return StreamDelta(tool_calls=[fragment]), False
        if kind == "message-end":
            usage = _reported_usage(delta.get("usage"))
            finish = _finish_reason(delta.get("finish_reason"))
            return StreamDelta(usage=usage, finish_reason=finish), True
        if kind is None and isinstance(data.get("message"), str):
            raise self.context.classify(None, data)  # an error body inside the stream
        return None, False


def _cohere_message(message: Mapping[str, Any]) -> dict[str, Any]:
    # Cohere takes OpenAI-shaped messages but refuses fields it does not know (`name`) and a
    # null content next to tool calls.
    return {key: message[key] for key in MESSAGE_KEYS if message.get(key) is not None}


def _options(gen_conf: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in ("temperature", "max_tokens", "seed", "frequency_penalty", "presence_penalty"):
        if gen_conf.get(key) is not None:
            options[key] = gen_conf[key]
    if gen_conf.get("top_p") is not None:
        options["p"] = min(float(gen_conf["top_p"]), MAX_P)
    if gen_conf.get("top_k") is not None:
        options["k"] = gen_conf["top_k"]
    stop = gen_conf.get("stop")
    if stop:
        options["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    choice = gen_conf.get("tool_choice")
    if choice in ("required", "none"):  # "auto" is Cohere's default and has no name
        options["tool_choice"] = choice.upper()
    return options


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments or {})
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function.get("name") or "", "arguments": arguments},
    }


def _finish_reason(reason: Any) -> str | None:
    if not isinstance(reason, str) or not reason:
        return None
    return FINISH_REASONS.get(reason, reason.lower())


def _reported_usage(usage: Any) -> Usage | None:
    found = usage_from_response({"usage": usage}) if isinstance(usage, Mapping) else None
    return found if found is not None and found.total_tokens > 0 else None


# --- embed ---------------------------------------------------------------------------------------


class CohereEmbedding(CohereWire, EmbeddingModel):
    factories = ("Cohere",)
    batch_size = 96  # the most texts v2/embed takes in one call

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        body = {
            "model": self.wire_model_name,
            "texts": texts,
            "input_type": "search_query" if query else "search_document",
            "embedding_types": ["float"],
        }
        data = self._json(self.post("v2/embed", body))
        embeddings = data.get("embeddings") if isinstance(data, Mapping) else None
        vectors = embeddings.get("float") if isinstance(embeddings, Mapping) else None
        if not isinstance(vectors, list):
            raise self._malformed("the embed response has no float embeddings")
        try:
            vectors = [[float(x) for x in vector] for vector in vectors]
        except (TypeError, ValueError):
            raise self._malformed("an embedding is not a list of numbers") from None
        billed = _dig(data, "meta", "billed_units", "input_tokens")
        if isinstance(billed, int) and billed > 0:
            usage = Usage(prompt_tokens=billed)
        else:
            usage = self.estimate_usage(texts)
        return EmbeddingResult(vectors, usage)


# --- rerank --------------------------------------------------------------------------------------


class CohereRerank(CohereWire, RerankModel):
    factories = ("Cohere",)

    def _rerank(self, query: str, texts: list[str]) -> RerankResult:
        body = {
            "model": self.wire_model_name,
            "query": query,
            "documents": texts,
            "top_n": len(texts),
        }
        data = self._json(self.post("v2/rerank", body))
        results = data.get("results") if isinstance(data, Mapping) else None
        scores = scores_in_input_order(self, results, len(texts))
        # Billed in search units, which are not tokens: count the tokens ourselves.
        return RerankResult(scores, self.estimate_usage(query, texts))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data
