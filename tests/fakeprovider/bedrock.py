"""Amazon Bedrock Runtime and STS on the fake provider.

Mounted under /bedrock (point a Bedrock adapter's base URL there) and /sts (its STS base):
- POST /bedrock/model/<id>/converse, /converse-stream, /invoke
- POST /sts/  Action=AssumeRole (form body) -> XML credentials

Every request must carry a SigV4 `Authorization` header for a known access key: the signature is
recomputed with botocore from what arrived (raw path, signed headers, body, X-Amz-Date) and a
mismatch gets AWS's 403 InvalidSignatureException; a date more than five minutes off gets
"Signature expired". Errors use Bedrock's shape: {"message"} plus the x-amzn-ErrorType header.
converse-stream answers in the binary event-stream framing, each frame with both CRCs.
Behaviour is chosen by the access key (KEYS) or the model id (MODELS).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .server import FakeProviderServer, RecordedRequest, Reply

ACCESS_KEY = "AKIA4Q7ZR2WM9XV3LP8T"
# Random-looking, as real ones are: a word in a fake key would be scrubbed from every message.
SECRET_KEY = "q8Zr/Tw3+Lm0Vx9Kp2/Hd7Fs6Yb1Nc4Gj5Ra0Ue"
DENIED_KEY = "AKIA6HY1FB5GD0KC2NT7"  # signs correctly, lacks bedrock:InvokeModel
ROLE_ARN = "arn:aws:iam::123456789012:role/ragllm-bedrock"
SESSION_KEY = "ASIA3JK8OP4AS9DF6GH1"
SESSION_SECRET = "Wn5/Hq2Ld8+Xs0Mv7Kt3/Pb9Rc6Jy4Zf1Ga8Eu"
SESSION_TOKEN = "FwoGZXIvYXdzEJr7Kq2Wm9Xv3Lp8Tn4Hc6Yb1Fd5Gs0"
SECRETS = {ACCESS_KEY: SECRET_KEY, DENIED_KEY: SECRET_KEY, SESSION_KEY: SESSION_SECRET}

CHAT_TEXT = "Hello from the fake Bedrock."
CHAT_PIECES = ["Hello", " from", " the", " fake", " Bedrock."]
USAGE = {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18}
TOOL_USE = {"toolUseId": "tooluse_fake_1", "name": "get_weather", "input": {"city": "Paris"}}
TITAN_TOKENS = 4
COHERE_TOKENS_PER_TEXT = 3

AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
MAX_SKEW = timedelta(minutes=5)


def register(server: FakeProviderServer) -> None:
    server.route(
        "POST",
        r"/bedrock/model/(?P<model>[^/]+)/(?P<operation>converse|converse-stream|invoke)",
        handle,
    )
    server.route("POST", r"/sts/?", assume_role)


# --- errors ------------------------------------------------------------------------------------


def error(status: int, error_type: str, message: str, **headers: str) -> Reply:
    return Reply.json(
        {"message": message},
        status=status,
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/", **headers},
    )


MODELS = {
    "fake-429": lambda: error(
        429, "ThrottlingException", "Too many requests.", **{"Retry-After": "2"}
    ),
    "fake-500": lambda: error(500, "InternalServerException", "Internal server error."),
    "fake-503": lambda: error(503, "ServiceUnavailableException", "Service unavailable."),
    "missing-model": lambda: error(
        404,
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    "fake-invalid": lambda: error(
        400, "ValidationException", "The provided model identifier is invalid."
    ),
    "fake-malformed": lambda: Reply.raw(b'{"output": {"message": {"con'),
}


# --- SigV4 -------------------------------------------------------------------------------------


def check_signature(request: RecordedRequest, service: str) -> Reply | None:
    """None when the request is signed as AWS would accept it; else AWS's 403."""
    header = request.headers.get("authorization", "")
    match = AUTH_RE.fullmatch(header)
    if match is None:
        return error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'.",
        )
    access_key = match["key"]
    if access_key not in SECRETS:
        return error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    amz_date = request.headers.get("x-amz-date", "")
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return error(403, "IncompleteSignatureException", "X-Amz-Date is missing or invalid.")
    if abs(datetime.now(UTC) - when) > MAX_SKEW or match["date"] != amz_date[:8]:
        return error(403, "InvalidSignatureException", f"Signature expired: {amz_date}.")
    if match["service"] != service:
        return error(403, "InvalidSignatureException", f"Credential should be scoped to {service}.")
    token = SESSION_TOKEN if access_key == SESSION_KEY else None
    if token is not None and request.headers.get("x-amz-security-token") != token:
        return error(403, "UnrecognizedClientException", "The security token is invalid.")
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return error(403, "InvalidSignatureException", "host and x-amz-date must be signed.")
    expected = sigv4_signature(
        request,
        signed,
        Credentials(access_key, SECRETS[access_key], token),
        service,
        match["region"],
    )
    if expected != match["signature"]:
        return error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return None


def sigv4_signature(
    request: RecordedRequest, signed: list[str], credentials: Credentials, service: str, region: str
) -> str:
    headers = {name: request.headers.get(name, "") for name in signed}
    query = "&".join(f"{k}={v}" for k, v in request.query.items())
    url = f"http://{headers['host']}{request.path}" + (f"?{query}" if query else "")
    aws_request = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
    aws_request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(credentials, service, region)
    canonical = auth.canonical_request(aws_request)
    return auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)


# --- Bedrock Runtime ---------------------------------------------------------------------------


def handle(request: RecordedRequest) -> Reply:
    rejected = check_signature(request, "bedrock")
    if rejected is not None:
        return rejected
    if AUTH_RE.fullmatch(request.headers["authorization"])["key"] == DENIED_KEY:
        return error(
            403,
            "AccessDeniedException",
            "User is not authorized to perform: bedrock:InvokeModel on this resource.",
        )
    model = request.path_params["model"]  # still percent-encoded, as sent
    if model in MODELS:
        return MODELS[model]()
    if not isinstance(request.json, dict):
        return error(400, "ValidationException", "Request body is not valid JSON.")
    operation = request.path_params["operation"]
    reply = {"converse": converse, "converse-stream": converse_stream, "invoke": invoke}[operation](
        request.json, model
    )
    if model == "fake-slow":
        reply.delay = 2.0
    return reply


def check_converse(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must contain at least one message."
    previous = None
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{index}.role must be user or assistant."
        if role == previous:
            return "A conversation must alternate between user and assistant roles."
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return f"messages.{index}.content must not be empty."
        for block in content:
            if not isinstance(block, dict) or len(block) != 1:
                return f"messages.{index}.content holds an invalid block."
            if "text" in block and not block["text"]:
                return "The text field in the ContentBlock object is blank."
    if messages[0]["role"] != "user":
        return "A conversation must start with a user message."
    for block in body.get("system") or []:
        if not isinstance(block, dict) or not block.get("text"):
            return "system blocks need text."
    unknown = set(body.get("inferenceConfig") or {}) - {
        "maxTokens",
        "temperature",
        "topP",
        "stopSequences",
    }
    if unknown:
        return f"inferenceConfig has unknown fields: {sorted(unknown)}."
    return None


def converse(body: dict[str, Any], model: str) -> Reply:
    problem = check_converse(body)
    if problem:
        return error(400, "ValidationException", problem)
    tools = model == "fake-tools" and bool(body.get("toolConfig"))
    content = [{"toolUse": TOOL_USE}] if tools else [{"text": CHAT_TEXT}]
    reply: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if tools else "end_turn",
        "metrics": {"latencyMs": 120},
    }
    if model != "fake-nousage":
        reply["usage"] = USAGE
    return Reply.json(reply)


# --- event stream ------------------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC), string headers, payload, CRC."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + b"\x07"
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    # Bedrock pads events with a random "p" field so lengths reveal nothing.
    return frame(headers, json.dumps({**payload, "p": "abcdefgh"}).encode())


def exception(name: str, message: str) -> bytes:
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, json.dumps({"message": message}).encode())


def converse_events(model: str, body: dict[str, Any]) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    if model == "fake-tools" and body.get("toolConfig"):
        start = {"toolUse": {"toolUseId": TOOL_USE["toolUseId"], "name": TOOL_USE["name"]}}
        events.append(event("contentBlockStart", {"contentBlockIndex": 0, "start": start}))
        arguments = json.dumps(TOOL_USE["input"])
        for part in (arguments[:6], arguments[6:]):
            delta = {"toolUse": {"input": part}}
            events.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}))
        stop = "tool_use"
    else:
        for piece in CHAT_PIECES:
            delta = {"text": piece}
            events.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}))
        stop = "end_turn"
    events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(event("messageStop", {"stopReason": stop}))
    if model != "fake-nousage":
        events.append(event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 120}}))
    return events


def converse_stream(body: dict[str, Any], model: str) -> Reply:
    problem = check_converse(body)
    if problem:
        return error(400, "ValidationException", problem)
    events = converse_events(model, body)
    content_type = "application/vnd.amazon.eventstream"
    if model == "fake-drop":
        return Reply.stream(events, content_type, drop_after=3)
    if model == "fake-stream-throttled":
        throttled = exception("throttlingException", "Too many tokens, please wait.")
        return Reply.stream([*events[:2], throttled], content_type)
    if model == "fake-no-stop":
        return Reply.stream(events[:3], content_type)
    if model == "fake-bad-crc":
        broken = bytearray(events[1])
        broken[-1] ^= 0xFF
        return Reply.stream([events[0], bytes(broken), *events[2:]], content_type)
    # Frames arrive split at arbitrary points: clients must decode incrementally.
    data = b"".join(events)
    return Reply.stream([data[i : i + 7] for i in range(0, len(data), 7)], content_type)


# --- InvokeModel: embeddings -------------------------------------------------------------------


def invoke(body: dict[str, Any], model: str) -> Reply:
    if "cohere.embed" in model:
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return error(400, "ValidationException", "texts must be a non-empty list of strings.")
        if body.get("input_type") not in (
            "search_document",
            "search_query",
            "classification",
            "clustering",
        ):
            return error(400, "ValidationException", "input_type is required.")
        vectors = [[len(text) / 10, 0.25, float(i)] for i, text in enumerate(texts)]
        reply = {
            "id": "fake",
            "texts": texts,
            "embeddings": vectors,
            "response_type": "embeddings_floats",
        }
        tokens = str(COHERE_TOKENS_PER_TEXT * len(texts))
        return Reply.json(reply, headers={"X-Amzn-Bedrock-Input-Token-Count": tokens})
    if "titan-embed" in model:
        text = body.get("inputText")
        if (
            not isinstance(text, str)
            or not text
            or set(body) - {"inputText", "dimensions", "normalize"}
        ):
            return error(400, "ValidationException", "Malformed input request: inputText.")
        return Reply.json({"embedding": [len(text) / 10, 0.5], "inputTextTokenCount": TITAN_TOKENS})
    return error(400, "ValidationException", "This model does not support InvokeModel here.")


# --- STS ---------------------------------------------------------------------------------------


def sts_error(status: int, code: str, message: str) -> Reply:
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>fake-request</RequestId></ErrorResponse>"
    )
    return Reply.raw(body.encode(), status=status, content_type="text/xml")


def assume_role(request: RecordedRequest) -> Reply:
    rejected = check_signature(request, "sts")
    if rejected is not None:
        return sts_error(
            rejected.status, "SignatureDoesNotMatch", json.loads(rejected.body)["message"]
        )
    form = dict(parse_qsl(request.body.decode()))
    if form.get("Action") != "AssumeRole" or form.get("Version") != "2011-06-15":
        return sts_error(400, "InvalidAction", "Could not find operation.")
    if not form.get("RoleSessionName"):
        return sts_error(400, "ValidationError", "RoleSessionName is required.")
    if form.get("RoleArn") != ROLE_ARN:
        return sts_error(
            403,
            "AccessDenied",
            f"User is not authorized to perform: sts:AssumeRole on resource: {form.get('RoleArn')}",
        )
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>{ROLE_ARN}/{form["RoleSessionName"]}</Arn>
      <AssumedRoleId>AROAFAKE:{form["RoleSessionName"]}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{SESSION_KEY}</AccessKeyId>
      <SecretAccessKey>{SESSION_SECRET}</SecretAccessKey>
      <SessionToken>{SESSION_TOKEN}</SessionToken>
      <Expiration>{expires}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>fake-request</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
    return Reply.raw(body.encode(), content_type="text/xml")
