"""The Gemini API (factory "Gemini"): chat, vision and embeddings.

Endpoints, relative to https://generativelanguage.googleapis.com (a base URL given with
/v1beta is accepted); the key goes in the `x-goog-api-key` header, never in the query string
(URLs end up in logs and proxies):
- POST v1beta/models/{model}:generateContent: {"contents": [{"role": "user" | "model",
  "parts": [{"text"} | {"inlineData": {"mimeType", "data"}} | {"functionCall": {"name",
  "args"}} | {"functionResponse": {"name", "response"}}]}], "systemInstruction"?,
  "generationConfig"? {temperature, topP, topK, maxOutputTokens, stopSequences, ...},
  "tools"? [{"functionDeclarations": [...]}], "toolConfig"?} -> {"candidates": [{"content",
  "finishReason"}], "promptFeedback"?, "usageMetadata": {promptTokenCount,
  candidatesTokenCount, thoughtsTokenCount?, totalTokenCount}}.
- POST v1beta/models/{model}:streamGenerateContent?alt=sse: the same responses as SSE
  `data:` chunks, text incremental, usageMetadata cumulative (the last one wins), no end
  marker: the last chunk has a finishReason.
- POST v1beta/models/{model}:batchEmbedContents: {"requests": [{"model": "models/{model}",
  "content": {"parts": [{"text"}]}, "taskType": "RETRIEVAL_DOCUMENT" | "RETRIEVAL_QUERY"}]}
  -> {"embeddings": [{"values": [...]}]}, in request order, at most 100 a call, with no
  token usage (it is estimated).
- Errors: {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message", "details":
  [RetryInfo {"retryDelay": "37s"}, ErrorInfo {"reason": "API_KEY_INVALID"}, ...]}}.

A blocked prompt (promptFeedback.blockReason) or a candidate stopped by a safety filter
(finishReason SAFETY, PROHIBITED_CONTENT, ...) raises ContentFilteredError. Thinking models'
thought parts are not part of the answer; their tokens are completion tokens.

Gemini 3 rejects function calls sent back without their `thoughtSignature`. A call's
signature travels with the OpenAI-style tool call as `extra_content.google.thought_signature`
(Google's own OpenAI-compatible convention); calls without one (streamed calls, other
providers' histories) get the placeholder Google documents for that case.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..base import BaseAdapter
from ..errors import ContentFilteredError, InvalidRequestError
from ..http import Request
from ..kinds.chat import ChatModel, ChatRequest, Image2TextModel, StreamStep, reader_steps
from ..kinds.embedding import EmbeddingModel
from ..media import image_url_of, split_data_url
from ..results import ChatResult, EmbeddingResult
from ..sse import SSEEvent
from ..streams import StreamDelta
from ..tokens import reported_usage
from ..wire import add_turn, content_parts, content_text, dig

API_PREFIX = "v1beta"

# gen_conf (OpenAI names) -> generationConfig fields.
GENERATION_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}
BLOCKING_FINISH_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# Google's documented stand-in for a missing signature on a Gemini 3 function call.
SKIP_SIGNATURE = "skip_thought_signature_validator"


class GeminiWire(BaseAdapter):
    """Addressing and authentication shared by every Gemini endpoint. Not registered."""

    default_base_url = "https://generativelanguage.googleapis.com"

    def resolve_base_url(self, given: str | None) -> str:
        return super().resolve_base_url(given).removesuffix(f"/{API_PREFIX}")

    @property
    def wire_model_name(self) -> str:
        return super().wire_model_name.removeprefix("models/")

    def headers(self) -> dict[str, str]:
        key = self.credentials.key
        return {"x-goog-api-key": key} if key else {}

    def method_path(self, method: str) -> str:
        return f"{API_PREFIX}/models/{quote(self.wire_model_name, safe='')}:{method}"

    def filtered(self, reason: str) -> ContentFilteredError:
        return self.context.error(ContentFilteredError, reason)


# --- chat ----------------------------------------------------------------------------------------


class GeminiChatWire(GeminiWire):
    """generateContent, for chat and vision alike. Not registered."""

    # --- request ---

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        system, contents = self.translate_history(request)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config = _generation_config(request.gen_conf)
        if config:
            body["generationConfig"] = config
        if request.tools:
            body["tools"] = _tools(request.tools)
            tool_config = _tool_config(request.gen_conf)
            if tool_config:
                body["toolConfig"] = tool_config
        if stream:
            path = self.method_path("streamGenerateContent")
            return self.post(path, params={"alt": "sse"}, json=body)
        return self.post(self.method_path("generateContent"), json=body)

    def translate_history(self, request: ChatRequest) -> tuple[str, list[dict[str, Any]]]:
        """The system text, and the history as Gemini contents."""
        system, turns = request.system_and_turns()
        contents: list[dict[str, Any]] = []
        call_names: dict[str, str] = {}  # functionResponse needs the name the call had
        for message in turns:
            role = message.get("role")
            content = message.get("content")
            if role == "tool":
                role, parts = "user", [self._function_response(message, call_names)]
            elif role == "assistant":
                role, parts = "model", _parts(content)
                for number, call in enumerate(message.get("tool_calls") or ()):
                    function = call.get("function") or {}
                    call_names[call.get("id") or ""] = function.get("name") or ""
                    parts.append(self._function_call(call, first=number == 0))
            else:
                role, parts = "user", _parts(content)
            if parts:
                add_turn(contents, role, parts, key="parts")
        return system, contents

    def _function_call(self, call: Mapping[str, Any], *, first: bool) -> dict[str, Any]:
        function = call.get("function") or {}
        part: dict[str, Any] = {
            "functionCall": {
                "name": function.get("name"),
                "args": self.tool_arguments(call),
            }
        }
        signature = dig(call, "extra_content", "google", "thought_signature")
        if signature:
            part["thoughtSignature"] = signature
        elif first and self.wire_model_name.startswith("gemini-3"):
            part["thoughtSignature"] = SKIP_SIGNATURE
        return part

    def _function_response(
        self, message: Mapping[str, Any], call_names: Mapping[str, str]
    ) -> dict[str, Any]:
        name = message.get("name") or call_names.get(message.get("tool_call_id") or "")
        if not name:
            raise self.context.error(
                InvalidRequestError,
                "a tool message must follow the assistant tool call it answers "
                f"(tool_call_id {message.get('tool_call_id')!r})",
            )
        text = content_text(message.get("content"), text_parts_only=True)
        try:
            response = json.loads(text)
        except ValueError:
            response = None
        # The response must be a JSON object; Google's examples wrap plain results.
        if not isinstance(response, dict):
            response = {"result": text}
        return {"functionResponse": {"name": name, "response": response}}

    # --- reply ---

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping):
            raise self.malformed("the response is not a JSON object")
        if data.get("error"):
            raise self.context.classify(None, data)
        candidate = self._candidate(data)
        text, tool_calls = self.read_parts(candidate, first_index=0)
        reason = candidate.get("finishReason")
        if reason in BLOCKING_FINISH_REASONS:
            raise self.filtered(f"the answer was blocked (finishReason {reason})")
        usage = reported_usage(data)
        finish = _finish_reason(reason, tool_calls)
        return self.chat_result(request, text, usage, tool_calls, finish)

    def _candidate(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        candidates = data.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
            return candidates[0]
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise self.filtered(f"the prompt was blocked (blockReason {blocked})")
        raise self.malformed("the response has no candidates")

    def read_parts(
        self, candidate: Mapping[str, Any], *, first_index: int
    ) -> tuple[str, list[dict[str, Any]]]:
        """The answer's text (thoughts left out) and its function calls, OpenAI-shaped."""
        texts, calls = [], []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if not isinstance(part, Mapping) or part.get("thought"):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            call = part.get("functionCall")
            if isinstance(call, Mapping):
                tool_call: dict[str, Any] = {
                    # Gemini names calls only sometimes; OpenAI callers need an id to answer.
                    "id": call.get("id") or f"call_{first_index + len(calls)}",
                    "type": "function",
                    "function": {
                        "name": call.get("name"),
                        "arguments": json.dumps(call.get("args") or {}),
                    },
                }
                if part.get("thoughtSignature"):
                    google = {"thought_signature": part["thoughtSignature"]}
                    tool_call["extra_content"] = {"google": google}
                calls.append(tool_call)
        return "".join(texts), calls

    # --- streaming ---

    stream_end_marker = "a chunk with a finishReason"

    def stream_stepper(self, request: ChatRequest) -> Callable[[SSEEvent], StreamStep]:
        return reader_steps(_ChunkReader(self))


class _ChunkReader:
    """Turns one stream's chunks into StreamDeltas."""

    def __init__(self, adapter: GeminiChatWire) -> None:
        self.adapter = adapter
        self.tool_calls = 0
        self.complete = False  # a chunk had a finishReason

    def read(self, event: SSEEvent) -> Iterator[StreamDelta]:
        chunk = self.adapter.stream_object(event.data)
        if chunk.get("error"):
            raise self.adapter.context.classify(None, chunk)
        # Each chunk's usageMetadata is the running total: replace, never add.
        usage = reported_usage(chunk)
        if not chunk.get("candidates"):
            if usage is not None:
                yield StreamDelta(usage=usage)
            blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
            if blocked:
                raise self.adapter.filtered(f"the prompt was blocked (blockReason {blocked})")
            return
        candidate = self.adapter._candidate(chunk)
        text, calls = self.adapter.read_parts(candidate, first_index=self.tool_calls)
        fragments = [dict(call, index=self.tool_calls + n) for n, call in enumerate(calls)]
        self.tool_calls += len(calls)
        reason = candidate.get("finishReason")
        if reason:
            self.complete = True
        yield StreamDelta(
            text=text,
            usage=usage,
            finish_reason=_finish_reason(reason, self.tool_calls) if reason else None,
            tool_calls=fragments or None,
        )
        if reason in BLOCKING_FINISH_REASONS:
            raise self.adapter.filtered(f"the answer was blocked (finishReason {reason})")


# --- translation helpers (OpenAI dialect -> Gemini) ----------------------------------------------


def _generation_config(gen_conf: Mapping[str, Any]) -> dict[str, Any]:
    config = {
        GENERATION_CONFIG[key]: value
        for key, value in gen_conf.items()
        if key in GENERATION_CONFIG and value is not None
    }
    stop = gen_conf.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = gen_conf.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    return config


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations, native = [], []
    for tool in tools:
        if tool.get("type") == "function" and "function" in tool:
            function = tool["function"]
            declaration = {"name": function.get("name")}
            if function.get("description"):
                declaration["description"] = function["description"]
            if function.get("parameters"):
                declaration["parameters"] = function["parameters"]
            declarations.append(declaration)
        else:
            native.append(dict(tool))  # Gemini-shaped already (googleSearch, ...)
    return ([{"functionDeclarations": declarations}] if declarations else []) + native


def _tool_config(gen_conf: Mapping[str, Any]) -> dict[str, Any] | None:
    choice = gen_conf.get("tool_choice")
    if isinstance(choice, str) and choice in TOOL_CHOICE_MODES:
        return {"functionCallingConfig": {"mode": TOOL_CHOICE_MODES[choice]}}
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = []
    for part in content_parts(content):
        if part.get("type") == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            parts.append(_image(image_url_of(part)))
        elif "type" not in part:
            parts.append(dict(part))  # Gemini parts given as they are (inlineData, fileData...)
    return parts


def _image(url: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        # inlineData takes bytes only; fileData names a file by URI and Gemini fetches it.
        mime_type = mimetypes.guess_type(url)[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime_type, "fileUri": url}}
    mime_type, data = split_data_url(url)
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def _finish_reason(reason: Any, tool_calls: Any) -> str | None:
    if not reason:
        return None
    if reason == "STOP" and tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(reason, str(reason).lower())


class GeminiChat(GeminiChatWire, ChatModel, factories=("Gemini",)): ...


class GeminiImage2Text(GeminiChatWire, Image2TextModel, factories=("Gemini",)): ...


# --- embeddings ----------------------------------------------------------------------------------


class GeminiEmbedding(GeminiWire, EmbeddingModel, factories=("Gemini",)):
    """batchEmbedContents, with the retrieval task of passages or queries; no usage comes."""

    batch_size = 100  # batchEmbedContents takes at most 100 requests

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        model = f"models/{self.wire_model_name}"
        task = "RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT"
        requests = [
            {"model": model, "content": {"parts": [{"text": text}]}, "taskType": task}
            for text in texts
        ]
        return self.post(self.method_path("batchEmbedContents"), json={"requests": requests})

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        items = data.get("embeddings") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise self.malformed("the response has no embeddings list")
        try:
            # Embeddings come back in request order and carry no index.
            vectors = [[float(x) for x in item["values"]] for item in items]
        except (KeyError, TypeError, ValueError):
            raise self.malformed("an embedding has no list of numbers as values") from None
        # Gemini reports no token usage for embeddings.
        return EmbeddingResult(vectors, self.estimate_usage(texts))
