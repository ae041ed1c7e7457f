"""Baidu Qianfan (ERNIE) through its access-token API, factory "BaiduYiyan".

Endpoints, relative to https://aip.baidubce.com:
- POST oauth/2.0/token?grant_type=client_credentials&client_id=AK&client_secret=SK ->
  {"access_token", "expires_in"} (seconds; 30 days); refused keys get {"error",
  "error_description"}.
- POST rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}?access_token=...: {"messages":
  [{"role": "user"|"assistant", "content"}], "system", "temperature", "top_p",
  "penalty_score", "max_output_tokens", "stop", "stream"} -> {"result", "finish_reason",
  "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}; streamed as SSE
  `data: {...}` chunks of `result` text, the last one with "is_end": true.
- POST rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/{endpoint}?access_token=...:
  {"input": [...]} -> {"data": [{"index", "embedding"}], "usage"}.
Errors come with HTTP 200 as {"error_code", "error_msg"} (a stream that fails before its first
chunk answers with such a JSON body instead of SSE). 110/111 mean the access token is no longer
valid: the cached token is dropped and the call made once more with a new one.

Credentials (RAGFlow's JSON): {yiyan_ak, yiyan_sk}. The model name is a Qianfan model name
(ERNIE-4.0-8K) or the endpoint name of a custom deployment; the access token is a secret like
the keys: it travels only in the query string and is scrubbed from every error.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import http
from ..base import BaseAdapter
from ..classify import ErrorContext
from ..errors import (
    AuthError,
    InvalidRequestError,
    ModelError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from ..http import ProviderResponse, Request
from ..kinds.chat import ChatModel, ChatRequest, StreamStep
from ..kinds.embedding import EmbeddingModel
from ..results import ChatResult, EmbeddingResult
from ..runner import Exclusive, Flow
from ..sse import SSEEvent
from ..streams import StreamDelta
from ..tokens import reported_usage
from ..wire import content_text, mapping

TOKEN_PATH = "oauth/2.0/token"
API_PREFIX = "rpc/2.0/ai_custom/v1/wenxinworkshop"

# Qianfan's preset models and the endpoint each is served at; any other name is taken as the
# endpoint itself (lower-cased), which is how newer models and custom deployments are named.
CHAT_ENDPOINTS = {
    "ernie-4.0-8k": "completions_pro",
    "ernie-bot-4": "completions_pro",
    "ernie-3.5-8k": "completions",
    "ernie-bot": "completions",
    "ernie-bot-turbo": "eb-instant",
    "ernie-lite-8k-0922": "eb-instant",
    "ernie-lite-8k": "ernie-lite-8k",
    "ernie-speed-8k": "ernie_speed",
    "ernie-bot-8k": "ernie_bot_8k",
    "ernie-character-8k": "ernie-char-8k",
    "ernie-functions-8k": "ernie-func-8k",
}
EMBEDDING_ENDPOINTS = {
    "embedding-v1": "embedding-v1",
    "bge-large-zh": "bge_large_zh",
    "bge-large-en": "bge_large_en",
    "tao-8k": "tao_8k",
}


class StaleTokenError(AuthError):
    """110/111: the access token is invalid or expired; a new one may work."""


# Qianfan error codes. 3360xx are request problems, 3365xx rate limits (RPM, TPM, ...).
ERROR_CODES: dict[int, type[ProviderError]] = {
    1: ServerError,  # unknown error
    2: ServerError,  # service temporarily unavailable
    3: ModelError,  # unsupported openapi method: no such endpoint
    4: RateLimitError,  # cluster request limit
    6: AuthError,  # no permission to access data
    13: AuthError,  # get service token failed
    14: AuthError,  # IAM certification failed
    15: AuthError,  # app not exists
    17: RateLimitError,  # daily request limit
    18: RateLimitError,  # QPS limit
    19: QuotaExceededError,  # total request limit
    100: InvalidRequestError,
    110: StaleTokenError,  # access token invalid
    111: StaleTokenError,  # access token expired
    336000: ServerError,
    336005: ModelError,  # API name does not exist
    336100: ServerError,  # busy, try again later
}
FINISH_REASONS = {"normal": "stop", "function_call": "tool_calls"}
# Refresh a token this long before Baidu says it expires (capped at half its lifetime).
TOKEN_MARGIN_SECONDS = 300.0


def error_for_code(context: ErrorContext, code: int, message: str) -> ProviderError:
    cls = ERROR_CODES.get(code)
    if cls is None and 336000 <= code < 336100:
        cls = InvalidRequestError
    elif cls is None and 336500 <= code < 336600:
        cls = RateLimitError
    if cls is None:
        return context.classify(None, {"error_msg": f"error {code}: {message}"})
    return context.error(cls, f"error {code}: {message}")


def _api_error(context: ErrorContext, data: Any) -> ProviderError | None:
    if not isinstance(data, Mapping) or not data.get("error_code"):
        return None
    code = data["error_code"]
    code = code if isinstance(code, int) else int(code) if str(code).isdigit() else 0
    return error_for_code(context, code, str(data.get("error_msg") or "no error message"))


# --- access tokens -------------------------------------------------------------------------------


class TokenCache:
    """Access tokens per (base URL, API key, secret key digest), shared by the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._fetch_locks: dict[tuple[str, str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry is not None and time.monotonic() < entry[1]:
            return entry[0]
        return None

    def put(self, key: tuple[str, str, str], token: str, expires_in: float) -> None:
        margin = min(TOKEN_MARGIN_SECONDS, expires_in / 2)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + expires_in - margin)

    def invalidate(self, key: tuple[str, str, str], token: str) -> None:
        """Forget `token`, unless another caller already replaced it."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None and entry[0] == token:
                del self._tokens[key]

    def fetch_lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


tokens = TokenCache()


class BaiduWire(BaseAdapter):
    """Access tokens and Qianfan calls, retried per attempt. Not registered."""

    default_base_url = "https://aip.baidubce.com"
    endpoints: Mapping[str, str] = {}
    kind = ""

    required_fields = ("yiyan_ak", "yiyan_sk")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key, self.secret_key = self.credentials.require(*self.required_fields)
        digest = hashlib.sha256(self.secret_key.encode()).hexdigest()
        self.token_key = (self.base_url, self.api_key, digest)

    @property
    def endpoint(self) -> str:
        name = self.wire_model_name.strip()
        return self.endpoints.get(name.lower(), name.lower())

    def api_path(self) -> str:
        return f"{API_PREFIX}/{self.kind}/{self.endpoint}"

    def context_with(self, token: str) -> ErrorContext:
        return replace(self.context, secrets=(*self.context.secrets, token))

    def headers(self) -> dict[str, str]:
        return {}  # the access token travels in the query string

    # --- access tokens ---

    def access_token(self) -> Flow[str]:
        token = tokens.get(self.token_key)
        if token is None:
            # One token request per key at a time: the other threads wait and reuse its
            # answer. (Two coroutines missing the cache at once both ask, which Baidu allows.)
            token = yield Exclusive(tokens.fetch_lock(self.token_key), self._fetch_token)
        return token

    def _fetch_token(self) -> Flow[str]:
        token = tokens.get(self.token_key)
        if token is not None:
            return token
        params = {
            "grant_type": "client_credentials",
            "client_id": self.api_key,
            "client_secret": self.secret_key,
        }
        try:
            call = self.http_call(Request("POST", TOKEN_PATH, params=params))
            response = yield from http.fetch(call)
        except ProviderError as error:
            raise self._token_refused(error) from error
        return self._store_token(response)

    def _store_token(self, response: ProviderResponse) -> str:
        try:
            data = response.json()
        except ValueError:
            # Not json_of(): its message quotes the body, which may hold the token.
            raise self.malformed("the token answer is not JSON") from None
        token = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            if isinstance(data, Mapping) and data.get("error"):
                raise self._refused(str(data.get("error_description") or data["error"]))
            raise self.malformed("the token answer has no access_token")
        expires_in = data.get("expires_in")
        valid = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        tokens.put(self.token_key, token, float(expires_in) if valid else 3600.0)
        return token

    def _token_refused(self, error: ProviderError) -> ProviderError:
        # Baidu answers a bad key pair with 400/401 {"error": "invalid_client", ...}.
        if error.status in (400, 401):
            return self._refused(error.detail)
        return error

    def _refused(self, detail: str) -> AuthError:
        return self.context.error(
            AuthError,
            f"Baidu refused the API key / secret key pair (no access token): {detail}",
        )

    # --- one attempt: with a token, refreshed once if it went stale ---

    def attempt(self, request: Request, *, stream: bool) -> Flow[Any]:
        token = yield from self.access_token()
        try:
            return (yield from self._attempt_with(token, request, stream=stream))
        except ProviderError as error:
            if not _stale_token(error):
                raise
            tokens.invalidate(self.token_key, token)
        token = yield from self.access_token()
        return (yield from self._attempt_with(token, request, stream=stream))

    def _attempt_with(self, token: str, request: Request, *, stream: bool) -> Flow[Any]:
        context = self.context_with(token)
        call = self.http_call(replace(request, params={"access_token": token}), context)
        response = yield from self.send(call, stream=stream)

        def check(answer: ProviderResponse) -> None:
            # Errors, rate limits among them, come with HTTP 200: raised inside the retry.
            error = _api_error(context, self.json_of(answer))
            if error is not None:
                raise error

        if stream:
            return (yield from self.expect_events(call, response, check))
        check(response)
        return response

    def post_body(self, body: dict[str, Any]) -> Request:
        return self.post(self.api_path(), json=body)


def _stale_token(error: ProviderError) -> bool:
    return isinstance(error, StaleTokenError) or (
        isinstance(error, AuthError) and error.status == 401
    )


# --- chat ----------------------------------------------------------------------------------------


class BaiduChat(BaiduWire, ChatModel, factories=("BaiduYiyan",)):
    endpoints = CHAT_ENDPOINTS
    kind = "chat"

    stream_end_marker = "is_end"

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        if request.tools:
            raise self.context.error(
                InvalidRequestError, "tool calling is not supported for BaiduYiyan models"
            )
        system = [request.system] if request.system else []
        messages = []
        for message in request.history:
            text = content_text(message.get("content"))
            if message.get("role") == "system":
                system.append(text)
                continue
            role = "assistant" if message.get("role") == "assistant" else "user"
            # ERNIE wants user and assistant turns to alternate: merge neighbours.
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"] += "\n" + text
            else:
                messages.append({"role": role, "content": text})
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = "\n".join(part for part in system if part)
        body.update(_gen_conf(request.gen_conf))
        if stream:
            body["stream"] = True
        return self.post_body(body)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        data = mapping(data)
        text = data.get("result")
        if not isinstance(text, str):
            raise self.malformed("the answer has no result")
        return self.chat_result(request, text, reported_usage(data), None, _finish_reason(data))

    # --- streaming ---

    def stream_step(self, event: SSEEvent) -> StreamStep:
        delta, ended = self.parse_chunk(event)
        return StreamStep((delta,), complete=ended, stop=ended)

    def parse_chunk(self, event: SSEEvent) -> tuple[StreamDelta, bool]:
        chunk = self.stream_object(event.data)
        error = _api_error(self.context, chunk)
        if error is not None:
            raise error
        ended = chunk.get("is_end") is True
        delta = StreamDelta(
            text=str(chunk.get("result") or ""),
            usage=reported_usage(chunk),
            finish_reason=_finish_reason(chunk) if ended else None,
        )
        return delta, ended


def _gen_conf(gen_conf: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if gen_conf.get("temperature") is not None:
        # ERNIE takes (0, 1]: 0, which callers use for "deterministic", becomes the minimum.
        options["temperature"] = min(max(float(gen_conf["temperature"]), 0.01), 1.0)
    if gen_conf.get("top_p") is not None:
        options["top_p"] = gen_conf["top_p"]
    if gen_conf.get("max_tokens") is not None:
        options["max_output_tokens"] = gen_conf["max_tokens"]
    stop = gen_conf.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    penalties = [gen_conf.get(k) for k in ("presence_penalty", "frequency_penalty")]
    if any(p is not None for p in penalties):
        # RAGFlow's mapping of OpenAI's penalties onto penalty_score, within its [1, 2].
        score = sum(float(p or 0) for p in penalties) / 2 + 1
        options["penalty_score"] = min(max(score, 1.0), 2.0)
    return options


def _finish_reason(data: Mapping[str, Any]) -> str | None:
    if data.get("need_clear_history"):  # the input was flagged and must be dropped
        return "content_filter"
    reason = data.get("finish_reason")
    return FINISH_REASONS.get(reason, reason) if reason else "stop"


# --- embeddings ----------------------------------------------------------------------------------


class BaiduEmbedding(BaiduWire, EmbeddingModel, factories=("BaiduYiyan",)):
    endpoints = EMBEDDING_ENDPOINTS
    kind = "embeddings"
    batch_size = 16  # Qianfan's embedding models take at most 16 texts per call

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        return self.post_body({"input": texts})

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        vectors = self.indexed_vectors(mapping(data).get("data"))
        return EmbeddingResult(vectors, reported_usage(data) or self.estimate_usage(texts))
