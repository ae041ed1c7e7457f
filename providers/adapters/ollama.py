"""Ollama's native API: chat, vision and embeddings.

Endpoints, relative to the server's root (http://127.0.0.1:11434 unless the user says
otherwise; a trailing /v1, where Ollama serves its OpenAI-compatible API, is dropped):
- POST api/chat: {"model", "messages", "stream", "options"?, "tools"?} -> {"message": {"role",
  "content", "tool_calls"?}, "done": true, "done_reason", "prompt_eval_count", "eval_count"}.
  A message's content is a string; its images are a list of bare base64 strings beside it.
  Tool call arguments are JSON objects, not strings. Generation options go in `options` under
  Ollama's names (`num_predict` for max_tokens). `stream` defaults to true, so it is always
  sent. Streamed as NDJSON, one JSON object per line; the last says "done": true and carries
  the counts.
- POST api/embed: {"model", "input": [...]} -> {"embeddings": [[...]], "prompt_eval_count"}.
Ollama itself has no authentication; a key, when given (a proxy in front), goes as Bearer.
Errors: {"error": "..."}, with an HTTP status, or as a line of a stream that already began.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx

from ..base import (
    AsyncChatStream,
    BaseAdapter,
    ChatModel,
    ChatRequest,
    ChatStream,
    EmbeddingModel,
    Image2TextModel,
    StreamDelta,
)
from ..errors import InvalidRequestError, ProviderConnectionError
from ..results import ChatResult, EmbeddingResult, Usage

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
# gen_conf names -> Ollama option names.
OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "num_predict",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


class OllamaWire(BaseAdapter):
    """Addressing and authentication. Not registered."""

    default_base_url = DEFAULT_BASE_URL

    def resolve_base_url(self, given: str | None) -> str:
        return super().resolve_base_url(given).removesuffix("/v1")

    def headers(self) -> dict[str, str]:
        key = self.credentials.key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def reported_usage(
        self, data: Mapping[str, Any], estimate_prompt: Callable[[], int]
    ) -> Usage | None:
        """The counts of a final reply. Older Ollama versions leave `prompt_eval_count` out
        when the whole prompt came from their cache: that part is then estimated."""
        prompt = _count(data.get("prompt_eval_count"))
        completion = _count(data.get("eval_count"))
        if prompt is None and completion is None:
            return None
        if prompt is None:
            return Usage(estimate_prompt(), completion or 0, estimated=True)
        return Usage(prompt, completion or 0)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(value, 0)


# --- chat ----------------------------------------------------------------------------------------


class OllamaChatWire(OllamaWire):
    """api/chat, for chat and vision adapters alike. Not registered."""

    def chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.wire_model_name,
            "messages": [self.ollama_message(message) for message in request.messages()],
            "stream": stream,
        }
        options = _options(request.gen_conf)
        if options:
            body["options"] = options
        if request.tools:
            body["tools"] = request.tools
        return body

    def ollama_message(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """An OpenAI-style message in Ollama's shape: text content, images beside it, tool
        call arguments as objects."""
        content = message.get("content")
        texts: list[str] = []
        images: list[str] = list(message.get("images") or [])
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, Mapping) and part.get("type") == "text":
                    texts.append(str(part.get("text") or ""))
                elif isinstance(part, Mapping) and part.get("type") == "image_url":
                    url = part.get("image_url")
                    url = url.get("url") if isinstance(url, Mapping) else url
                    images.append(self.image_base64(str(url or "")))
        converted: dict[str, Any] = {
            "role": message.get("role"),
            "content": "\n".join(text for text in texts if text),
        }
        if images:
            converted["images"] = images
        if message.get("tool_calls"):
            converted["tool_calls"] = [self.ollama_tool_call(c) for c in message["tool_calls"]]
        tool_name = message.get("tool_name") or message.get("name")
        if message.get("role") == "tool" and tool_name:
            converted["tool_name"] = tool_name
        return converted

    def image_base64(self, url: str) -> str:
        if url.startswith("data:"):
            return url.partition(",")[2]
        if url.startswith(("http://", "https://")):
            # The native API has no image URLs, and fetching one for the user would let
            # them make this service call any address.
            raise self.context.error(
                InvalidRequestError, "Ollama takes images inline; send the image, not its URL"
            )
        return url  # already bare base64

    def ollama_tool_call(self, call: Mapping[str, Any]) -> dict[str, Any]:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = None
        if not isinstance(arguments, Mapping):
            raise self.context.error(
                InvalidRequestError, "tool call arguments must be a JSON object for Ollama"
            )
        return {"function": {"name": function.get("name") or "", "arguments": dict(arguments)}}

    def _chat(self, request: ChatRequest) -> ChatResult:
        response = self._request(
            "POST",
            "api/chat",
            headers=self.headers(),
            json=self.chat_body(request, stream=False),
        )
        return self.parse_response(self._json(response), request)

    async def _achat(self, request: ChatRequest) -> ChatResult:
        response = await self._arequest(
            "POST",
            "api/chat",
            headers=self.headers(),
            json=self.chat_body(request, stream=False),
        )
        return self.parse_response(self._json(response), request)

    def _chat_stream(self, request: ChatRequest) -> ChatStream:
        response = self._open_stream(
            "POST", "api/chat", headers=self.headers(), json=self.chat_body(request, stream=True)
        )
        deltas = self.stream_deltas(response, request)
        return self.make_stream(request, deltas, on_close=response.close)

    async def _achat_stream(self, request: ChatRequest) -> AsyncChatStream:
        response = await self._aopen_stream(
            "POST", "api/chat", headers=self.headers(), json=self.chat_body(request, stream=True)
        )
        deltas = self.astream_deltas(response, request)
        return self.make_async_stream(request, deltas, on_close=response.aclose)

    def parse_response(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping):
            raise self._malformed("the chat response is not a JSON object")
        if data.get("error"):
            raise self.context.classify(None, data)
        message = data.get("message")
        if not isinstance(message, Mapping):
            raise self._malformed("the chat response has no message")
        text = str(message.get("content") or "")
        tool_calls = [_openai_tool_call(call) for call in message.get("tool_calls") or []] or None
        usage = self.reported_usage(data, lambda: request.estimate_prompt_tokens(self.encoding))
        if usage is None:
            arguments = "".join(call["function"]["arguments"] for call in tool_calls or ())
            usage = self.estimate_usage(request, text + arguments)
        finish = _finish_reason(data.get("done_reason"), tool_calls=bool(tool_calls))
        return ChatResult(text, usage, tool_calls, finish)

    # --- streaming ---

    def stream_deltas(
        self, response: httpx.Response, request: ChatRequest
    ) -> Iterator[StreamDelta]:
        try:
            calls = 0
            for line in response.iter_lines():
                delta, done = self.parse_line(line, request, calls)
                if delta is None:
                    continue
                calls += len(delta.tool_calls or ())
                yield delta
                if done:
                    return
            raise self._cut_off()
        finally:
            response.close()

    async def astream_deltas(
        self, response: httpx.Response, request: ChatRequest
    ) -> AsyncIterator[StreamDelta]:
        try:
            calls = 0
            async for line in response.aiter_lines():
                delta, done = self.parse_line(line, request, calls)
                if delta is None:
                    continue
                calls += len(delta.tool_calls or ())
                yield delta
                if done:
                    return
            raise self._cut_off()
        finally:
            await response.aclose()

    def _cut_off(self) -> ProviderConnectionError:
        return self.context.error(
            ProviderConnectionError, 'the stream ended before its "done" line'
        )

    def parse_line(
        self, line: str, request: ChatRequest, calls_so_far: int
    ) -> tuple[StreamDelta | None, bool]:
        """The delta one NDJSON line carries, and whether it is the last."""
        if not line.strip():
            return None, False
        try:
            data = json.loads(line)
        except ValueError:
            raise self._malformed(f"stream line is not JSON: {line[:200]!r}") from None
        if not isinstance(data, Mapping):
            raise self._malformed("stream line is not a JSON object")
        if data.get("error"):
            raise self.context.classify(None, data)
        message = data.get("message") if isinstance(data.get("message"), Mapping) else {}
        fragments = [
            dict(_openai_tool_call(call), index=calls_so_far + offset)
            for offset, call in enumerate(message.get("tool_calls") or [])
        ]
        delta = StreamDelta(text=str(message.get("content") or ""), tool_calls=fragments or None)
        if data.get("done") is True:
            delta.usage = self.reported_usage(
                data, lambda: request.estimate_prompt_tokens(self.encoding)
            )
            delta.finish_reason = _finish_reason(
                data.get("done_reason"), tool_calls=bool(calls_so_far or fragments)
            )
            return delta, True
        return delta, False


def _options(gen_conf: Mapping[str, Any]) -> dict[str, Any]:
    options = {
        OPTION_NAMES[key]: value
        for key, value in gen_conf.items()
        if key in OPTION_NAMES and value is not None
    }
    if isinstance(options.get("stop"), str):
        options["stop"] = [options["stop"]]
    return options


def _openai_tool_call(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    function = function if isinstance(function, Mapping) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    return {
        "id": call.get("id") if isinstance(call, Mapping) else None,
        "type": "function",
        "function": {"name": str(function.get("name") or ""), "arguments": arguments},
    }


def _finish_reason(reason: Any, *, tool_calls: bool) -> str | None:
    if tool_calls and reason in (None, "", "stop"):
        return "tool_calls"
    return reason if isinstance(reason, str) and reason else None


class OllamaChat(OllamaChatWire, ChatModel):
    factories = ("Ollama",)


class OllamaImage2Text(OllamaChatWire, Image2TextModel):
    factories = ("Ollama",)


# --- embeddings ----------------------------------------------------------------------------------


class OllamaEmbedding(OllamaWire, EmbeddingModel):
    factories = ("Ollama",)

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        body = {"model": self.wire_model_name, "input": texts}
        response = self._request("POST", "api/embed", headers=self.headers(), json=body)
        data = self._json(response)
        vectors = data.get("embeddings") if isinstance(data, Mapping) else None
        if not isinstance(vectors, list):
            raise self._malformed("the embed response has no embeddings list")
        try:
            vectors = [[float(x) for x in vector] for vector in vectors]
        except (TypeError, ValueError):
            raise self._malformed("an embedding is not a list of numbers") from None
        tokens = _count(data.get("prompt_eval_count"))
        usage = Usage(prompt_tokens=tokens) if tokens else self.estimate_usage(texts)
        return EmbeddingResult(vectors, usage)
