"""Baidu Qianfan (ERNIE) on the fake provider, mounted under /baidu.

- POST /baidu/oauth/2.0/token?grant_type=client_credentials&client_id=AK&client_secret=SK
  issues a fresh access token for the known key pair (ISSUED lists them; REVOKED ones answer
  like expired tokens); a wrong pair gets 401 {"error": "invalid_client", ...}.
- POST /baidu/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/<endpoint>?access_token=...
- POST /baidu/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/<endpoint>?access_token=...

As the real service does, errors come back with HTTP 200 as {"error_code", "error_msg"}, also
for a stream that fails before it starts. Behaviour is chosen by the endpoint name (ENDPOINTS).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

API_KEY = "fake-baidu-api-key-0001"
SECRET_KEY = "fake-baidu-secret-key-0001"
TOKEN_LIFETIME = 2592000
CHAT_TEXT = "Hello from the fake ERNIE."
CHAT_PIECES = ["Hello", " from the", " fake ERNIE."]
USAGE = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
EMBEDDING_TOKENS_PER_INPUT = 4

_lock = threading.Lock()
_serial = itertools.count(1)
ISSUED: list[str] = []  # tokens in the order they were handed out
REVOKED: set[str] = set()  # tests revoke a token to simulate its expiry


def revoke_all() -> None:
    with _lock:
        REVOKED.update(ISSUED)


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/baidu/oauth/2\.0/token", token)
    server.route(
        "POST",
        r"/baidu/rpc/2\.0/ai_custom/v1/wenxinworkshop/(?P<kind>chat|embeddings)/(?P<endpoint>[^/]+)",
        handle,
    )


def api_error(code: int, message: str) -> Reply:
    return Reply.json({"error_code": code, "error_msg": message})


def token(request: RecordedRequest) -> Reply:
    query = request.query
    if query.get("grant_type") != "client_credentials":
        return Reply.json(
            {"error": "unsupported_grant_type", "error_description": "grant type is invalid"}, 400
        )
    if query.get("client_id") != API_KEY:
        return Reply.json(
            {"error": "invalid_client", "error_description": "unknown client id"}, 401
        )
    if query.get("client_secret") != SECRET_KEY:
        return Reply.json(
            {"error": "invalid_client", "error_description": "Client authentication failed"}, 401
        )
    with _lock:
        issued = f"24.fake{next(_serial):06d}.{TOKEN_LIFETIME}.1700000000.282335-fake"
        ISSUED.append(issued)
    return Reply.json(
        {
            "refresh_token": "25.fake-refresh",
            "expires_in": TOKEN_LIFETIME,
            "session_key": "fake-session",
            "access_token": issued,
            "scope": "public brain_all_scope wenxinworkshop_mgr",
            "session_secret": "fake-session-secret",
        }
    )


ENDPOINTS = {
    "fake-qps": lambda: api_error(18, "Open api qps request limit reached"),
    "fake-rpm": lambda: api_error(336501, "Rate limit reached for RPM"),
    "fake-daily": lambda: api_error(17, "Open api daily request limit reached"),
    "fake-internal": lambda: api_error(336000, "Internal error"),
    "fake-invalid": lambda: api_error(336003, "the length of messages must be an odd number"),
    "fake-no-permission": lambda: api_error(6, "No permission to access data"),
    "fake-unknown-code": lambda: api_error(999, "Something odd happened"),
    "fake-500": lambda: Reply.json({"error": "internal"}, status=500),
    "fake-malformed": lambda: Reply.raw(b'{"result": "Hel'),
}


def handle(request: RecordedRequest) -> Reply:
    access_token = request.query.get("access_token")
    if not access_token:
        return api_error(110, "Access token invalid or no longer valid")
    with _lock:
        known, revoked = access_token in ISSUED, access_token in REVOKED
    if not known:
        return api_error(110, "Access token invalid or no longer valid")
    if revoked:
        return api_error(111, "Access token expired")
    endpoint = request.path_params["endpoint"]
    if endpoint in ENDPOINTS:
        return ENDPOINTS[endpoint]()
    if not isinstance(request.json, dict):
        return api_error(336002, "Invalid JSON")
    if request.path_params["kind"] == "embeddings":
        return embeddings(request.json)
    return chat(request.json, endpoint)


def check_chat(body: dict[str, Any]) -> str | None:
    known = {
        "messages", "system", "temperature", "top_p", "penalty_score", "max_output_tokens",
        "stop", "stream", "user_id", "disable_search", "enable_citation", "response_format",
    }  # fmt: skip
    unknown = sorted(set(body) - known)
    if unknown:
        return f"unknown parameter: {unknown[0]}"
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) % 2 != 1:
        return "the length of messages must be an odd number"
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected or not isinstance(message.get("content"), str):
            return "the role of message with even index in the messages must be user"
    temperature = body.get("temperature")
    if temperature is not None and not 0 < temperature <= 1:
        return "temperature range is (0, 1.0]"
    return None


def chat(body: dict[str, Any], endpoint: str) -> Reply:
    problem = check_chat(body)
    if problem:
        return api_error(336003, problem)
    usage = None if endpoint == "fake-nousage" else USAGE
    if body.get("stream") is True:
        return chat_stream(endpoint, usage)
    reply: dict[str, Any] = {
        "id": "as-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "result": CHAT_TEXT,
        "is_truncated": False,
        "need_clear_history": False,
        "finish_reason": "normal",
    }
    if usage:
        reply["usage"] = usage
    return Reply.json(reply)


def chat_stream(endpoint: str, usage: dict[str, int] | None) -> Reply:
    events = []
    for index, piece in enumerate(CHAT_PIECES):
        last = index == len(CHAT_PIECES) - 1
        chunk: dict[str, Any] = {
            "id": "as-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "sentence_id": index,
            "is_end": last,
            "is_truncated": False,
            "result": piece,
            "need_clear_history": False,
        }
        if last:
            chunk["finish_reason"] = "normal"
        if usage:
            # Every chunk reports the usage so far; only the last one is complete.
            done = usage["completion_tokens"] if last else index + 1
            total = usage["prompt_tokens"] + done
            chunk["usage"] = {
                "prompt_tokens": usage["prompt_tokens"],
                "completion_tokens": done,
                "total_tokens": total,
            }
        events.append(chunk)
    if endpoint == "fake-drop":
        return Reply.sse(events, done=False, drop_after=1)
    if endpoint == "fake-no-end":
        return Reply.sse(events[:-1], done=False)
    return Reply.sse(events, done=False)


def embeddings(body: dict[str, Any]) -> Reply:
    inputs = body.get("input")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        return api_error(336003, "input must be a non-empty list of strings")
    if len(inputs) > 16:
        return api_error(336003, "input array length must not exceed 16")
    data = [
        {"object": "embedding", "embedding": [len(text) / 10, 0.5, float(i)], "index": i}
        for i, text in reversed(list(enumerate(inputs)))
    ]
    tokens = EMBEDDING_TOKENS_PER_INPUT * len(inputs)
    return Reply.json(
        {
            "id": "as-fake",
            "object": "embedding_list",
            "created": 1700000000,
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
