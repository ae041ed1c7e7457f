"""Tencent Hunyuan through Tencent Cloud API 3.0 (ChatCompletions), TC3-HMAC-SHA256 signed.

One endpoint, https://hunyuan.tencentcloudapi.com/ (overridable), POST with JSON and the headers
X-TC-Action: ChatCompletions, X-TC-Version: 2023-09-01, X-TC-Timestamp (and X-TC-Region when
the adapter is given a `region` option), plus an Authorization header signed per attempt:
- body {"Model", "Messages": [{"Role", "Content"}], "Stream", "Temperature", "TopP", "Tools"};
- answer {"Response": {"Choices": [{"Message": {"Content", "ToolCalls"}, "FinishReason"}],
  "Usage": {"PromptTokens", "CompletionTokens", "TotalTokens"}, "RequestId"}};
- streamed as SSE `data: {"Choices": [{"Delta": {"Content"}, "FinishReason"}], "Usage"}`, the
  last chunk with a FinishReason;
- errors come with HTTP 200: {"Response": {"Error": {"Code", "Message"}, "RequestId"}}, also
  for a stream that fails before it starts.

Credentials (RAGFlow's JSON): {hunyuan_sid, hunyuan_sk}: a SecretId and SecretKey. A plain
API key (from Hunyuan's console, not a SecretId/SecretKey pair) goes instead to Tencent's
OpenAI-compatible endpoint, https://api.hunyuan.cloud.tencent.com/v1, as a Bearer token:
`HunyuanOpenAIChat`, chosen by the registry for a plain key.

The signature (Tencent's "Signature v3"): a canonical request (method, path, query, the signed
headers lower-cased and sorted, their names, the SHA-256 of the body), a string to sign
("TC3-HMAC-SHA256", the timestamp, the scope {date}/{service}/tc3_request, the canonical
request's SHA-256), and keys derived by HMAC-SHA256 from "TC3" + SecretKey through the UTC date,
the service and "tc3_request". Tencent refuses a timestamp more than five minutes off, hence a
fresh signature for every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from ..classify import ErrorContext
from ..errors import (
    AuthError,
    ContentFilteredError,
    InvalidRequestError,
    ModelError,
    ProviderError,
    ProviderTimeout,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from ..http import ProviderResponse, Request
from ..kinds.chat import ChatModel, ChatRequest, StreamStep
from ..results import ChatResult, Usage
from ..runner import Flow
from ..sse import SSEEvent
from ..streams import StreamDelta
from ..wire import content_text, mapping
from .openai import OpenAIChat

NATIVE_BASE_URL = "https://hunyuan.tencentcloudapi.com"
OPENAI_COMPATIBLE_BASE_URL = "https://api.hunyuan.cloud.tencent.com/v1"
SERVICE = "hunyuan"
ACTION = "ChatCompletions"
VERSION = "2023-09-01"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json"

# Tencent Cloud error codes, general and Hunyuan's: exact codes first, then by prefix.
ERROR_CODES: dict[str, type[ProviderError]] = {
    "FailedOperation.EngineRequestTimeout": ProviderTimeout,
    "FailedOperation.EngineServerError": ServerError,
    "FailedOperation.EngineServerLimitExceeded": RateLimitError,
    "FailedOperation.FreeResourcePackExhausted": QuotaExceededError,
    "FailedOperation.ResourcePackExhausted": QuotaExceededError,
    "FailedOperation.ServiceNotActivated": AuthError,
    "FailedOperation.ServiceStop": QuotaExceededError,
    "FailedOperation.ServiceStopArrears": QuotaExceededError,
    "InvalidParameterValue.Model": ModelError,
    "OperationDenied.ContentViolation": ContentFilteredError,
    "ResourceInsufficient.ChargeResourceExhaust": QuotaExceededError,
}
ERROR_PREFIXES: tuple[tuple[str, type[ProviderError]], ...] = (
    ("AuthFailure", AuthError),
    ("UnauthorizedOperation", AuthError),
    ("RequestLimitExceeded", RateLimitError),
    ("LimitExceeded", RateLimitError),
    ("ResourceInsufficient", QuotaExceededError),
    ("ResourceNotFound", ModelError),
    ("InternalError", ServerError),
    ("ServiceUnavailable", ServerError),
    ("ResourceUnavailable", ServerError),
    ("InvalidParameter", InvalidRequestError),
    ("MissingParameter", InvalidRequestError),
    ("UnknownParameter", InvalidRequestError),
    ("InvalidAction", InvalidRequestError),
    ("UnsupportedOperation", InvalidRequestError),
    ("RequestSizeLimitExceeded", InvalidRequestError),
)
FINISH_REASONS = {"sensitive": "content_filter", "tool_calls": "tool_calls", "stop": "stop"}


def tc3_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
    timestamp: int,
) -> str:
    """The Authorization header of Tencent Cloud's signature v3 over `headers` (which must
    include Host and Content-Type): names and values are signed trimmed and lower-cased."""
    signed = {name.strip().lower(): value.strip().lower() for name, value in headers.items()}
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method.upper(),
            path or "/",
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    secret_date = _hmac(f"TC3{secret_key}".encode(), date)
    secret_service = _hmac(secret_date, service)
    secret_signing = _hmac(secret_service, "tc3_request")
    signature = hmac.new(secret_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _now() -> int:
    return int(time.time())


def error_for_code(context: ErrorContext, code: str, message: str) -> ProviderError:
    cls = ERROR_CODES.get(code)
    if cls is None:
        cls = next((c for prefix, c in ERROR_PREFIXES if code.startswith(prefix)), None)
    if cls is None:
        return context.classify(None, {"message": f"{code}: {message}"})
    return context.error(cls, f"{code}: {message}")


def _api_error(context: ErrorContext, data: Any) -> ProviderError | None:
    if not isinstance(data, Mapping):
        return None
    # {"Response": {"Error": ...}} in answers; stream chunks may carry the Error bare.
    response = data.get("Response")
    error = response.get("Error") if isinstance(response, Mapping) else data.get("Error")
    if not isinstance(error, Mapping):
        return None
    return error_for_code(
        context, str(error.get("Code") or ""), str(error.get("Message") or "no error message")
    )


class HunyuanChat(ChatModel, factories=("Tencent Hunyuan",)):
    """ChatCompletions, each attempt signed anew, its 200 answers read for errors."""

    default_base_url = NATIVE_BASE_URL
    required_fields = ("hunyuan_sid", "hunyuan_sk")

    @property
    def endpoint(self) -> str:
        return self.base_url + "/"

    def signed_headers(self, body: bytes) -> dict[str, str]:
        url = httpx.URL(self.endpoint)
        timestamp = _now()
        host = url.netloc.decode("ascii")
        authorization = tc3_authorization(
            secret_id=self.credentials.get("hunyuan_sid"),
            secret_key=self.credentials.get("hunyuan_sk"),
            service=SERVICE,
            method="POST",
            path=url.raw_path.decode("ascii").partition("?")[0],
            query=url.query.decode("ascii"),
            headers={"Content-Type": CONTENT_TYPE, "Host": host, "X-TC-Action": ACTION},
            payload=body,
            timestamp=timestamp,
        )
        headers = {
            "Authorization": authorization,
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
        }
        region = self.options.get("region")
        if region:
            headers["X-TC-Region"] = str(region)
        return headers

    # --- one attempt: signed anew, its answer read for the errors Tencent sends with 200 ---

    def attempt(self, request: Request, *, stream: bool) -> Flow[Any]:
        signed = replace(request, headers=self.signed_headers(request.content or b""))
        call = self.http_call(signed)
        response = yield from self.send(call, stream=stream)
        if stream:
            return (yield from self.expect_events(call, response, self.answer_of))
        self.answer_of(response)  # rate limits come with HTTP 200 too: raised inside the retry
        return response

    def answer_of(self, response: ProviderResponse) -> Mapping[str, Any]:
        return self.response_object(self.json_of(response))

    def response_object(self, data: Any) -> Mapping[str, Any]:
        """The answer's Response object; raises the error it reports."""
        error = _api_error(self.context, data)
        if error is not None:
            raise error
        answer = mapping(data).get("Response")
        if not isinstance(answer, Mapping):
            raise self.malformed("the answer has no Response object")
        return answer

    # --- chat ---

    stream_end_marker = "a FinishReason"

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        messages = [_message(message) for message in request.messages()]
        body: dict[str, Any] = {"Model": self.wire_model_name, "Messages": messages}
        body["Stream"] = stream
        if request.gen_conf.get("temperature") is not None:
            body["Temperature"] = request.gen_conf["temperature"]
        if request.gen_conf.get("top_p") is not None:
            body["TopP"] = request.gen_conf["top_p"]
        if request.tools:
            body["Tools"] = [_tool(tool) for tool in request.tools]
            choice = request.gen_conf.get("tool_choice")
            if choice in ("auto", "none"):
                body["ToolChoice"] = choice
        # The signature covers the exact bytes sent; the headers come with it, per attempt.
        return Request("POST", self.endpoint, content=json.dumps(body, ensure_ascii=False).encode())

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        answer = self.response_object(data)
        choices = answer.get("Choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise self.malformed("the answer has no Choices")
        message = choices[0].get("Message") or {}
        text = str(message.get("Content") or "")
        tool_calls = [_openai_tool_call(call) for call in message.get("ToolCalls") or ()] or None
        usage = _usage(answer.get("Usage"))
        finish = _finish_reason(choices[0].get("FinishReason"))
        return self.chat_result(request, text, usage, tool_calls, finish)

    # --- streaming ---

    def stream_step(self, event: SSEEvent) -> StreamStep:
        if event.is_done:
            return StreamStep(stop=True)
        delta = self.parse_chunk(event)
        return StreamStep((delta,), complete=bool(delta.finish_reason))

    def parse_chunk(self, event: SSEEvent) -> StreamDelta:
        chunk = self.stream_object(event.data)
        error = _api_error(self.context, chunk)
        if error is not None:
            raise error
        choices = chunk.get("Choices") or []
        choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
        delta = choice.get("Delta") or {}
        fragments = [
            {**_openai_tool_call(call), "index": call.get("Index", index)}
            for index, call in enumerate(delta.get("ToolCalls") or ())
        ]
        return StreamDelta(
            text=str(delta.get("Content") or ""),
            usage=_usage(chunk.get("Usage")),
            finish_reason=_finish_reason(choice.get("FinishReason")),
            tool_calls=fragments or None,
        )


class HunyuanOpenAIChat(OpenAIChat, factories=("Tencent Hunyuan",)):
    """A plain Hunyuan API key: Tencent's OpenAI-compatible endpoint (chat/completions, SSE
    chunks, usage in the last one), `Authorization: Bearer <key>`."""

    for_plain_key = True
    base_urls = {"Tencent Hunyuan": OPENAI_COMPATIBLE_BASE_URL}

    def resolve_base_url(self, given: str | None) -> str:
        # The native API's address (the catalog's URL) does not take a plain key.
        if (given or "").strip().rstrip("/").lower() == NATIVE_BASE_URL:
            given = None
        return super().resolve_base_url(given)


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = content_text(message.get("content"))
    converted: dict[str, Any] = {"Role": message.get("role") or "user", "Content": content}
    if message.get("tool_call_id"):
        converted["ToolCallId"] = message["tool_call_id"]
    if message.get("tool_calls"):
        converted["ToolCalls"] = [
            {
                "Id": call.get("id"),
                "Type": call.get("type") or "function",
                "Function": {
                    "Name": (call.get("function") or {}).get("name"),
                    "Arguments": (call.get("function") or {}).get("arguments") or "{}",
                },
            }
            for call in message["tool_calls"]
        ]
    return converted


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or tool
    converted = {
        "Name": function.get("name"),
        # Hunyuan takes the JSON schema as a JSON string.
        "Parameters": json.dumps(function.get("parameters") or {"type": "object"}),
    }
    if function.get("description"):
        converted["Description"] = function["description"]
    return {"Type": "function", "Function": converted}


def _openai_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("Function") or {}
    return {
        "id": call.get("Id"),
        "type": call.get("Type") or "function",
        "function": {
            "name": function.get("Name") or "",
            "arguments": function.get("Arguments") or "",
        },
    }


def _finish_reason(reason: Any) -> str | None:
    if not reason:
        return None
    return FINISH_REASONS.get(str(reason), str(reason))


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, Mapping):
        return None
    counts = [usage.get(key) for key in ("PromptTokens", "CompletionTokens", "TotalTokens")]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return None
    if counts[2] == 0:
        return None
    return Usage(*counts)
