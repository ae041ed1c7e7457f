"""Cohere's v2 API on the fake provider: /cohere/v2/chat, /cohere/v2/embed, /cohere/v2/rerank.

Point an adapter at `fake_provider.url("/cohere")` (it stands for https://api.cohere.com).
`Authorization: Bearer <key>` is required; malformed requests get a 400 with Cohere's error
body {"id", "message"}. Behaviour is chosen by the key or the model name (KEYS, MODELS);
anything else gets a normal reply in Cohere's documented format. Streams are SSE with an
`event:` line and a JSON `data:` line whose `type` repeats the event name, ending with
message-end (no [DONE]).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

CHAT_TEXT = "Hello from the fake Cohere."
CHAT_PIECES = ["Hello", " from", " the", " fake", " Cohere."]
BILLED = {"input_tokens": 9, "output_tokens": 6}
TOKENS = {"input_tokens": 190, "output_tokens": 6}  # includes Cohere's own prompt
EMBED_TOKENS_PER_TEXT = 3
MAX_EMBED_TEXTS = 96
TOOL_PLAN = "I will look up the weather in Paris."
TOOL_CALL = {
    "id": "get_weather_fake1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}

CHAT_FIELDS = {
    "model",
    "messages",
    "stream",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
}
ROLES = {"system", "user", "assistant", "tool"}
MESSAGE_FIELDS = {"role", "content", "tool_calls", "tool_call_id", "tool_plan", "citations"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
EMBEDDING_TYPES = {"float", "int8", "uint8", "binary", "ubinary", "base64"}


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/cohere/v2/(?P<endpoint>chat|embed|rerank)", handle)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json({"id": "fake-error-id", "message": message}, status=status, headers=headers)


def invalid(message: str) -> Reply:
    return error(400, f"invalid request: {message}")


# The key is echoed in full (real Cohere does not) so tests can prove adapters scrub it.
KEYS: dict[str, Callable[[str], Reply]] = {
    "co-invalid": lambda key: error(401, f"invalid api token: {key}"),
    "co-revoked": lambda key: error(498, "invalid api token"),
    "co-unpaid": lambda key: error(
        402, "Please add or update your payment method to continue using the API."
    ),
}

MODELS: dict[str, Callable[[], Reply]] = {
    "fake-429": lambda: error(
        429,
        "You are using a Trial key, which is limited to 10 API calls / minute. You can "
        "continue to use the Trial key for free or upgrade to a Production key.",
        headers={"Retry-After": "2"},
    ),
    "fake-500": lambda: error(
        500, "internal server error, this has been reported to our developers"
    ),
    "missing-model": lambda: error(
        404,
        "model 'missing-model' not found, make sure the correct model ID was used and that "
        "you have access to the model.",
    ),
    "fake-malformed": lambda: Reply.raw(b'{"id": "fake", "message": {"role": "assis'),
}
SLOW_MODEL = "fake-slow"
SLOW_SECONDS = 2.0


def handle(request: RecordedRequest) -> Reply:
    header = request.headers.get("authorization")
    key = request.bearer
    if header is None:
        return error(401, "no api key supplied")
    if key is None:
        return error(401, "invalid api token")
    for prefix, reply in KEYS.items():
        if key.startswith(prefix):
            return reply(key)
    body = request.json
    if not isinstance(body, dict):
        return invalid("the body is not a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return invalid("model must be specified")
    if model in MODELS:
        return MODELS[model]()
    endpoint = request.path_params["endpoint"]
    reply = {"chat": chat, "embed": embed, "rerank": rerank}[endpoint](body, model)
    if model == SLOW_MODEL:
        reply.delay = SLOW_SECONDS
    return reply


# --- chat ----------------------------------------------------------------------------------------


def check_chat(body: dict[str, Any]) -> str | None:
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        return f"unknown field: parameter {unknown[0]} is not a valid field"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must contain at least one message"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages[{index}]: role must be one of system, user, assistant, tool"
        extra = sorted(set(message) - MESSAGE_FIELDS)
        if extra:
            return f"messages[{index}]: unknown field {extra[0]}"
        content = message.get("content")
        if content is None and not (message["role"] == "assistant" and message.get("tool_calls")):
            return f"messages[{index}]: content is required"
        if content is not None and not isinstance(content, str | list):
            return f"messages[{index}]: content must be a string or a list of content blocks"
        for call in message.get("tool_calls") or []:
            arguments = (call.get("function") or {}).get("arguments")
            if not isinstance(arguments, str):
                return f"messages[{index}]: tool call arguments must be a string"
    p = body.get("p")
    if p is not None and not 0.01 <= p <= 0.99:
        return "p must be between 0.01 and 0.99"
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        return "tool_choice must be REQUIRED or NONE"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream must be a boolean"
    return None


def chat(body: dict[str, Any], model: str) -> Reply:
    problem = check_chat(body)
    if problem:
        return invalid(problem)
    tools = model == "fake-tools" and bool(body.get("tools"))
    usage = None if model == "fake-nousage" else {"billed_units": BILLED, "tokens": TOKENS}
    if body.get("stream"):
        return chat_stream(model, tools, usage)
    message: dict[str, Any] = {"role": "assistant"}
    if tools:
        message.update(tool_plan=TOOL_PLAN, tool_calls=[TOOL_CALL])
    else:
        message["content"] = [{"type": "text", "text": CHAT_TEXT}]
    reply: dict[str, Any] = {
        "id": "fake-cohere-chat",
        "finish_reason": "TOOL_CALL" if tools else "COMPLETE",
        "message": message,
    }
    if usage:
        reply["usage"] = usage
    return Reply.json(reply)


def sse_event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def chat_stream(model: str, tools: bool, usage: dict[str, Any] | None) -> Reply:
    empty = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events: list[dict[str, Any]] = [
        {"id": "fake-cohere-chat", "type": "message-start", "delta": {"message": empty}}
    ]
    if tools:
        function = TOOL_CALL["function"]
        start = {"id": TOOL_CALL["id"], "type": "function"}
        start["function"] = {"name": function["name"], "arguments": ""}
        events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": TOOL_PLAN}}})
        events.append(
            {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": start}}}
        )
        for part in (function["arguments"][:8], function["arguments"][8:]):
            fragment = {"function": {"arguments": part}}
            events.append(
                {
                    "type": "tool-call-delta",
                    "index": 0,
                    "delta": {"message": {"tool_calls": fragment}},
                }
            )
        events.append({"type": "tool-call-end", "index": 0})
        finish = "TOOL_CALL"
    else:
        events.append(
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            }
        )
        for piece in CHAT_PIECES:
            events.append(
                {
                    "type": "content-delta",
                    "index": 0,
                    "delta": {"message": {"content": {"text": piece}}},
                }
            )
        events.append({"type": "content-end", "index": 0})
        finish = "COMPLETE"
    end: dict[str, Any] = {"finish_reason": finish}
    if usage:
        end["usage"] = usage
    events.append({"type": "message-end", "delta": end})
    chunks = [sse_event(event) for event in events]
    if model == "fake-drop":
        return Reply.stream(chunks, "text/event-stream", drop_after=4)
    return Reply.stream(chunks, "text/event-stream")


# --- embed ---------------------------------------------------------------------------------------


def vector(text: str, index: int, input_type: str) -> list[float]:
    return [len(text) / 10, 0.5 if input_type == "search_document" else -0.5, float(index)]


def embed(body: dict[str, Any], model: str) -> Reply:
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return invalid("texts must be a non-empty list of strings")
    if len(texts) > MAX_EMBED_TEXTS:
        return invalid(f"too many texts: {len(texts)} > {MAX_EMBED_TEXTS}")
    input_type = body.get("input_type")
    if input_type not in INPUT_TYPES:
        return invalid("input_type is required for embed models v3 and higher")
    types = body.get("embedding_types") or ["float"]
    if not isinstance(types, list) or not set(types) <= EMBEDDING_TYPES:
        return invalid("embedding_types must be a list of float, int8, uint8, binary, ubinary")
    embeddings = {
        kind: [vector(text, i, input_type) for i, text in enumerate(texts)] for kind in types
    }
    meta: dict[str, Any] = {"api_version": {"version": "2"}}
    if model != "fake-nousage":
        meta["billed_units"] = {"input_tokens": EMBED_TOKENS_PER_TEXT * len(texts)}
    return Reply.json(
        {
            "id": "fake-cohere-embed",
            "embeddings": embeddings,
            "texts": texts,
            "meta": meta,
            "response_type": "embeddings_by_type",
        }
    )


# --- rerank --------------------------------------------------------------------------------------


def relevance(query: str, document: str) -> float:
    """The fake's score: shared words, damped by the document's length."""
    shared = len(set(query.lower().split()) & set(document.lower().split()))
    return round((shared + 1) / (len(document.split()) + 2), 6)


def rerank(body: dict[str, Any], model: str) -> Reply:
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        return invalid("query must be a non-empty string")
    if (
        not isinstance(documents, list)
        or not documents
        or not all(isinstance(d, str) for d in documents)
    ):
        return invalid("documents must be a non-empty list of strings")
    top_n = body.get("top_n", len(documents))
    if not isinstance(top_n, int) or top_n < 1:
        return invalid("top_n must be a positive integer")
    scored = [
        {"index": i, "relevance_score": relevance(query, doc)} for i, doc in enumerate(documents)
    ]
    scored.sort(key=lambda item: -item["relevance_score"])
    return Reply.json(
        {
            "id": "fake-cohere-rerank",
            "results": scored[:top_n],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
        }
    )
