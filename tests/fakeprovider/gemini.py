"""The Gemini API on the fake provider: generateContent, streamGenerateContent, batchEmbedContents.

Mounted at /gemini/v1beta/models/<model>:<method>; `/gemini` stands for the host (base URL
`fake.url("/gemini")`). Requests are checked the way Google checks them: the key in the
`x-goog-api-key` header (this fake also refuses a key in the query string, which the real API
accepts, so that no test can pass with one there), streaming only with `alt=sse`, known field
names only, roles user/model, well-formed parts, thought signatures on Gemini 3 function
calls, embedding requests naming the model of the URL. Malformed requests get a 400 in Google's
error format. Behaviour is chosen by the key or the model name (see KEYS and MODELS).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

ROOT = "/gemini/v1beta/models/"
METHODS = "generateContent|streamGenerateContent|batchEmbedContents"

CHAT_TEXT = "Hello from the fake Gemini."
CHAT_PIECES = ["Hello", " from", " the", " fake", " Gemini."]
VISION_TEXT = "A picture of a fake Gemini."
THOUGHT = "The user greets me; I should greet back."
USAGE = {"promptTokenCount": 9, "candidatesTokenCount": 6, "totalTokenCount": 15}
THINKING_USAGE = {
    "promptTokenCount": 9,
    "candidatesTokenCount": 6,
    "thoughtsTokenCount": 20,
    "totalTokenCount": 35,
}
FUNCTION_CALL = {"name": "get_weather", "args": {"city": "Paris"}}
THOUGHT_SIGNATURE = "c2lnbmF0dXJlLTE="
MAX_EMBED_REQUESTS = 100

FIELDS = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
}
GENERATION_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "candidateCount",
    "responseMimeType",
    "responseSchema",
    "responseModalities",
    "thinkingConfig",
}
PART_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
PART_FIELDS = PART_DATA | {"thought", "thoughtSignature"}
DECLARATION_FIELDS = {"name", "description", "parameters", "parametersJsonSchema"}
TOOL_KINDS = {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}
TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}


def register(server: FakeProviderServer) -> None:
    server.route("POST", rf"{ROOT}(?P<model>[^/:]+):(?P<method>{METHODS})", handle)


# --- errors in Google's documented shape ---------------------------------------------------------


def error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Reply:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
    if details:
        body["error"]["details"] = details
    return Reply.json(body, status=code)


def bad_request(message: str) -> Reply:
    return error(400, "INVALID_ARGUMENT", message)


def unknown_field(name: str, where: str = "") -> Reply:
    at = f" at '{where}'" if where else ""
    return bad_request(
        f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    )


# Behaviour by key. The 403 echoes the key, as Google's "consumer suspended" message does.
KEYS: dict[str, Callable[[str], Reply]] = {
    "AIza-invalid": lambda key: error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    ),
    "AIza-suspended": lambda key: error(
        403,
        "PERMISSION_DENIED",
        f"Permission denied: Consumer 'api_key:{key}' has been suspended.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_SUSPENDED"}],
    ),
}

# Behaviour by model name, before any normal reply.
MODELS: dict[str, Callable[[], Reply]] = {
    "fake-429": lambda: error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}],
    ),
    "fake-500": lambda: error(500, "INTERNAL", "An internal error has occurred."),
    "fake-503": lambda: error(
        503, "UNAVAILABLE", "The model is overloaded. Please try again later."
    ),
    "missing-model": lambda: error(
        404,
        "NOT_FOUND",
        "models/missing-model is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels to see the list of available models.",
    ),
    "fake-malformed": lambda: Reply.raw(b'{"candidates": [{"content": {"par'),
}
SLOW_MODEL = "fake-slow"
SLOW_SECONDS = 2.0


def handle(request: RecordedRequest) -> Reply:
    if "key" in request.query:
        return bad_request("this fake refuses API keys in the query string: use x-goog-api-key")
    key = request.headers.get("x-goog-api-key")
    if not key:
        return error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    for prefix, reply in KEYS.items():
        if key.startswith(prefix):
            return reply(key)
    body = request.json
    if not isinstance(body, dict):
        return bad_request("Invalid JSON payload received.")
    model, method = request.path_params["model"], request.path_params["method"]
    if model in MODELS:
        return MODELS[model]()
    if method == "batchEmbedContents":
        return embed(body, model)
    if method == "streamGenerateContent" and request.query.get("alt") != "sse":
        return bad_request("this fake streams only server-sent events: add ?alt=sse")
    problem = check_generate(body, model)
    if problem is not None:
        return problem
    reply = stream(body, model) if method == "streamGenerateContent" else generate(body, model)
    reply.delay = SLOW_SECONDS if model == SLOW_MODEL else 0.0
    return reply


# --- request checks ------------------------------------------------------------------------------


def check_generate(body: dict[str, Any], model: str) -> Reply | None:
    for name in sorted(set(body) - FIELDS):
        return unknown_field(name)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return bad_request("* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            return bad_request("Please use a valid role: user, model.")
        problem = check_parts(content.get("parts"), f"contents[{index}]", content.get("role"))
        if problem is not None:
            return problem
        if model.startswith("gemini-3") and content.get("role") == "model":
            calls = [p for p in content["parts"] if "functionCall" in p]
            if calls and not calls[0].get("thoughtSignature"):
                return bad_request(
                    "Function call is missing a thought_signature in functionCall parts. "
                    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures."
                )
    system = body.get("systemInstruction")
    if system is not None:
        if not isinstance(system, dict):
            return bad_request("systemInstruction must be a Content object")
        problem = check_parts(system.get("parts"), "system_instruction", "user")
        if problem is not None:
            return problem
    config = body.get("generationConfig", {})
    for name in sorted(set(config) - GENERATION_FIELDS):
        return unknown_field(name, "generation_config")
    return check_tools(body.get("tools"))


def check_parts(parts: Any, where: str, role: str | None) -> Reply | None:
    if not isinstance(parts, list) or not parts:
        return bad_request(
            f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
        )
    for part in parts:
        if not isinstance(part, dict):
            return bad_request(f"{where}: a part must be an object")
        for name in sorted(set(part) - PART_FIELDS):
            return unknown_field(name, f"{where}.parts[0]")
        data = set(part) & PART_DATA
        if len(data) != 1:
            return bad_request(f"{where}: a part must have exactly one of {sorted(PART_DATA)}")
        if "text" in part and not isinstance(part["text"], str):
            return bad_request(f"{where}: text must be a string")
        if "inlineData" in part:
            inline = part["inlineData"]
            if not isinstance(inline, dict) or not str(inline.get("mimeType", "")).startswith(
                "image/"
            ):
                return bad_request(f"{where}: inlineData needs an image mimeType")
            try:
                base64.b64decode(inline.get("data") or "", validate=True)
            except binascii.Error:
                return bad_request(f"{where}: Invalid value at 'inline_data.data' (TYPE_BYTES)")
        call = part.get("functionCall")
        if call is not None and (role != "model" or not isinstance(call.get("args", {}), dict)):
            return bad_request(f"{where}: functionCall parts belong to the model, args an object")
        if "functionResponse" in part:
            response = part["functionResponse"]
            if role != "user" or not response.get("name"):
                return bad_request(f"{where}: functionResponse needs a name, from the user")
            if not isinstance(response.get("response"), dict):
                return bad_request(f"{where}: functionResponse.response must be an object")
    return None


def check_tools(tools: Any) -> Reply | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return bad_request("tools must be a list")
    for tool in tools:
        for name in sorted(set(tool) - TOOL_KINDS if isinstance(tool, dict) else ()):
            return unknown_field(name, "tools[0]")
        if not isinstance(tool, dict) or len(set(tool) & TOOL_KINDS) != 1:
            return bad_request(f"a tool must have exactly one of {sorted(TOOL_KINDS)}")
        for declaration in tool.get("functionDeclarations", []):
            if not declaration.get("name"):
                return bad_request("* function_declarations[0].name: Name cannot be empty.")
            extra = set(declaration) - DECLARATION_FIELDS
            if extra:
                return unknown_field(sorted(extra)[0], "tools[0].function_declarations[0]")
    return None


def has_image(contents: list[dict[str, Any]]) -> bool:
    return any("inlineData" in part or "fileData" in part for c in contents for part in c["parts"])


# --- generateContent -----------------------------------------------------------------------------


def candidate(parts: list[dict[str, Any]] | None, finish: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"index": 0}
    if parts is not None:
        item["content"] = {"role": "model", "parts": parts}
    if finish:
        item["finishReason"] = finish
    return item


def response(candidates: list[dict[str, Any]], usage: dict[str, int] | None, model: str) -> dict:
    body: dict[str, Any] = {"candidates": candidates, "modelVersion": model, "responseId": "fake"}
    if usage:
        body["usageMetadata"] = usage
    return body


def generate(body: dict[str, Any], model: str) -> Reply:
    usage = None if model == "fake-nousage" else USAGE
    if model == "fake-blocked-prompt":
        blocked = {"promptFeedback": {"blockReason": "SAFETY"}}
        blocked["usageMetadata"] = {"promptTokenCount": 9, "totalTokenCount": 9}
        return Reply.json(blocked)
    if model == "fake-safety":
        item = candidate(None, "SAFETY")
        item["safetyRatings"] = [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
        ]
        return Reply.json(response([item], {**USAGE, "candidatesTokenCount": 0}, model))
    if model == "fake-tools" and body.get("tools"):
        part = {"functionCall": FUNCTION_CALL, "thoughtSignature": THOUGHT_SIGNATURE}
        return Reply.json(response([candidate([part], "STOP")], usage, model))
    text = VISION_TEXT if has_image(body["contents"]) else CHAT_TEXT
    parts: list[dict[str, Any]] = [{"text": text}]
    if model == "fake-thinking":
        parts.insert(0, {"text": THOUGHT, "thought": True})
        usage = THINKING_USAGE
    return Reply.json(response([candidate(parts, "STOP")], usage, model))


def stream(body: dict[str, Any], model: str) -> Reply:
    if model == "fake-tools" and body.get("tools"):
        part = {"functionCall": FUNCTION_CALL}
        return Reply.sse([response([candidate([part], "STOP")], USAGE, model)], done=False)
    pieces = [VISION_TEXT] if has_image(body["contents"]) else CHAT_PIECES
    chunks = []
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)
        # Every chunk carries the running totals; the last one the final counts.
        usage = USAGE if last else {**USAGE, "candidatesTokenCount": number}
        if not last:
            usage["totalTokenCount"] = USAGE["promptTokenCount"] + number
        finish = "STOP" if last else None
        if last and model == "fake-safety":
            finish = "SAFETY"
        chunks.append(response([candidate([{"text": piece}], finish)], usage, model))
    if model == "fake-nousage":
        for chunk in chunks:
            del chunk["usageMetadata"]
    if model == "fake-error-midway":
        overloaded = {
            "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
        }
        return Reply.sse([*chunks[:2], overloaded], done=False)
    if model == "fake-drop":
        return Reply.sse(chunks, done=False, drop_after=2)
    return Reply.sse(chunks, done=False)


# --- batchEmbedContents --------------------------------------------------------------------------


def vector(text: str, index: int) -> list[float]:
    return [len(text) / 10, 0.5, float(index)]


def embed(body: dict[str, Any], model: str) -> Reply:
    for name in sorted(set(body) - {"requests"}):
        return unknown_field(name)
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return bad_request("* BatchEmbedContentsRequest.requests: requests is not specified")
    if len(requests) > MAX_EMBED_REQUESTS:
        return bad_request(
            f"* BatchEmbedContentsRequest.requests: at most {MAX_EMBED_REQUESTS} requests "
            "can be in one batch"
        )
    values = []
    for index, item in enumerate(requests):
        if item.get("model") != f"models/{model}":
            return bad_request(
                f'Model "{item.get("model")}" in request {index} does not match the model '
                f'"models/{model}" of the batch.'
            )
        if item.get("taskType", "TASK_TYPE_UNSPECIFIED") not in TASK_TYPES:
            return bad_request(f"Invalid value at 'requests[{index}].task_type'")
        parts = (item.get("content") or {}).get("parts")
        if (
            not isinstance(parts, list)
            or len(parts) != 1
            or not isinstance(parts[0].get("text"), str)
        ):
            return bad_request(
                f"* BatchEmbedContentsRequest.requests[{index}].content: must be one text part"
            )
        values.append(vector(parts[0]["text"], index))
    return Reply.json({"embeddings": [{"values": v} for v in values]})
