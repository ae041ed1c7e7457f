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

import json
from collections.abc import Mapping
from typing import Any

from ..base import BaseAdapter
from ..errors import AuthError, ProviderError
from ..http import Request
from ..kinds.chat import ChatModel, ChatRequest, StreamStep
from ..kinds.embedding import EmbeddingModel, RerankModel
from ..results import ChatResult, EmbeddingResult, RerankResult, Usage
from ..sse import SSEEvent
from ..streams import StreamDelta
from ..tokens import reported_usage
from ..wire import dig, mapping

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

    def refine_error(self, error: ProviderError) -> ProviderError:
        if error.status != INVALID_TOKEN_STATUS or isinstance(error, AuthError):
            return error
        return self.context.error(AuthError, error.detail, status=error.status)


# --- chat ----------------------------------------------------------------------------------------


class CohereChat(CohereWire, ChatModel, factories=("Cohere",)):
    stream_end_marker = "message-end"

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        body: dict[str, Any] = {
            "model": self.wire_model_name,
            "messages": [_cohere_message(message) for message in request.messages()],
        }
        body.update(_options(request.gen_conf))
        if request.tools:
            body["tools"] = request.tools
        if stream:
            body["stream"] = True
        return self.post("v2/chat", json=body)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
            raise self.malformed("the chat response has no message")
        message = data["message"]
        content = message.get("content") or []
        if not isinstance(content, list):
            raise self.malformed("the message content is not a list")
        text = "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
        tool_calls = [_tool_call(call) for call in message.get("tool_calls") or []] or None
        usage = _reported_usage(data.get("usage"))
        finish = _finish_reason(data.get("finish_reason"))
        return self.chat_result(request, text, usage, tool_calls, finish)

    # --- streaming ---

    def stream_step(self, event: SSEEvent) -> StreamStep:
        delta, ended = self.parse_event(event)
        return StreamStep((delta,) if delta is not None else (), complete=ended, stop=ended)

    def parse_event(self, event: SSEEvent) -> tuple[StreamDelta | None, bool]:
        """The delta one event carries (if any), and whether it ends the stream."""
        data = self.stream_object(event.data, "stream event")
        kind = data.get("type") or event.event
        delta = mapping(data.get("delta"))
        message = mapping(delta.get("message"))
        if kind == "content-delta":
            content = mapping(message.get("content"))
            return StreamDelta(text=str(content.get("text") or "")), False
        if kind in ("tool-call-start", "tool-call-delta"):
            call = mapping(message.get("tool_calls"))
            fragment: dict[str, Any] = {"index": data.get("index")}
            if call.get("id"):
                fragment["id"] = call["id"]
            if call.get("type"):
                fragment["type"] = call["type"]
            fragment["function"] = dict(mapping(call.get("function")))
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
    return reported_usage({"usage": usage}) if isinstance(usage, Mapping) else None


# --- embed ---------------------------------------------------------------------------------------


class CohereEmbedding(CohereWire, EmbeddingModel, factories=("Cohere",)):
    batch_size = 96  # the most texts v2/embed takes in one call

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        body = {
            "model": self.wire_model_name,
            "texts": texts,
            "input_type": "search_query" if query else "search_document",
            "embedding_types": ["float"],
        }
        return self.post("v2/embed", json=body)

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        vectors = dig(data, "embeddings", "float")
        if not isinstance(vectors, list):
            raise self.malformed("the embed response has no float embeddings")
        billed = dig(data, "meta", "billed_units", "input_tokens")
        if isinstance(billed, int) and billed > 0:
            usage = Usage(prompt_tokens=billed)
        else:
            usage = self.estimate_usage(texts)
        return EmbeddingResult(self.vectors(vectors), usage)


# --- rerank --------------------------------------------------------------------------------------


class CohereRerank(CohereWire, RerankModel, factories=("Cohere",)):
    def rerank_request(self, query: str, texts: list[str]) -> Request:
        return self.post("v2/rerank", json=self.documents_body(query, texts))

    def parse_rerank(self, data: Any, query: str, texts: list[str]) -> RerankResult:
        scores = self.scores_in_input_order(mapping(data).get("results"), len(texts))
        # Billed in search units, which are not tokens: count the tokens ourselves.
        return RerankResult(scores, self.estimate_usage(query, texts))
