"""The Anthropic Messages API (factory "Anthropic"): chat and vision.

- POST v1/messages, relative to https://api.anthropic.com (a base URL given with /v1 is
  accepted). Headers `x-api-key: <key>` and `anthropic-version: 2023-06-01`.
- Body: {"model", "max_tokens" (required; gen_conf's or 4096), "messages", "system"?,
  "temperature"?, "top_p"?, "top_k"?, "stop_sequences"?, "tools"?, "tool_choice"?,
  "stream"?}. The system prompt is a top-level field, never a message; messages carry
  content blocks: text, `image` ({"source": {"type": "base64", "media_type", "data"}} or
  {"type": "url", "url"}), `tool_use` and `tool_result`.
- Reply: {"content": [blocks], "stop_reason", "usage": {"input_tokens", "output_tokens",
  "cache_creation_input_tokens", "cache_read_input_tokens"}}; cache reads and writes are
  prompt tokens too.
- Streaming (SSE, `event:` + `data:`): message_start (the input usage), content_block_start,
  content_block_delta (text_delta / input_json_delta), content_block_stop, message_delta
  (stop_reason and the output usage, cumulative: the last one wins), message_stop; `ping`
  anywhere, and `error` events ({"type": "error", "error": {"type": "overloaded_error", ...}})
  in the middle of a 200 stream.
- Errors: {"type": "error", "error": {"type": "authentication_error" | "permission_error" |
  "rate_limit_error" | "overloaded_error" (HTTP 529) | ..., "message"}}.

Callers speak OpenAI's dialect (messages with a "system" role, image_url parts, tool_calls,
"tool" messages, OpenAI tool definitions); this module translates both ways. A `refusal`
stop reason raises ContentFilteredError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..base import BaseAdapter
from ..errors import ContentFilteredError
from ..http import Request
from ..kinds.chat import ChatModel, ChatRequest, Image2TextModel, StreamStep, reader_steps
from ..media import image_url_of, split_data_url
from ..results import ChatResult, Usage
from ..sse import SSEEvent
from ..streams import StreamDelta
from ..tokens import reported_usage, usage_from_response
from ..wire import add_turn, content_parts, content_text

API_VERSION = "2023-06-01"
MESSAGES_PATH = "v1/messages"
DEFAULT_MAX_TOKENS = 4096

# Anthropic's stop reasons in the OpenAI words callers already know.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicWire(BaseAdapter):
    """Addressing, authentication and translation for the Messages API. Not registered."""

    default_base_url = "https://api.anthropic.com"

    def resolve_base_url(self, given: str | None) -> str:
        # The path carries /v1; users who paste "https://host/v1" mean the same server.
        return super().resolve_base_url(given).removesuffix("/v1")

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.credentials.key:
            headers["x-api-key"] = self.credentials.key
        return headers

    def refused(self) -> ContentFilteredError:
        return self.context.error(
            ContentFilteredError, "the model refused to answer (stop_reason: refusal)"
        )

    # --- request ---

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        system, messages = self.translate_history(request)
        body: dict[str, Any] = {
            "model": self.wire_model_name,
            "max_tokens": _max_tokens(request.gen_conf),
            "messages": messages,
        }
        if system:
            body["system"] = system
        body.update(_sampling(request.gen_conf))
        if request.tools:
            body["tools"] = [_tool(tool) for tool in request.tools]
            choice = _tool_choice(request.gen_conf)
            if choice:
                body["tool_choice"] = choice
        if stream:
            body["stream"] = True
        return self.post(MESSAGES_PATH, json=body)

    def translate_history(self, request: ChatRequest) -> tuple[str, list[dict[str, Any]]]:
        """The system text, and the history as Anthropic messages."""
        system, turns = request.system_and_turns()
        messages: list[dict[str, Any]] = []
        for message in turns:
            role = message.get("role")
            content = message.get("content")
            if role == "tool":
                role, blocks = "user", [_tool_result(message)]
            elif role == "assistant":
                blocks = _blocks(content) + [
                    self._tool_use(call) for call in message.get("tool_calls") or ()
                ]
            else:
                role, blocks = "user", _blocks(content)
            if blocks:  # Anthropic rejects empty text blocks
                add_turn(messages, role, blocks)
        for message in messages:
            blocks = message["content"]
            if len(blocks) == 1 and blocks[0].get("type") == "text":
                message["content"] = blocks[0]["text"]
        return system, messages

    def _tool_use(self, call: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": call.get("id"),
            "name": (call.get("function") or {}).get("name"),
            "input": self.tool_arguments(call),
        }

    # --- reply ---

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping):
            raise self.malformed("the message is not a JSON object")
        if data.get("type") == "error" or isinstance(data.get("error"), Mapping):
            raise self.context.classify(None, data)
        content = data.get("content")
        if not isinstance(content, list):
            raise self.malformed("the message has no content list")
        texts, tool_calls = [], []
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": json.dumps(block.get("input") or {}),
                        },
                    }
                )
        if data.get("stop_reason") == "refusal":
            raise self.refused()
        text = "".join(texts)
        usage = reported_usage(data)
        finish = _finish_reason(data.get("stop_reason"))
        return self.chat_result(request, text, usage, tool_calls, finish)

    # --- streaming ---

    stream_end_marker = "its message_stop event"

    def stream_stepper(self, request: ChatRequest) -> Callable[[SSEEvent], StreamStep]:
        return reader_steps(_EventReader(self))


class _EventReader:
    """Turns one stream's events into StreamDeltas.

    Until message_delta reports the output tokens, each delta carries the exact input count
    from message_start plus an estimate of the output received so far (estimated=True), so
    a stream closed early or cut off is still billed for the prompt the provider counted.
    """

    def __init__(self, adapter: AnthropicWire) -> None:
        self.adapter = adapter
        self.usage_fields: dict[str, Any] = {}
        self.output_reported = False
        self.output_estimate = 0
        self.tool_calls: dict[int, int] = {}  # content block index -> tool call index
        self.tool_calls_with_input: set[int] = set()
        self.complete = False  # message_stop came

    def read(self, event: SSEEvent) -> Iterator[StreamDelta]:
        data = self.adapter.stream_object(event.data, "stream event")
        kind = data.get("type") or event.event
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage")
            if isinstance(usage, Mapping):
                self.usage_fields.update(usage)
        elif kind == "content_block_start":
            yield from self._block_start(data)
        elif kind == "content_block_delta":
            yield from self._block_delta(data)
        elif kind == "content_block_stop":
            call = self.tool_calls.get(data.get("index"))
            if call is not None and call not in self.tool_calls_with_input:
                # A tool without parameters streams no input at all; OpenAI says "{}".
                yield StreamDelta(tool_calls=[{"index": call, "function": {"arguments": "{}"}}])
        elif kind == "message_delta":
            usage = data.get("usage")
            if isinstance(usage, Mapping):
                self.usage_fields.update({k: v for k, v in usage.items() if v is not None})
                self.output_reported = True
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            yield StreamDelta(usage=self.usage(), finish_reason=_finish_reason(stop_reason))
            if stop_reason == "refusal":
                raise self.adapter.refused()
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            raise self.adapter.context.classify(None, data)
        # `ping` and event types added later are ignored, as Anthropic asks of clients.

    def _block_start(self, data: Mapping[str, Any]) -> Iterator[StreamDelta]:
        block = data.get("content_block") or {}
        if block.get("type") == "tool_use":
            call = self.tool_calls[data.get("index")] = len(self.tool_calls)
            fragment = {"index": call, "id": block.get("id"), "type": "function"}
            fragment["function"] = {"name": block.get("name"), "arguments": ""}
            yield StreamDelta(tool_calls=[fragment])
        elif block.get("type") == "text" and block.get("text"):
            yield self._text(block["text"])

    def _block_delta(self, data: Mapping[str, Any]) -> Iterator[StreamDelta]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            yield self._text(str(delta.get("text") or ""))
        elif kind == "input_json_delta":
            call = self.tool_calls.get(data.get("index"))
            partial = str(delta.get("partial_json") or "")
            if call is not None and partial:
                self.tool_calls_with_input.add(call)
                self.output_estimate += self.adapter.count_tokens(partial)
                fragment = {"index": call, "function": {"arguments": partial}}
                yield StreamDelta(tool_calls=[fragment], usage=self.usage())
        elif kind == "thinking_delta":
            self.output_estimate += self.adapter.count_tokens(delta.get("thinking"))

    def _text(self, text: str) -> StreamDelta:
        self.output_estimate += self.adapter.count_tokens(text)
        return StreamDelta(text=text, usage=self.usage())

    def usage(self) -> Usage | None:
        if not self.usage_fields:
            return None
        reported = usage_from_response({"usage": self.usage_fields})
        if reported is None:
            return None
        if self.output_reported:
            return reported if reported.total_tokens > 0 else None
        return Usage(reported.prompt_tokens, self.output_estimate, estimated=True)


# --- translation helpers (OpenAI dialect -> Anthropic) -----------------------------------------


def _max_tokens(gen_conf: Mapping[str, Any]) -> int:
    value = gen_conf.get("max_tokens") or gen_conf.get("max_completion_tokens")
    return int(value) if value else DEFAULT_MAX_TOKENS


def _sampling(gen_conf: Mapping[str, Any]) -> dict[str, Any]:
    options = {
        key: gen_conf[key]
        for key in ("temperature", "top_p", "top_k")
        if gen_conf.get(key) is not None
    }
    # Claude Opus 4.1 and later answer 400 when both are set, and RAGFlow's gen_conf usually
    # carries both: keep the temperature.
    if "temperature" in options and "top_p" in options:
        del options["top_p"]
    stop = gen_conf.get("stop")
    if stop:
        options["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return options


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or "function" not in tool:
        return dict(tool)  # already Anthropic-shaped (or one of its server tools)
    function = tool["function"]
    converted = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


def _tool_choice(gen_conf: Mapping[str, Any]) -> dict[str, Any] | None:
    choice = gen_conf.get("tool_choice")
    converted: dict[str, Any] | None
    if choice in ("auto", "none"):
        converted = {"type": choice}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        converted = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif isinstance(choice, Mapping):
        converted = dict(choice)
    else:
        converted = None
    if gen_conf.get("parallel_tool_calls") is False:
        converted = converted or {"type": "auto"}
        if converted["type"] != "none":
            converted["disable_parallel_tool_use"] = True
    return converted


def _blocks(content: Any) -> list[dict[str, Any]]:
    blocks = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind == "text":
            if str(part.get("text") or "").strip():
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(image_url_of(part)))
        else:
            blocks.append(dict(part))  # Anthropic blocks given as they are (image, document...)
    return blocks


def _image(url: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = split_data_url(url)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    text = content_text(message.get("content"), text_parts_only=True)
    if text:
        block["content"] = text
    return block


def _finish_reason(stop_reason: Any) -> str | None:
    if not stop_reason:
        return None
    return FINISH_REASONS.get(stop_reason, str(stop_reason))


class AnthropicChat(AnthropicWire, ChatModel, factories=("Anthropic",)): ...


class AnthropicImage2Text(AnthropicWire, Image2TextModel, factories=("Anthropic",)): ...
