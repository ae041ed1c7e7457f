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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import httpx

from .. import http
from ..base import (
    AsyncChatStream,
    BaseAdapter,
    ChatModel,
    ChatRequest,
    ChatResult,
    ChatStream,
    EmbeddingModel,
    StreamDelta,
    StreamStep,
)
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
from ..results import EmbeddingResult, Usage
from ..sse import SSEEvent
from ..tokens import usage_from_response

T = TypeVar("T")

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key, self.secret_key = self.credentials.require(
            "yiyan_ak", "yiyan_sk", provider=self.factory, model=self.model_name
        )
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

    # --- tokens ---

    def _token_params(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.api_key,
            "client_secret": self.secret_key,
        }

    def access_token(self) -> str:
        token = tokens.get(self.token_key)
        if token is not None:
            return token
        # One token request per key at a time: the others wait and reuse its answer.
        with tokens.fetch_lock(self.token_key):
            token = tokens.get(self.token_key)
            if token is None:
                try:
                    response = self._request("POST", TOKEN_PATH, params=self._token_params())
                except ProviderError as error:
                    raise self._token_refused(error) from error
                token = self._store_token(response)
        return token

    async def aaccess_token(self) -> str:
        # No cross-task lock: two coroutines missing the cache at once both ask for a token,
        # which Baidu allows; holding a thread lock across an await would stall the loop.
        token = tokens.get(self.token_key)
        if token is not None:
            return token
        try:
            response = await self._arequest("POST", TOKEN_PATH, params=self._token_params())
        except ProviderError as error:
            raise self._token_refused(error) from error
        return self._store_token(response)

    def _store_token(self, response: http.ProviderResponse) -> str:
        try:
            data = response.json()
        except ValueError:
            # Not self._json(): its message quotes the body, which may hold the token.
            raise self._malformed("the token answer is not JSON") from None
        token = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            if isinstance(data, Mapping) and data.get("error"):
                raise self._refused(str(data.get("error_description") or data["error"]))
            raise self._malformed("the token answer has no access_token")
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

    # --- calls: one attempt, with one token refresh, inside the shared retry loop ---

    def _policies(self) -> tuple[http.RetryPolicy, http.RetryPolicy]:
        policy = self.retry_policy or http.RetryPolicy.from_settings()
        return policy, replace(policy, max_retries=0)

    def _stale_token(self, error: ProviderError) -> bool:
        return isinstance(error, StaleTokenError) or (
            isinstance(error, AuthError) and error.status == 401
        )

    def call(self, send: Callable[[str, ErrorContext], T]) -> T:
        """`send(token, context)` makes one attempt and raises what the answer says."""
        policy, _ = self._policies()

        def attempt() -> T:
            token = self.access_token()
            try:
                return send(token, self.context_with(token))
            except ProviderError as error:
                if not self._stale_token(error):
                    raise
                tokens.invalidate(self.token_key, token)
            token = self.access_token()
            return send(token, self.context_with(token))

        return http.send_with_retries(attempt, policy=policy, secrets=self.context.secrets)

    async def acall(self, send: Callable[[str, ErrorContext], Awaitable[T]]) -> T:
        policy, _ = self._policies()

        async def attempt() -> T:
            token = await self.aaccess_token()
            try:
                return await send(token, self.context_with(token))
            except ProviderError as error:
                if not self._stale_token(error):
                    raise
                tokens.invalidate(self.token_key, token)
            token = await self.aaccess_token()
            return await send(token, self.context_with(token))

        return await http.asend_with_retries(attempt, policy=policy, secrets=self.context.secrets)

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        _, once = self._policies()

        def send(token: str, context: ErrorContext) -> dict[str, Any]:
            response = http.request(
                "POST",
                self.url(self.api_path()),
                context=context,
                guard=self.guard,
                policy=once,
                params={"access_token": token},
                json=body,
            )
            return self._answer(response, context)

        return self.call(send)

    async def apost(self, body: dict[str, Any]) -> dict[str, Any]:
        _, once = self._policies()

        async def send(token: str, context: ErrorContext) -> dict[str, Any]:
            response = await http.arequest(
                "POST",
                self.url(self.api_path()),
                context=context,
                guard=self.guard,
                policy=once,
                params={"access_token": token},
                json=body,
            )
            return self._answer(response, context)

        return await self.acall(send)

    def _answer(self, response: http.ProviderResponse, context: ErrorContext) -> dict[str, Any]:
        data = self._json(response)
        if not isinstance(data, Mapping):
            raise self._malformed("the answer is not a JSON object")
        error = _api_error(context, data)
        if error is not None:
            raise error
        return dict(data)


# --- chat ----------------------------------------------------------------------------------------


class BaiduChat(BaiduWire, ChatModel):
    factories = ("BaiduYiyan",)
    endpoints = CHAT_ENDPOINTS
    kind = "chat"

    def chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        if request.tools:
            raise self.context.error(
                InvalidRequestError, "tool calling is not supported for BaiduYiyan models"
            )
        system = [request.system] if request.system else []
        messages = []
        for message in request.history:
            text = _text(message.get("content"))
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
        return body

    def _chat(self, request: ChatRequest) -> ChatResult:
        return self.parse_result(self.post(self.chat_body(request, stream=False)), request)

    async def _achat(self, request: ChatRequest) -> ChatResult:
        data = await self.apost(self.chat_body(request, stream=False))
        return self.parse_result(data, request)

    def parse_result(self, data: Mapping[str, Any], request: ChatRequest) -> ChatResult:
        text = data.get("result")
        if not isinstance(text, str):
            raise self._malformed("the answer has no result")
        usage = _reported_usage(data) or self.estimate_usage(request, text)
        return ChatResult(text, usage, None, _finish_reason(data))

    # --- streaming ---

    def _chat_stream(self, request: ChatRequest) -> ChatStream:
        body = self.chat_body(request, stream=True)
        _, once = self._policies()

        def send(token: str, context: ErrorContext) -> httpx.Response:
            response = http.open_stream(
                "POST",
                self.url(self.api_path()),
                context=context,
                guard=self.guard,
                policy=once,
                params={"access_token": token},
                json=body,
            )
            if not _is_sse(response):
                # A failure before the first chunk is a plain JSON error body.
                try:
                    content = response.read()
                finally:
                    response.close()
                self._answer(_read(response, content), context)
                raise self._malformed("a stream answered without events")
            return response

        response = self.call(send)
        return self.make_stream(request, self.stream_deltas(response), on_close=response.close)

    async def _achat_stream(self, request: ChatRequest) -> AsyncChatStream:
        body = self.chat_body(request, stream=True)
        _, once = self._policies()

        async def send(token: str, context: ErrorContext) -> httpx.Response:
            response = await http.aopen_stream(
                "POST",
                self.url(self.api_path()),
                context=context,
                guard=self.guard,
                policy=once,
                params={"access_token": token},
                json=body,
            )
            if not _is_sse(response):
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
                self._answer(_read(response, content), context)
                raise self._malformed("a stream answered without events")
            return response

        response = await self.acall(send)
        return self.make_async_stream(
            request, self.astream_deltas(response), on_close=response.aclose
        )

    stream_end_marker = "is_end"

    def stream_deltas(self, response: httpx.Response) -> Iterator[StreamDelta]:
        return self.sse_deltas(response, self.stream_step)

    def astream_deltas(self, response: httpx.Response) -> AsyncIterator[StreamDelta]:
        return self.asse_deltas(response, self.stream_step)

    def stream_step(self, event: SSEEvent) -> StreamStep:
        delta, ended = self.parse_chunk(event)
        return StreamStep((delta,), complete=ended, stop=ended)

    def parse_chunk(self, event: SSEEvent) -> tuple[StreamDelta, bool]:
        try:
            chunk = event.json()
        except ValueError:
            raise self._malformed(f"stream chunk is not JSON: {event.data[:200]!r}") from None
        if not isinstance(chunk, Mapping):
            raise self._malformed("stream chunk is not a JSON object")
        error = _api_error(self.context, chunk)
        if error is not None:
            raise error
        ended = chunk.get("is_end") is True
        delta = StreamDelta(
            text=str(chunk.get("result") or ""),
            usage=_reported_usage(chunk),
            finish_reason=_finish_reason(chunk) if ended else None,
        )
        return delta, ended


def _is_sse(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def _read(response: httpx.Response, content: bytes) -> http.ProviderResponse:
    return http.ProviderResponse(response.status_code, response.headers, content, response.url)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text") or "") for part in content or () if isinstance(part, Mapping)
    )


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


def _reported_usage(data: Mapping[str, Any]) -> Usage | None:
    usage = usage_from_response(data)
    return usage if usage is not None and usage.total_tokens > 0 else None


def _finish_reason(data: Mapping[str, Any]) -> str | None:
    if data.get("need_clear_history"):  # the input was flagged and must be dropped
        return "content_filter"
    reason = data.get("finish_reason")
    return FINISH_REASONS.get(reason, reason) if reason else "stop"


# --- embeddings ----------------------------------------------------------------------------------


class BaiduEmbedding(BaiduWire, EmbeddingModel):
    factories = ("BaiduYiyan",)
    endpoints = EMBEDDING_ENDPOINTS
    kind = "embeddings"
    batch_size = 16  # Qianfan's embedding models take at most 16 texts per call

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        data = self.post({"input": texts})
        items = data.get("data")
        if not isinstance(items, list):
            raise self._malformed("the embeddings answer has no data list")
        try:
            ordered = sorted(items, key=lambda item: item.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self._malformed("an embedding is missing or not a list of numbers") from None
        return EmbeddingResult(vectors, _reported_usage(data) or self.estimate_usage(texts))
