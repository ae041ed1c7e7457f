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
from collections.abc import Callable, Mapping
from typing import Any

from ..base import BaseAdapter
from ..errors import InvalidRequestError
from ..http import Request
from ..kinds.chat import ChatModel, ChatRequest, Image2TextModel, StreamStep, StreamSteps
from ..kinds.embedding import EmbeddingModel
from ..media import image_url_of, split_data_url
from ..results import ChatResult, EmbeddingResult, Usage
from ..sse import LineBuffer
from ..streams import StreamDelta

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

    # A clean end of the body before the last line: the server (or a proxy) stopped mid-answer.
    stream_end_marker = 'its "done" line'

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
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
        return self.post("api/chat", json=body)

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
                    images.append(self.image_base64(image_url_of(part)))
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
        if url.startswith(("http://", "https://")):
            # The native API has no image URLs, and fetching one for the user would let
            # them make this service call any address.
            raise self.context.error(
                InvalidRequestError, "Ollama takes images inline; send the image, not its URL"
            )
        return split_data_url(url)[1]

    def ollama_tool_call(self, call: Mapping[str, Any]) -> dict[str, Any]:
        name = (call.get("function") or {}).get("name") or ""
        return {"function": {"name": name, "arguments": self.tool_arguments(call)}}

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping):
            raise self.malformed("the chat response is not a JSON object")
        if data.get("error"):
            raise self.context.classify(None, data)
        message = data.get("message")
        if not isinstance(message, Mapping):
            raise self.malformed("the chat response has no message")
        text = str(message.get("content") or "")
        tool_calls = [_openai_tool_call(call) for call in message.get("tool_calls") or []] or None
        usage = self.reported_usage(data, self.prompt_estimate(request))
        finish = _finish_reason(data.get("done_reason"), tool_calls=bool(tool_calls))
        return self.chat_result(request, text, usage, tool_calls, finish)

    def prompt_estimate(self, request: ChatRequest) -> Callable[[], int]:
        return lambda: request.estimate_prompt_tokens(self.encoding)

    # --- streaming ---

    def stream_decoder(self, request: ChatRequest) -> StreamSteps[str]:
        return StreamSteps(LineBuffer(), self.line_stepper(request), self.stream_cut_off)

    def line_stepper(self, request: ChatRequest) -> Callable[[str], StreamStep]:
        calls = 0  # tool calls so far in this stream, to number the next ones

        def step(line: str) -> StreamStep:
            nonlocal calls
            delta, done = self.parse_line(line, request, calls)
            if delta is None:
                return StreamStep()
            calls += len(delta.tool_calls or ())
            return StreamStep((delta,), complete=done, stop=done)

        return step

    def parse_line(
        self, line: str, request: ChatRequest, calls_so_far: int
    ) -> tuple[StreamDelta | None, bool]:
        """The delta one NDJSON line carries, and whether it is the last."""
        if not line.strip():
            return None, False
        data = self.stream_object(line, "stream line")
        if data.get("error"):
            raise self.context.classify(None, data)
        message = data.get("message") if isinstance(data.get("message"), Mapping) else {}
        fragments = [
            dict(_openai_tool_call(call), index=calls_so_far + offset)
            for offset, call in enumerate(message.get("tool_calls") or [])
        ]
        delta = StreamDelta(text=str(message.get("content") or ""), tool_calls=fragments or None)
        if data.get("done") is True:
            delta.usage = self.reported_usage(data, self.prompt_estimate(request))
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


class OllamaChat(OllamaChatWire, ChatModel, factories=("Ollama",)): ...


class OllamaImage2Text(OllamaChatWire, Image2TextModel, factories=("Ollama",)):
    """Images travel beside a message's text as bare base64; image URLs are refused."""


# --- embeddings ----------------------------------------------------------------------------------


class OllamaEmbedding(OllamaWire, EmbeddingModel, factories=("Ollama",)):
    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        return self.post("api/embed", json={"model": self.wire_model_name, "input": texts})

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        vectors = data.get("embeddings") if isinstance(data, Mapping) else None
        if not isinstance(vectors, list):
            raise self.malformed("the embed response has no embeddings list")
        tokens = _count(data.get("prompt_eval_count"))
        usage = Usage(prompt_tokens=tokens) if tokens else self.estimate_usage(texts)
        return EmbeddingResult(self.vectors(vectors), usage)
