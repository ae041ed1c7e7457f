"""The OpenAI family on the fake provider: chat/completions, embeddings, audio.

Mounted under four roots:
- /v1/...                       hosted OpenAI: `Authorization: Bearer <key>` required;
- /hunyuan/v1/...               Tencent Hunyuan's OpenAI-compatible endpoint: only its plain
                                API key (hunyuan.API_KEY) as Bearer, anything else 401;
- /keyless/v1/...               a self-hosted server: no key needed (a given one must be Bearer);
- /openai/deployments/<d>/...   Azure OpenAI: `api-key` header and `api-version` query required,
                                the body needs no model.

Requests are checked the way OpenAI checks them and malformed ones get a 400 with OpenAI's
error body. Behaviour is chosen by the key or the model name (see KEYS and MODELS below);
anything else gets a normal reply in OpenAI's documented format.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from .hunyuan import API_KEY as HUNYUAN_API_KEY
from .server import FakeProviderServer, RecordedRequest, Reply

CHAT_TEXT = "Hello from the fake provider."
CHAT_PIECES = ["Hello", " from", " the", " fake", " provider."]
VISION_TEXT = "A picture of a fake provider."
CHAT_USAGE = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
EMBEDDING_TOKENS_PER_INPUT = 5
TRANSCRIPT = "hello from the fake transcription"
TRANSCRIBE_USAGE = {
    "type": "tokens",
    "input_tokens": 14,
    "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
    "output_tokens": 6,
    "total_tokens": 20,
}
SPEECH_CHUNKS = [b"ID3\x04fake-mp3-" + bytes([i]) * 1000 for i in range(4)]
TOOL_CALL = {
    "id": "call_fake_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}

ROOT = r"(?P<root>/v1|/hunyuan/v1|/keyless/v1|/openai/deployments/(?P<deployment>[^/]+))"
ENDPOINT = r"(?P<endpoint>chat/completions|embeddings|audio/transcriptions|audio/speech)"

CHAT_PARAMS = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "logit_bias",
    "logprobs",
    "user",
    "reasoning_effort",
    "provider",  # OpenRouter's routing preferences
}
ROLES = {"system", "developer", "user", "assistant", "tool"}


def register(server: FakeProviderServer) -> None:
    server.route("POST", f"{ROOT}/{ENDPOINT}", handle)


# --- errors in OpenAI's documented shape ---------------------------------------------------------


def error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Reply.json(body, status=status, headers=headers)


def bad_request(message: str, param: str | None = None) -> Reply:
    return error(400, message, param=param)


# Behaviour by key: the key is echoed in full in the 401 message (real OpenAI masks it) so that
# tests can prove adapters scrub it.
KEYS: dict[str, Callable[[str], Reply]] = {
    "sk-invalid": lambda key: error(
        401,
        f"Incorrect API key provided: {key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    ),
    "sk-forbidden": lambda key: error(
        403,
        "Country, region, or territory not supported",
        type_="request_forbidden",
        code="unsupported_country_region_territory",
    ),
    "sk-noquota": lambda key: error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type_="insufficient_quota",
        code="insufficient_quota",
    ),
}

# Behaviour by model name, before any normal reply.
MODELS: dict[str, Callable[[], Reply]] = {
    "fake-429": lambda: error(
        429,
        "Rate limit reached for requests",
        type_="requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": "2"},
    ),
    "fake-500": lambda: error(
        500, "The server had an error while processing your request.", type_="server_error"
    ),
    "fake-503": lambda: error(
        503, "The engine is currently overloaded, please try again later.", type_="server_error"
    ),
    "missing-model": lambda: error(
        404,
        "The model `missing-model` does not exist or you do not have access to it.",
        code="model_not_found",
    ),
    "fake-content-filter": lambda: error(
        400,
        "The response was filtered due to the prompt triggering content management policy.",
        code="content_filter",
        param="prompt",
    ),
    "fake-malformed": lambda: Reply.raw(b'{"id": "chatcmpl-fake", "choices": [{"mess'),
}
SLOW_MODEL = "fake-slow"
SLOW_STREAM_MODEL = "fake-slow-stream"
SLOW_STREAM_CHUNK_SECONDS = 0.05
SLOW_STREAM_FILLER = 100
SLOW_SECONDS = 2.0


def handle(request: RecordedRequest) -> Reply:
    root = request.path_params["root"]
    azure = "deployment" in request.path_params
    rejected = check_auth(request, root, azure)
    if rejected is not None:
        return rejected
    endpoint = request.path_params["endpoint"]
    if endpoint == "audio/transcriptions":
        return transcriptions(request)
    if request.json is None or not isinstance(request.json, dict):
        return bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly.)"
        )
    body = request.json
    model = body.get("model") or request.path_params.get("deployment")
    if not model:
        return bad_request("You must provide a model parameter.", param="model")
    if model in MODELS:
        return MODELS[model]()
    delay = SLOW_SECONDS if model == SLOW_MODEL else 0.0
    reply = {
        "chat/completions": chat_completions,
        "embeddings": embeddings,
        "audio/speech": speech,
    }[endpoint](request, body, model)
    reply.delay = reply.delay or delay
    return reply


def check_auth(request: RecordedRequest, root: str, azure: bool) -> Reply | None:
    if azure:
        if "api-version" not in request.query:
            return Reply.json({"error": {"code": "404", "message": "Resource not found"}}, 404)
        key = request.headers.get("api-key")
        if not key:
            return Reply.json(
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong "
                        "API endpoint.",
                    }
                },
                401,
            )
    else:
        header = request.headers.get("authorization")
        key = request.bearer
        if header is not None and key is None:
            return error(401, "Invalid authorization header; expected 'Bearer <key>'.")
        if root == "/hunyuan/v1" and key != HUNYUAN_API_KEY:
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        if key is None and root == "/v1":
            return error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
    for prefix, reply in KEYS.items():
        if key and key.startswith(prefix):
            return reply(key)
    return None


# --- chat ----------------------------------------------------------------------------------------


def check_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must contain at least one message."
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"Invalid value for 'messages[{index}].role'."
        content = message.get("content")
        if content is None and not message.get("tool_calls"):
            return f"Missing required parameter: 'messages[{index}].content'."
        if isinstance(content, list):
            for part in content:
                problem = check_part(part, index)
                if problem:
                    return problem
        elif content is not None and not isinstance(content, str):
            return f"Invalid type for 'messages[{index}].content'."
    return None


def check_part(part: Any, index: int) -> str | None:
    if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
        return f"Invalid content part in 'messages[{index}].content'."
    if part["type"] == "text":
        return None if isinstance(part.get("text"), str) else "Text parts need 'text'."
    url = (part.get("image_url") or {}).get("url", "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if not header.startswith("data:image/") or not header.endswith(";base64"):
            return "Invalid image data URL."
        try:
            base64.b64decode(data, validate=True)
        except binascii.Error:
            return "Invalid base64 image data."
    elif not url.startswith("https://"):
        return "Invalid image URL."
    return None


def has_image(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def chat_completions(request: RecordedRequest, body: dict[str, Any], model: str) -> Reply:
    unknown = sorted(set(body) - CHAT_PARAMS)
    if unknown:
        return bad_request(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    problem = check_messages(body.get("messages"))
    if problem:
        return bad_request(problem, param="messages")
    stream = body.get("stream") is True
    if "stream_options" in body and not stream:
        return bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    text = VISION_TEXT if has_image(body["messages"]) else CHAT_TEXT
    tools = model == "fake-tools" and bool(body.get("tools"))
    usage = None if model == "fake-nousage" else CHAT_USAGE
    if stream:
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        return chat_stream(model, text, tools, usage if include_usage else None)
    message: dict[str, Any] = {"role": "assistant", "content": None if tools else text}
    if tools:
        message["tool_calls"] = [TOOL_CALL]
    reply: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tools else "stop",
                "logprobs": None,
            }
        ],
    }
    if usage:
        reply["usage"] = usage
    return Reply.json(reply)


def chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def chat_stream(model: str, text: str, tools: bool, usage: dict[str, int] | None) -> Reply:
    pieces = CHAT_PIECES if text == CHAT_TEXT else [text]
    # With include_usage, every chunk says "usage": null and one more chunk carries it.
    extra = {"usage": None} if usage else {}
    events = [chunk(model, {"role": "assistant", "content": ""}, **extra)]
    if tools:
        name, arguments = TOOL_CALL["function"]["name"], TOOL_CALL["function"]["arguments"]
        first = {"index": 0, "id": TOOL_CALL["id"], "type": "function"}
        first["function"] = {"name": name, "arguments": ""}
        events.append(chunk(model, {"tool_calls": [first]}, **extra))
        for part in (arguments[:8], arguments[8:]):
            fragment = {"index": 0, "function": {"arguments": part}}
            events.append(chunk(model, {"tool_calls": [fragment]}, **extra))
        events.append(chunk(model, {}, "tool_calls", **extra))
    else:
        events += [chunk(model, {"content": piece}, **extra) for piece in pieces]
        events.append(chunk(model, {}, "stop", **extra))
    if model == "fake-cumulative-usage":
        # Providers that report running totals on every chunk: only the last one counts.
        for n, event in enumerate(events, start=1):
            event["usage"] = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}
    if usage:
        events.append({**chunk(model, {}), "choices": [], "usage": usage})
    if model == "fake-drop":
        return Reply.sse(events, drop_after=3)
    if model == SLOW_STREAM_MODEL:
        # Long enough (a few seconds) that a client hanging up after the first chunks is
        # always seen by the server as a hang-up, however loaded the machine.
        filler = [chunk(model, {"content": "."}, **extra)] * SLOW_STREAM_FILLER
        events = [*events[:2], *filler, *events[2:]]
        return Reply.sse(events, chunk_delay=SLOW_STREAM_CHUNK_SECONDS)
    return Reply.sse(events)


# --- embeddings ----------------------------------------------------------------------------------


def vector(text: str, index: int, dimensions: int | None = None) -> list[float]:
    """Three numbers, or `dimensions` of them (OpenAI's shortened embeddings)."""
    values = [len(text) / 10, 0.5, float(index)]
    if dimensions is not None:
        values = (values * dimensions)[:dimensions]
    return values


def embeddings(request: RecordedRequest, body: dict[str, Any], model: str) -> Reply:
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        return bad_request("'input' must be a string or a non-empty array of strings.", "input")
    if body.get("input_type") not in (None, "query", "passage"):
        return bad_request("'input_type' must be 'query' or 'passage'.", "input_type")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        return bad_request("'dimensions' must be a positive integer.", "dimensions")
    # Items come back in reverse order: clients must place them by `index`.
    data = [
        {"object": "embedding", "index": i, "embedding": vector(text, i, dimensions)}
        for i, text in reversed(list(enumerate(inputs)))
    ]
    reply: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if model != "fake-nousage":
        tokens = EMBEDDING_TOKENS_PER_INPUT * len(inputs)
        reply["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Reply.json(reply)


# --- audio ---------------------------------------------------------------------------------------


def transcriptions(request: RecordedRequest) -> Reply:
    try:
        form = request.form()
    except ValueError:
        return bad_request("Transcriptions take multipart/form-data.")
    if "file" not in form.files or not form.files["file"].content:
        return bad_request("Missing required parameter: 'file'.", "file")
    model = form.fields.get("model")
    if not model:
        return bad_request("Missing required parameter: 'model'.", "model")
    if form.fields.get("response_format", "json") != "json":
        return bad_request("Only json is supported by the fake.", "response_format")
    if model in MODELS:
        return MODELS[model]()
    reply: dict[str, Any] = {"text": TRANSCRIPT}
    if model == "gpt-4o-transcribe":
        reply["usage"] = TRANSCRIBE_USAGE
    elif model == "whisper-1":
        reply["usage"] = {"type": "duration", "seconds": 3}
    return Reply.json(reply)


def speech(request: RecordedRequest, body: dict[str, Any], model: str) -> Reply:
    for name in ("input", "voice"):
        if not isinstance(body.get(name), str) or not body[name]:
            return bad_request(f"Missing required parameter: '{name}'.", name)
    if model == "fake-drop":
        return Reply.stream(SPEECH_CHUNKS, "audio/mpeg", drop_after=2)
    return Reply.stream(SPEECH_CHUNKS, "audio/mpeg")
