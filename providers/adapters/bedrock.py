"""Amazon Bedrock Runtime: Converse for chat, InvokeModel for embeddings, SigV4 by botocore.

Endpoints, relative to https://bedrock-runtime.{region}.amazonaws.com (a user's base URL, such
as a VPC endpoint, replaces it); the model id is percent-encoded as one path segment:
- POST model/{modelId}/converse: {"messages": [{"role", "content": [{"text"} | {"toolUse"} |
  {"toolResult"} | {"image"}]}], "system": [{"text"}], "inferenceConfig": {"maxTokens",
  "temperature", "topP", "stopSequences"}, "toolConfig"} -> {"output": {"message": {"content":
  [...]}}, "stopReason", "usage": {"inputTokens", "outputTokens", "totalTokens"}}.
- POST model/{modelId}/converse-stream: the same request, answered in AWS's binary event-stream
  framing (application/vnd.amazon.eventstream): messageStart, contentBlockStart,
  contentBlockDelta, contentBlockStop, messageStop {stopReason} and metadata {usage}; a failure
  midway arrives as a frame whose :message-type is "exception".
- POST model/{modelId}/invoke: the model's native body. Embeddings: Titan text
  ({"inputText"} -> {"embedding", "inputTextTokenCount"}, one text per call) and Cohere embed
  ({"texts", "input_type"} -> {"embeddings"}).

Authentication: every attempt is signed anew with SigV4 (service "bedrock", the credentials'
region; aws.py signs, reads the event-stream framing and talks to STS). Credentials (RAGFlow's
JSON): {auth_mode, bedrock_ak, bedrock_sk, bedrock_region, aws_role_arn}. auth_mode
"access_key_secret" (the default) signs with the access key; "iam_role" uses that access key to
call STS AssumeRole for aws_role_arn and signs with the temporary credentials. "assume_role"
(RAGFlow: this server's own AWS identity) is refused: the service's identity is not lent to
tenants.

Errors: Bedrock says what went wrong in the x-amzn-ErrorType header; providers.http classifies
by status and body, which agree with it except for ResourceNotFoundException (404) and
ModelErrorException (424), re-classified here as model errors.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
from botocore.credentials import Credentials as AwsCredentials

from ..api_keys import Credentials
from ..base import BaseAdapter
from ..classify import ErrorContext
from ..errors import (
    InvalidRequestError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
)
from ..http import Request
from ..kinds.chat import ChatModel, ChatRequest
from ..kinds.embedding import EmbeddingModel
from ..media import image_url_of, split_data_url
from ..results import ChatResult, EmbeddingResult, Usage
from ..runner import Flow
from ..streams import StreamDelta
from ..wire import add_turn, content_parts, dig
from .aws import EventFrames, assumed_roles, sigv4_headers

RUNTIME_URL = "https://bedrock-runtime.{region}.amazonaws.com"
SERVICE = "bedrock"
DEFAULT_AUTH_MODE = "access_key_secret"
AUTH_MODE_FIELDS = {
    "access_key_secret": ("bedrock_ak", "bedrock_sk"),
    "iam_role": ("bedrock_ak", "bedrock_sk", "aws_role_arn"),
}

# Statuses whose generic reading is wrong for Bedrock (404 would say "check the base URL").
STATUS_ERRORS: dict[int, type[ProviderError]] = {404: ModelError, 424: ModelError}

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


class BedrockWire(BaseAdapter):
    """Addressing, credentials and per-attempt SigV4 signing. Not registered."""

    def __init__(self, **kwargs: Any) -> None:
        # Checked before anything else so one error names every missing field.
        _check_credentials(
            Credentials.parse(kwargs.get("credentials")),
            provider=kwargs.get("factory", ""),
            model=kwargs.get("model_name", ""),
        )
        super().__init__(**kwargs)

    @property
    def region(self) -> str:
        (region,) = self.credentials.require(
            "bedrock_region", provider=self.factory, model=self.model_name
        )
        return region

    @property
    def auth_mode(self) -> str:
        return self.credentials.get("auth_mode") or DEFAULT_AUTH_MODE

    def resolve_base_url(self, given: str | None) -> str:
        url = (given or "").strip() or RUNTIME_URL.format(region=self.region)
        return url.rstrip("/")

    def model_path(self, operation: str) -> str:
        # One path segment: ARNs and versioned ids ("...-v1:0") carry ':' and '/'.
        return f"model/{quote(self.wire_model_name, safe='')}/{operation}"

    # --- credentials ---

    def aws_credentials(self) -> Flow[AwsCredentials]:
        access_key, secret_key = self.credentials.require(
            "bedrock_ak", "bedrock_sk", provider=self.factory, model=self.model_name
        )
        base = AwsCredentials(access_key, secret_key)
        if self.auth_mode != "iam_role":
            return base
        (role_arn,) = self.credentials.require(
            "aws_role_arn", provider=self.factory, model=self.model_name
        )
        sts_url = self.options.get("sts_base_url")
        return (
            yield from assumed_roles.get(
                self, base, role_arn=role_arn, region=self.region, sts_url=sts_url
            )
        )

    # --- one attempt, signed anew (a retry never carries a stale X-Amz-Date) ---

    def attempt(self, request: Request, *, stream: bool) -> Flow[Any]:
        credentials = yield from self.aws_credentials()
        call = self.http_call(request)
        headers = sigv4_headers(
            credentials,
            "POST",
            str(call.request.url),
            call.request.content or b"",
            service=SERVICE,
            region=self.region,
            headers={"Content-Type": "application/json"},
        )
        signed = replace(call, request=replace(call.request, headers=headers))
        return (yield from self.send(signed, stream=stream))

    def refine_error(self, error: ProviderError) -> ProviderError:
        cls = STATUS_ERRORS.get(error.status or 0)
        if cls is None or isinstance(error, cls):
            return error
        return self.context.error(cls, error.detail, status=error.status)

    def invoke_request(self, operation: str, body: dict[str, Any]) -> Request:
        return Request("POST", self.model_path(operation), content=json.dumps(body).encode())


def _check_credentials(credentials: Credentials, *, provider: str, model: str) -> None:
    mode = credentials.get("auth_mode") or DEFAULT_AUTH_MODE
    if mode not in AUTH_MODE_FIELDS:
        raise InvalidRequestError(
            f"Bedrock auth_mode {mode!r} is not supported; use access_key_secret (bedrock_ak, "
            "bedrock_sk) or iam_role (bedrock_ak and bedrock_sk allowed to assume "
            "aws_role_arn): this service does not lend its own AWS identity to tenants",
            provider=provider,
            model=model,
            secrets=credentials.secrets(),
        )
    credentials.require("bedrock_region", *AUTH_MODE_FIELDS[mode], provider=provider, model=model)


# --- chat ----------------------------------------------------------------------------------------


class BedrockChat(BedrockWire, ChatModel, factories=("Bedrock",)):
    def converse_body(self, request: ChatRequest) -> dict[str, Any]:
        system = [{"text": request.system}] if request.system else []
        messages: list[dict[str, Any]] = []
        for message in request.history:
            role = message.get("role")
            if role == "system":
                system += [{"text": text} for text in _texts(message.get("content")) if text]
                continue
            if role == "tool":
                role, blocks = "user", [_tool_result(message)]
            elif role == "assistant":
                blocks = self._blocks(message.get("content"))
                blocks += [_tool_use(call) for call in message.get("tool_calls") or ()]
            else:
                role, blocks = "user", self._blocks(message.get("content"))
            add_turn(messages, role, blocks)  # Converse wants the roles to alternate
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        inference = _inference_config(request.gen_conf)
        if inference:
            body["inferenceConfig"] = inference
        if request.tools:
            body["toolConfig"] = _tool_config(request.tools, request.gen_conf.get("tool_choice"))
        return body

    def _blocks(self, content: Any) -> list[dict[str, Any]]:
        blocks = []
        for part in content_parts(content):
            if part.get("type") == "image_url":
                blocks.append(self._image_block(part))
            elif part.get("text"):
                blocks.append({"text": part["text"]})
        return blocks

    def _image_block(self, part: Mapping[str, Any]) -> dict[str, Any]:
        url = image_url_of(part)
        mime, data = split_data_url(url)
        if not url.startswith("data:") or mime not in IMAGE_FORMATS:
            raise self.context.error(
                InvalidRequestError, "Bedrock takes images as PNG, JPEG, GIF or WebP data URLs"
            )
        try:
            base64.b64decode(data, validate=True)
        except binascii.Error:
            raise self.context.error(InvalidRequestError, "invalid base64 image data") from None
        # Over the JSON protocol, blob members travel base64-encoded.
        return {"image": {"format": IMAGE_FORMATS[mime], "source": {"bytes": data}}}

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        operation = "converse-stream" if stream else "converse"
        return self.invoke_request(operation, self.converse_body(request))

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        content = dig(data, "output", "message", "content")
        if not isinstance(content, list) or not all(isinstance(b, Mapping) for b in content):
            raise self.malformed("the Converse answer has no output.message.content")
        text = "".join(str(block.get("text") or "") for block in content if "text" in block)
        tool_calls = [
            _openai_tool_call(block["toolUse"])
            for block in content
            if isinstance(block.get("toolUse"), Mapping)
        ] or None
        usage = _usage(data.get("usage"))
        finish = _finish_reason(data.get("stopReason"))
        return self.chat_result(request, text, usage, tool_calls, finish)

    # --- streaming ---

    def stream_decoder(self, request: ChatRequest) -> _ConverseEvents:
        return _ConverseEvents(self.context, self.malformed)


class _ConverseEvents:
    """A Converse stream's StreamDeltas out of its event-stream frames (a providers.runner
    Decoder). The body is read to its end: the usage (metadata) follows messageStop."""

    stopped = False

    def __init__(self, context: ErrorContext, malformed: Callable[[str], ProviderError]) -> None:
        self._context = context
        self._frames = EventFrames(context, malformed)
        self._complete = False  # messageStop came

    def feed(self, chunk: bytes) -> Iterator[StreamDelta]:
        for event, data in self._frames.feed(chunk):
            delta = self._delta(event, data)
            if delta is not None:
                yield delta

    def end(self) -> Iterator[StreamDelta]:
        if not self._complete:
            raise self._context.error(
                ProviderConnectionError, "the stream ended before messageStop"
            )
        return iter(())

    def _delta(self, event: str, data: Any) -> StreamDelta | None:
        if event == "contentBlockStart":
            tool = dig(data, "start", "toolUse")
            if isinstance(tool, Mapping):
                call = {"name": tool.get("name") or "", "arguments": ""}
                return StreamDelta(
                    tool_calls=[
                        {
                            "index": data.get("contentBlockIndex"),
                            "id": tool.get("toolUseId"),
                            "type": "function",
                            "function": call,
                        }
                    ]
                )
        elif event == "contentBlockDelta":
            delta = data.get("delta") or {}
            if "text" in delta:
                return StreamDelta(text=str(delta["text"] or ""))
            partial = dig(delta, "toolUse", "input")
            if isinstance(partial, str):
                fragment = {
                    "index": data.get("contentBlockIndex"),
                    "function": {"arguments": partial},
                }
                return StreamDelta(tool_calls=[fragment])
        elif event == "messageStop":
            self._complete = True
            return StreamDelta(finish_reason=_finish_reason(data.get("stopReason")))
        elif event == "metadata":
            return StreamDelta(usage=_usage(data.get("usage")))
        return None


# --- embeddings ----------------------------------------------------------------------------------


class BedrockEmbedding(BedrockWire, EmbeddingModel, factories=("Bedrock",)):
    @property
    def is_cohere(self) -> bool:
        return "cohere.embed" in self.wire_model_name

    def embed_flow(self, texts: list[str], *, query: bool) -> Flow[EmbeddingResult]:
        if self.is_cohere:
            body = {"texts": texts, "input_type": "search_query" if query else "search_document"}
            response = yield from self.fetch(self.invoke_request("invoke", body))
            vectors = self._vectors(_cohere_vectors(self.json_of(response)), len(texts))
            tokens = _header_int(response.headers, "x-amzn-bedrock-input-token-count")
            usage = Usage(tokens) if tokens is not None else self.estimate_usage(texts)
            return EmbeddingResult(vectors, usage)
        # Titan embeds one text per call.
        vectors, usage = [], Usage.zero()
        for text in texts:
            response = yield from self.fetch(self.invoke_request("invoke", {"inputText": text}))
            data = self.json_of(response)
            vectors += self._vectors([dig(data, "embedding")], 1)
            count = dig(data, "inputTextTokenCount")
            counted = isinstance(count, int) and not isinstance(count, bool) and count >= 0
            usage += Usage(count) if counted else self.estimate_usage([text])
        return EmbeddingResult(vectors, usage)

    def _vectors(self, items: Any, expected: int) -> list[list[float]]:
        vectors = self.vectors(items)
        if len(vectors) != expected:
            raise self.malformed(f"{len(vectors)} vectors for {expected} texts")
        return vectors


def _cohere_vectors(data: Any) -> Any:
    embeddings = data.get("embeddings") if isinstance(data, Mapping) else None
    if isinstance(embeddings, Mapping):  # asked with embedding_types: {"float": [...]}
        embeddings = embeddings.get("float")
    return embeddings


# --- wire helpers --------------------------------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [
        str(part.get("text") or "")
        for part in content or ()
        if isinstance(part, Mapping) and part.get("text")
    ]


def _inference_config(gen_conf: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("max_tokens", "maxTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
    ):
        if gen_conf.get(ours) is not None:
            config[theirs] = gen_conf[ours]
    stop = gen_conf.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def _tool_config(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    specs = []
    for tool in tools:
        function = tool.get("function") or tool
        spec = {
            "name": function.get("name"),
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, Mapping) and dig(choice, "function", "name"):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    return {
        "toolUse": {"toolUseId": call.get("id"), "name": function.get("name"), "input": arguments}
    }


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    text = "".join(_texts(message.get("content"))) or " "
    return {"toolResult": {"toolUseId": message.get("tool_call_id"), "content": [{"text": text}]}}


def _openai_tool_call(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": tool.get("toolUseId"),
        "type": "function",
        "function": {
            "name": tool.get("name") or "",
            "arguments": json.dumps(tool.get("input") or {}, ensure_ascii=False),
        },
    }


def _finish_reason(stop_reason: Any) -> str | None:
    if not stop_reason:
        return None
    return STOP_REASONS.get(str(stop_reason), str(stop_reason))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, Mapping) or "inputTokens" not in usage:
        return None
    # Prompt-cache reads and writes are prompt tokens too; totalTokens already counts them.
    prompt = sum(
        _count(usage.get(key))
        for key in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
    )
    return Usage(prompt, _count(usage.get("outputTokens")), _count(usage.get("totalTokens")))


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value and value.isdigit() else None
