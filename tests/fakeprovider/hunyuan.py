"""Tencent Hunyuan (Tencent Cloud API 3.0, ChatCompletions) on the fake provider, at /hunyuan/.

Requests must carry X-TC-Action: ChatCompletions, X-TC-Version: 2023-09-01, a fresh
X-TC-Timestamp and a TC3-HMAC-SHA256 Authorization for a known SecretId. The signature is
recomputed here, independently of the adapter's signer, from what arrived; a mismatch gets the
documented AuthFailure.SignatureFailure. As the real API does, every error is HTTP 200 with
{"Response": {"Error": {"Code", "Message"}, "RequestId"}}, also for a stream that fails before
it starts. Behaviour is chosen by the model name (MODELS).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

# Random-looking, as real ones are: a word in a fake key would be scrubbed from every message.
SECRET_ID = "AKIDq7Rz3Wm9Xv2Lp8Tn4Kc6Hy1Fb5Gd0"
SECRET_KEY = "Zx3Qw8Er5Ty2Ui7Op4As9Df6Gh1Jk0Lz"
# The plain API key of Hunyuan's OpenAI-compatible endpoint (served by openai.py, /hunyuan/v1).
API_KEY = "sk-Hy7Vq2Lm9Rt4Wp8Xn3Kb6Fd1Gc5Js0Ze"
CHAT_TEXT = "Hello from the fake Hunyuan."
CHAT_PIECES = ["Hello", " from the", " fake Hunyuan."]
USAGE = {"PromptTokens": 12, "CompletionTokens": 6, "TotalTokens": 18}
TOOL_CALL = {
    "Id": "call_fake_1",
    "Type": "function",
    "Function": {"Name": "get_weather", "Arguments": '{"city": "Paris"}'},
}
MAX_SKEW_SECONDS = 300

AUTH_RE = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d\d-\d\d)/(?P<service>[^/]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/hunyuan/?", handle)


def error(code: str, message: str) -> Reply:
    return Reply.json(
        {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "fake-req"}}
    )


MODELS = {
    "fake-limit": lambda: error(
        "LimitExceeded", "Your request frequency has exceeded the limit; please try again later."
    ),
    "fake-internal": lambda: error("InternalError", "An internal error occurred."),
    "fake-arrears": lambda: error(
        "FailedOperation.ServiceStopArrears", "Your account is in arrears; the service stopped."
    ),
    "missing-model": lambda: error("InvalidParameterValue.Model", "The model does not exist."),
    "fake-not-activated": lambda: error(
        "FailedOperation.ServiceNotActivated", "The Hunyuan service is not activated."
    ),
    "fake-500": lambda: Reply.raw(
        b"<html>502 Bad Gateway</html>", status=502, content_type="text/html"
    ),
    "fake-malformed": lambda: Reply.raw(b'{"Response": {"Choi'),
}


def signature(secret_key: str, request: RecordedRequest, signed: list[str], date: str) -> str:
    """TC3-HMAC-SHA256 as Tencent documents it, computed from the request as received."""
    canonical_headers = "".join(
        f"{name}:{request.headers.get(name, '').strip().lower()}\n" for name in signed
    )
    query = "&".join(f"{k}={v}" for k, v in request.query.items())
    canonical = "\n".join(
        [
            request.method,
            request.path,
            query,
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    timestamp = request.headers["x-tc-timestamp"]
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            timestamp,
            f"{date}/hunyuan/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("TC3" + secret_key).encode()
    for part in (date, "hunyuan", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def check_auth(request: RecordedRequest) -> Reply | None:
    headers = request.headers
    if headers.get("x-tc-action") != "ChatCompletions":
        return error("InvalidAction", f"The action {headers.get('x-tc-action')} does not exist.")
    if headers.get("x-tc-version") != "2023-09-01":
        return error("NoSuchVersion", "The requested version does not exist.")
    match = AUTH_RE.fullmatch(headers.get("authorization", ""))
    if match is None:
        return error("AuthFailure.InvalidAuthorization", "Authorization is malformed.")
    if match["id"] != SECRET_ID:
        return error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    try:
        timestamp = int(headers.get("x-tc-timestamp", ""))
    except ValueError:
        return error("MissingParameter", "X-TC-Timestamp is missing.")
    if abs(time.time() - timestamp) > MAX_SKEW_SECONDS:
        return error("AuthFailure.SignatureExpire", "Signature expired. Timestamp is out of range.")
    if datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") != match["date"]:
        return error("AuthFailure.SignatureFailure", "The credential date does not match.")
    signed = match["signed"].split(";")
    if signed != sorted(signed) or not {"content-type", "host"} <= set(signed):
        return error("AuthFailure.SignatureFailure", "content-type and host must be signed.")
    if match["service"] != "hunyuan" or not hmac.compare_digest(
        signature(SECRET_KEY, request, signed, match["date"]), match["signature"]
    ):
        return error(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is "
            "correct.",
        )
    return None


def check_body(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    unknown = set(body) - {
        "Model",
        "Messages",
        "Stream",
        "Temperature",
        "TopP",
        "Tools",
        "ToolChoice",
    }
    if unknown:
        return f"Unknown parameters: {sorted(unknown)}."
    messages = body.get("Messages")
    if not isinstance(messages, list) or not messages:
        return "Messages must not be empty."
    for index, message in enumerate(messages):
        role = message.get("Role")
        if role not in ("system", "user", "assistant", "tool") or (role == "system" and index):
            return f"Messages[{index}].Role is invalid."
        if not message.get("Content") and not message.get("ToolCalls"):
            return f"Messages[{index}].Content must not be empty."
    if not isinstance(body.get("Stream", False), bool):
        return "Stream must be a boolean."
    for tool in body.get("Tools") or []:
        if not isinstance(tool.get("Function", {}).get("Parameters"), str):
            return "Tools[].Function.Parameters must be a JSON string."
    return None


def handle(request: RecordedRequest) -> Reply:
    rejected = check_auth(request)
    if rejected is not None:
        return rejected
    problem = check_body(request.json)
    if problem:
        return error("InvalidParameter", problem)
    body = request.json
    model = body.get("Model")
    if model in MODELS:
        return MODELS[model]()
    tools = model == "fake-tools" and bool(body.get("Tools"))
    if body.get("Stream"):
        return stream(model, tools)
    message: dict[str, Any] = {"Role": "assistant", "Content": "" if tools else CHAT_TEXT}
    if tools:
        message["ToolCalls"] = [TOOL_CALL]
    reply = {
        "Response": {
            "Id": "fake-id",
            "Created": 1700000000,
            "Note": "以上内容为AI生成",
            "Choices": [{"FinishReason": "tool_calls" if tools else "stop", "Message": message}],
            "Usage": USAGE,
            "RequestId": "fake-req",
        }
    }
    reply = Reply.json(reply)
    if model == "fake-slow":
        reply.delay = 2.0
    return reply


def chunk(delta: dict[str, Any], finish: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "Note": "以上内容为AI生成",
        "Choices": [{"Delta": {"Role": "assistant", **delta}, "FinishReason": finish}],
        "Created": 1700000000,
        "Id": "fake-id",
        "Usage": usage,
    }


def stream(model: str, tools: bool) -> Reply:
    events = []
    if tools:
        call = {**TOOL_CALL, "Index": 0}
        events.append(chunk({"Content": "", "ToolCalls": [call]}, "tool_calls", USAGE))
    else:
        for index, piece in enumerate(CHAT_PIECES):
            last = index == len(CHAT_PIECES) - 1
            # Usage is a running total on every chunk.
            so_far = {**USAGE, "CompletionTokens": index + 1, "TotalTokens": 13 + index}
            finish = ("sensitive" if model == "fake-sensitive" else "stop") if last else ""
            events.append(chunk({"Content": piece}, finish, USAGE if last else so_far))
    if model == "fake-drop":
        return Reply.sse(events, done=False, drop_after=1)
    if model == "fake-no-finish":
        return Reply.sse(events[:-1], done=False)
    if model == "fake-stream-error":
        events.insert(1, {"Error": {"Code": "InternalError", "Message": "stream broke"}})
    if model == "fake-nousage":  # a deployment that leaves Usage out
        for event in events:
            del event["Usage"]
    return Reply.sse(events, done=False)
