"""The Anthropic Messages API on the fake provider: POST /anthropic/v1/messages.

`/anthropic` stands for the host (base URL `fake.url("/anthropic")`). Requests are checked the
way Anthropic checks them (`x-api-key`, `anthropic-version`, required `model`, `max_tokens` and
`messages`, no "system" role, no unknown fields, well-formed content blocks and tools) and
malformed ones get a 400 with Anthropic's error body. Behaviour is chosen by the key or the
model name (see KEYS and MODELS); anything else gets a normal reply in Anthropic's format.
Streams are `event:` + `data:` SSE in Anthropic's order, with a `ping` among them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

PATH = "/anthropic/v1/messages"
API_VERSION = "2023-06-01"

CHAT_TEXT = "Hello from the fake Claude."
CHAT_PIECES = ["Hello", " from", " the", " fake", " Claude."]
VISION_TEXT = "A picture of a fake Claude."
USAGE = {"input_tokens": 21, "output_tokens": 7}
CACHE_USAGE = {
    "input_tokens": 5,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 1000,
    "output_tokens": 7,
}
TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_fake_1",
    "name": "get_weather",
    "input": {"city": "Paris"},
}
TOOL_ARGUMENTS = '{"city": "Paris"}'

FIELDS = {
    "model",
    "max_tokens",
    "messages",
    "system",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "service_tier",
}
BLOCK_TYPES = {"text", "image", "document", "tool_use", "tool_result", "thinking"}
MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


def register(server: FakeProviderServer) -> None:
    server.route("POST", PATH, handle)


# --- errors in Anthropic's documented shape ------------------------------------------------------


def error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return Reply.json(body, status=status, headers={"request-id": "req_fake", **(headers or {})})


def bad_request(message: str) -> Reply:
    return error(400, "invalid_request_error", message)


# Behaviour by key. The 401 echoes the key (Anthropic does not) so tests can prove scrubbing.
KEYS: dict[str, Callable[[str], Reply]] = {
    "sk-ant-invalid": lambda key: error(401, "authentication_error", f"invalid x-api-key {key}"),
    "sk-ant-forbidden": lambda key: error(
        403,
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    "sk-ant-nocredit": lambda key: bad_request(
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits."
    ),
}

# Behaviour by model name, before any normal reply.
MODELS: dict[str, Callable[[], Reply]] = {
    "fake-429": lambda: error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization.",
        headers={"retry-after": "2"},
    ),
    "fake-500": lambda: error(500, "api_error", "Internal server error"),
    "fake-529": lambda: error(529, "overloaded_error", "Overloaded"),
    "missing-model": lambda: error(404, "not_found_error", "model: missing-model"),
    "fake-malformed": lambda: Reply.raw(b'{"id": "msg_fake", "type": "message", "conte'),
}
SLOW_MODEL = "fake-slow"
SLOW_SECONDS = 2.0


def handle(request: RecordedRequest) -> Reply:
    key = request.headers.get("x-api-key")
    if not key:
        return error(401, "authentication_error", "x-api-key header is required")
    for prefix, reply in KEYS.items():
        if key.startswith(prefix):
            return reply(key)
    if request.headers.get("anthropic-version") != API_VERSION:
        return bad_request("anthropic-version: header is required and must be a known version")
    body = request.json
    if not isinstance(body, dict):
        return bad_request("There was an error parsing the body of your request as JSON.")
    problem = check_body(body)
    if problem:
        return bad_request(problem)
    model = body["model"]
    if model in MODELS:
        return MODELS[model]()
    reply = stream(body) if body.get("stream") is True else message(body)
    reply.delay = SLOW_SECONDS if model == SLOW_MODEL else 0.0
    return reply


# --- request checks ------------------------------------------------------------------------------


def check_body(body: dict[str, Any]) -> str | None:
    for field in sorted(set(body) - FIELDS):
        return f"{field}: Extra inputs are not permitted"
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return f"{field}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a valid positive integer"
    if "temperature" in body and "top_p" in body and not body["model"].startswith("claude-3"):
        return (
            "`temperature` and `top_p` cannot both be specified for this model. "
            "Please use only one."
        )
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or a list of text blocks"
    if "stop_sequences" in body and not isinstance(body["stop_sequences"], list):
        return "stop_sequences: Input should be a valid list"
    return check_messages(body["messages"]) or check_tools(body)


def check_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    tool_use_ids: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            return (
                f'messages.{index}.role: Unexpected role "system". The Messages API accepts a '
                'top-level `system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if isinstance(content, str):
            if not content.strip():
                return f"messages.{index}: text content blocks must contain non-whitespace text"
            continue
        if not isinstance(content, list) or not content:
            return f"messages.{index}.content: Field required"
        for number, block in enumerate(content):
            problem = check_block(block, role, tool_use_ids)
            if problem:
                return f"messages.{index}.content.{number}: {problem}"
    return None


def check_block(block: Any, role: str, tool_use_ids: set[str]) -> str | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in BLOCK_TYPES:
        return f"Input tag {kind!r} found using 'type' does not match any of the expected tags"
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str) or not text.strip():
            return "text content blocks must contain non-whitespace text"
    elif kind == "image":
        return check_image(block.get("source"))
    elif kind == "tool_use":
        if role != "assistant":
            return "tool_use blocks may only appear in assistant messages"
        if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
            return "tool_use blocks need an id, a name and an input object"
        tool_use_ids.add(block["id"])
    elif kind == "tool_result":
        if role != "user":
            return "tool_result blocks may only appear in user messages"
        if block.get("tool_use_id") not in tool_use_ids:
            return (
                "unexpected `tool_use_id` found in `tool_result` blocks: each `tool_result` "
                "block must have a corresponding `tool_use` block in the previous message."
            )
    return None


def check_image(source: Any) -> str | None:
    if not isinstance(source, dict):
        return "image.source: Field required"
    if source.get("type") == "url":
        return None if str(source.get("url", "")).startswith("https://") else "invalid url"
    if source.get("type") != "base64":
        return "image.source.type: Input should be 'base64' or 'url'"
    if source.get("media_type") not in MEDIA_TYPES:
        return "image.source.media_type: Input should be 'image/jpeg', 'image/png', ..."
    try:
        base64.b64decode(source.get("data") or "", validate=True)
    except binascii.Error:
        return "image.source.data: invalid base64 data"
    return None


def check_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is None:
        if "tool_choice" in body:
            return "tool_choice: may only be specified while providing tools"
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name"):
            return f"tools.{index}.name: Field required"
        if set(tool) - {"name", "description", "input_schema", "cache_control"}:
            return f"tools.{index}: Extra inputs are not permitted"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{index}.input_schema: Input should be a JSON schema of type object"
    choice = body.get("tool_choice")
    if choice is not None and (
        not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")
    ):
        return "tool_choice: Input tag does not match any of the expected tags"
    return None


def has_image(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m["content"], list) and any(b.get("type") == "image" for b in m["content"])
        for m in messages
    )


# --- replies -------------------------------------------------------------------------------------


def usage_for(model: str) -> dict[str, int] | None:
    if model == "fake-nousage":
        return None
    return dict(CACHE_USAGE if model == "fake-cache" else USAGE)


def message(body: dict[str, Any]) -> Reply:
    model = body["model"]
    tools = model == "fake-tools" and bool(body.get("tools"))
    text = VISION_TEXT if has_image(body["messages"]) else CHAT_TEXT
    content: list[dict[str, Any]] = [{"type": "text", "text": "Let me check."}, TOOL_USE]
    stop_reason = "tool_use" if tools else "end_turn"
    if not tools:
        content = [{"type": "text", "text": text}]
    if model == "fake-refusal":
        content, stop_reason = [], "refusal"
    reply: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
    usage = usage_for(model)
    if usage:
        reply["usage"] = usage
    return Reply.json(reply)


def event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def stream(body: dict[str, Any]) -> Reply:
    model = body["model"]
    usage = usage_for(model)
    tools = model == "fake-tools" and bool(body.get("tools"))
    pieces = [VISION_TEXT] if has_image(body["messages"]) else CHAT_PIECES
    start: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if usage:
        # message_start reports the input and a placeholder output count.
        start["usage"] = {**usage, "output_tokens": 1}
    events = [{"type": "message_start", "message": start}]
    if tools:
        events.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {**TOOL_USE, "input": {}},
            }
        )
        events.append({"type": "ping"})
        for part in (TOOL_ARGUMENTS[:8], TOOL_ARGUMENTS[8:]):
            delta = {"type": "input_json_delta", "partial_json": part}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    else:
        events.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        events.append({"type": "ping"})
        for piece in pieces:
            delta = {"type": "text_delta", "text": piece}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events.append({"type": "content_block_stop", "index": 0})
    stop = {"stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None}
    if model == "fake-refusal":
        stop["stop_reason"] = "refusal"
    if model == "fake-cumulative-usage":
        # Two message_delta events, each with the running output total: only the last counts.
        events.append({"type": "message_delta", "delta": stop, "usage": {"output_tokens": 3}})
    delta_event: dict[str, Any] = {"type": "message_delta", "delta": stop}
    if usage:
        delta_event["usage"] = {"output_tokens": usage["output_tokens"]}
    events += [delta_event, {"type": "message_stop"}]
    chunks = [event(e) for e in events]
    if model == "fake-overloaded-midway":
        # Two text deltas, then Anthropic's error event inside the 200 stream.
        overloaded = {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }
        chunks = [*chunks[:5], event(overloaded)]
    if model == "fake-drop":
        return Reply.stream(chunks, "text/event-stream", drop_after=5)
    return Reply.stream(chunks, "text/event-stream")
