"""Ollama's native API on the fake provider: /ollama/api/chat and /ollama/api/embed.

Point an adapter at `fake_provider.url("/ollama")` (it stands for http://127.0.0.1:11434).
Ollama needs no key; a given one must be Bearer, and keys starting with "ollama-invalid" get
the 401 a proxy in front of Ollama (or ollama.com) would answer. Errors are {"error": "..."}.
Requests are checked as Ollama's Go server decodes them: content must be a string, images
base64 strings, tool call arguments objects; the fake also refuses option names Ollama does
not know (Ollama itself only logs them). `stream` defaults to true, as in Ollama: streams are
NDJSON, one object per line, the last with "done": true and the counts.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

CHAT_TEXT = "Hello from the fake Ollama."
CHAT_PIECES = ["Hello", " from", " the", " fake", " Ollama."]
VISION_TEXT = "A picture of a fake llama."
PROMPT_EVAL_COUNT = 26
EVAL_COUNT = 7
EMBED_TOKENS_PER_INPUT = 2
TOOL_CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}

CHAT_FIELDS = {"model", "messages", "tools", "format", "options", "stream", "keep_alive", "think"}
MESSAGE_FIELDS = {"role", "content", "images", "tool_calls", "tool_name", "thinking"}
ROLES = {"system", "user", "assistant", "tool"}
OPTIONS = {
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "num_predict",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "num_ctx",
    "num_keep",
    "typical_p",
}
EMBED_FIELDS = {"model", "input", "truncate", "options", "keep_alive", "dimensions"}
INVALID_KEY_PREFIX = "ollama-invalid"
SLOW_SECONDS = 2.0


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/ollama/api/(?P<endpoint>chat|embed)", handle)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json({"error": message}, status=status, headers=headers)


MODELS = {
    "missing-model": lambda: error(404, "model 'missing-model' not found"),
    "fake-500": lambda: error(500, "llama runner process has terminated: exit status 2"),
    "fake-503": lambda: error(
        503, "server busy, please try again.  maximum pending requests exceeded"
    ),
    "fake-malformed": lambda: Reply.raw(b'{"model": "fake-malformed", "message": {"rol'),
}


def handle(request: RecordedRequest) -> Reply:
    header = request.headers.get("authorization")
    key = request.bearer
    if header is not None and key is None:
        return error(401, "unauthorized")
    if key and key.startswith(INVALID_KEY_PREFIX):
        return error(401, "unauthorized")
    body = request.json
    if not isinstance(body, dict):
        return error(400, "invalid character 'x' looking for beginning of value")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error(400, "model is required")
    if model in MODELS:
        return MODELS[model]()
    endpoint = chat if request.path_params["endpoint"] == "chat" else embed
    reply = endpoint(body, model)
    if model == "fake-slow":
        reply.delay = SLOW_SECONDS
    return reply


# --- chat ----------------------------------------------------------------------------------------


def check_chat(body: dict[str, Any]) -> str | None:
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        return f"json: unknown field {unknown[0]!r}"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "json: cannot unmarshal messages: expected an array"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages[{index}]: invalid role"
        extra = sorted(set(message) - MESSAGE_FIELDS)
        if extra:
            return f"messages[{index}]: json: unknown field {extra[0]!r}"
        if not isinstance(message.get("content", ""), str):
            return (
                "json: cannot unmarshal array into Go struct field Message.messages.content "
                "of type string"
            )
        for image in message.get("images") or []:
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, TypeError, ValueError):
                return "illegal base64 data at input byte 4"
        for call in message.get("tool_calls") or []:
            if not isinstance((call.get("function") or {}).get("arguments"), dict):
                return (
                    "json: cannot unmarshal string into Go struct field "
                    "ToolCallFunction.messages.tool_calls.function.arguments of type "
                    "api.ToolCallFunctionArguments"
                )
    options = body.get("options")
    if options is not None:
        if not isinstance(options, dict):
            return "json: cannot unmarshal options: expected an object"
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            return f"invalid option provided: {unknown[0]}"
        if "stop" in options and not isinstance(options["stop"], list):
            return "json: cannot unmarshal string into Go value of type []string"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "json: cannot unmarshal stream: expected a boolean"
    return None


def chunk(model: str, content: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": "2025-01-01T00:00:00.000000Z",
        "message": {"role": "assistant", "content": content, **extra},
        "done": False,
    }


def final(model: str, content: str = "", usage: bool = True, **extra: Any) -> dict[str, Any]:
    last = chunk(model, content, **extra)
    last.update(
        done=True,
        done_reason="stop",
        total_duration=5_000_000,
        load_duration=1_000_000,
        prompt_eval_duration=1_000_000,
        eval_duration=2_000_000,
    )
    if usage:
        last.update(prompt_eval_count=PROMPT_EVAL_COUNT, eval_count=EVAL_COUNT)
    return last


def chat(body: dict[str, Any], model: str) -> Reply:
    problem = check_chat(body)
    if problem:
        return error(400, problem)
    messages = body["messages"]
    if not messages:  # Ollama loads the model and answers with nothing
        return Reply.json(final(model, usage=False) | {"done_reason": "load"})
    vision = any(message.get("images") for message in messages)
    text = VISION_TEXT if vision else CHAT_TEXT
    tools = model == "fake-tools" and bool(body.get("tools"))
    usage = model != "fake-nousage"
    if body.get("stream", True):
        return chat_stream(model, text, tools, usage)
    if tools:
        return Reply.json(final(model, usage=usage, tool_calls=[TOOL_CALL]))
    return Reply.json(final(model, text, usage=usage))


def chat_stream(model: str, text: str, tools: bool, usage: bool) -> Reply:
    if tools:
        lines = [chunk(model, "", tool_calls=[TOOL_CALL]), final(model, usage=usage)]
    else:
        pieces = CHAT_PIECES if text == CHAT_TEXT else [text]
        lines = [chunk(model, piece) for piece in pieces] + [final(model, usage=usage)]
    chunks = [json.dumps(line).encode() + b"\n" for line in lines]
    if model == "fake-drop":
        return Reply.stream(chunks, "application/x-ndjson", drop_after=2)
    return Reply.stream(chunks, "application/x-ndjson")


# --- embed ---------------------------------------------------------------------------------------


def vector(text: str, index: int) -> list[float]:
    return [len(text) / 10, 0.75, float(index)]


def embed(body: dict[str, Any], model: str) -> Reply:
    unknown = sorted(set(body) - EMBED_FIELDS)
    if unknown:
        return error(400, f"json: unknown field {unknown[0]!r}")
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
        return error(400, "invalid input type")
    reply: dict[str, Any] = {
        "model": model,
        "embeddings": [vector(text, i) for i, text in enumerate(inputs)],
        "total_duration": 1_000_000,
        "load_duration": 100_000,
    }
    if model != "fake-nousage":
        reply["prompt_eval_count"] = EMBED_TOKENS_PER_INPUT * len(inputs)
    return Reply.json(reply)
