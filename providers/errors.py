"""Provider errors: RAGFlow's error codes, one exception class per code, and the classifier.

Errors are raised, never returned as "**ERROR**" strings. Every message names the factory and
the model, and is scrubbed of the secrets it was given (and of anything that looks like an
echoed bearer token or key parameter) before it is stored, so no str(), repr() or log line of
a ProviderError can leak a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import quote

import httpx


class ErrorCode(StrEnum):
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    AUTH_ERROR = "AUTH_ERROR"
    INVALID_REQUEST = "INVALID_REQUEST"
    SERVER_ERROR = "SERVER_ERROR"
    TIMEOUT = "TIMEOUT"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    MODEL_ERROR = "MODEL_ERROR"
    CONTENT_FILTERED = "CONTENT_FILTERED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    MAX_RETRIES_EXCEEDED = "MAX_RETRIES_EXCEEDED"
    GENERIC_ERROR = "GENERIC_ERROR"


RETRYABLE_CODES = frozenset(
    {
        ErrorCode.RATE_LIMIT_EXCEEDED,
        ErrorCode.SERVER_ERROR,
        ErrorCode.TIMEOUT,
        ErrorCode.CONNECTION_ERROR,
    }
)


# --- scrubbing -------------------------------------------------------------------------------

# Shorter "secrets" are not scrubbed: replacing every "abc" in a message would destroy it, and
# no real provider key is that short.
MIN_SECRET_LENGTH = 6
_MASK = "***"
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]{6,}")
# Gemini and a few others take the key in the query string, and URLs end up in messages.
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&](?:key|api[_-]?key|access[_-]?token|token|sig|signature)=)[^&\s\"'<>]+"
)
# A header echo such as `api-key: abcd...` or `x-api-key=abcd...`.
_HEADER_SECRET_RE = re.compile(r"(?i)\b((?:x-)?api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets, bearer tokens and key parameters from text."""
    variants: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            continue
        # The raw key, and the forms it takes once URL-quoted or JSON-escaped in an echo.
        variants.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, _MASK)
    text = _BEARER_RE.sub(rf"\1 {_MASK}", text)
    text = _QUERY_SECRET_RE.sub(rf"\1{_MASK}", text)
    return _HEADER_SECRET_RE.sub(rf"\1{_MASK}", text)


# --- exceptions ------------------------------------------------------------------------------


def _restore(cls: type[ProviderError], args: tuple, state: dict) -> ProviderError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ProviderError(Exception):
    """A failed call to a model provider.

    `detail` is the scrubbed provider-side explanation; str(error) prefixes it with the code,
    the factory and the model.
    """

    code: ClassVar[ErrorCode] = ErrorCode.GENERIC_ERROR

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.detail = scrub(str(message), secrets)
        super().__init__(scrub(self._format(), secrets))

    def _format(self) -> str:
        where = self.provider or "provider"
        if self.model:
            where += f" model {self.model}"
        return f"[{self.code}] {where}: {self.detail}"

    @property
    def message(self) -> str:
        return self.args[0] if self.args else ""

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.value!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status={self.status!r}, message={self.message!r})"
        )

    def __reduce__(self):  # keyword-only __init__ would otherwise break pickling (Celery).
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class RateLimitError(ProviderError):
    code = ErrorCode.RATE_LIMIT_EXCEEDED


class AuthError(ProviderError):
    code = ErrorCode.AUTH_ERROR


class InvalidRequestError(ProviderError):
    code = ErrorCode.INVALID_REQUEST


class ServerError(ProviderError):
    code = ErrorCode.SERVER_ERROR


class ProviderTimeout(ProviderError):
    code = ErrorCode.TIMEOUT


class ProviderConnectionError(ProviderError):
    code = ErrorCode.CONNECTION_ERROR


class ModelError(ProviderError):
    code = ErrorCode.MODEL_ERROR


class UnsupportedModelError(ModelError):
    """No adapter serves this (model type, factory) pair."""


class ContentFilteredError(ProviderError):
    code = ErrorCode.CONTENT_FILTERED


class QuotaExceededError(ProviderError):
    code = ErrorCode.QUOTA_EXCEEDED


class GenericProviderError(ProviderError):
    code = ErrorCode.GENERIC_ERROR


class MaxRetriesExceededError(ProviderError):
    code = ErrorCode.MAX_RETRIES_EXCEEDED

    def __init__(self, *, last_error: ProviderError, retries: int, secrets: Iterable[str] = ()):
        self.last_error = last_error
        self.retries = retries
        super().__init__(
            f"gave up after {retries} {'retry' if retries == 1 else 'retries'}; "
            f"last error {last_error.code}: {last_error.detail}",
            provider=last_error.provider,
            model=last_error.model,
            status=last_error.status,
            retry_after=last_error.retry_after,
            secrets=secrets,
        )


ERROR_CLASSES: dict[ErrorCode, type[ProviderError]] = {
    ErrorCode.RATE_LIMIT_EXCEEDED: RateLimitError,
    ErrorCode.AUTH_ERROR: AuthError,
    ErrorCode.INVALID_REQUEST: InvalidRequestError,
    ErrorCode.SERVER_ERROR: ServerError,
    ErrorCode.TIMEOUT: ProviderTimeout,
    ErrorCode.CONNECTION_ERROR: ProviderConnectionError,
    ErrorCode.MODEL_ERROR: ModelError,
    ErrorCode.CONTENT_FILTERED: ContentFilteredError,
    ErrorCode.QUOTA_EXCEEDED: QuotaExceededError,
    ErrorCode.GENERIC_ERROR: GenericProviderError,
}


# --- reading error bodies --------------------------------------------------------------------


@dataclass
class ErrorBody:
    """What a provider's error body says, whatever its shape."""

    message: str = ""
    # Machine-readable words (OpenAI error.type/code, Anthropic error.type, Gemini
    # error.status, Google RPC reasons), lower-cased.
    signals: list[str] = field(default_factory=list)
    # An HTTP-like status some providers embed (Gemini error.code), used when the response
    # itself had none, e.g. an error event inside a 200 stream.
    embedded_status: int | None = None
    retry_after: float | None = None


def _as_mapping(body: Any) -> Mapping[str, Any] | None:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], Mapping):
            parsed = parsed[0]  # Gemini's REST API sometimes wraps the error in a list.
        return parsed if isinstance(parsed, Mapping) else None
    return None


def _parse_duration(value: Any) -> float | None:
    # Google RetryInfo.retryDelay is a protobuf Duration string such as "37s" or "1.5s".
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def parse_error_body(body: Any) -> ErrorBody:
    """Read OpenAI, Anthropic, Gemini, Cohere and plain {"error": "..."} error bodies."""
    data = _as_mapping(body)
    if data is None:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
        return ErrorBody(message=str(text or "").strip())

    info = ErrorBody()
    error = data.get("error")
    if isinstance(error, Mapping):
        # OpenAI {"error": {"message", "type", "code", "param"}}, Anthropic {"type": "error",
        # "error": {"type", "message"}}, Gemini {"error": {"code": 429, "message", "status",
        # "details": [...]}}.
        info.message = str(error.get("message") or "")
        for key in ("code", "type", "status"):
            value = error.get(key)
            if isinstance(value, str) and value:
                info.signals.append(value.lower())
            elif isinstance(value, int) and not isinstance(value, bool) and key == "code":
                info.embedded_status = value if 100 <= value <= 599 else None
        inner = error.get("innererror")  # Azure content filter: {"code": "ResponsibleAI..."}
        if isinstance(inner, Mapping) and isinstance(inner.get("code"), str):
            info.signals.append(inner["code"].lower())
        for detail in error.get("details") or []:
            if not isinstance(detail, Mapping):
                continue
            if isinstance(detail.get("reason"), str):
                info.signals.append(detail["reason"].lower())
            delay = _parse_duration(detail.get("retryDelay"))
            if delay is not None:
                info.retry_after = delay
    elif isinstance(error, str):
        # Ollama, TGI and many self-hosted servers: {"error": "...", "error_type": "..."}.
        info.message = error
        if isinstance(data.get("error_type"), str):
            info.signals.append(data["error_type"].lower())
    if not info.message:
        # Cohere {"message": ...}; FastAPI-based servers (vLLM) {"detail": ...}; others "msg".
        for key in ("message", "detail", "msg", "error_msg", "errorMessage"):
            value = data.get(key)
            if value:
                info.message = value if isinstance(value, str) else json.dumps(value)
                break
    for key in ("code", "error_code", "type"):
        value = data.get(key)
        if isinstance(value, str) and value and value.lower() != "error":
            info.signals.append(value.lower())
    if not info.message:
        info.message = json.dumps(data)[:500]
    return info


# --- classification --------------------------------------------------------------------------

# Machine-readable words that settle the class, whatever the HTTP status says.
_STRONG_SIGNALS: dict[str, ErrorCode] = {
    # quota / billing
    "insufficient_quota": ErrorCode.QUOTA_EXCEEDED,
    "billing_hard_limit_reached": ErrorCode.QUOTA_EXCEEDED,
    "billing_not_active": ErrorCode.QUOTA_EXCEEDED,
    "quota_exceeded": ErrorCode.QUOTA_EXCEEDED,
    "insufficient_balance": ErrorCode.QUOTA_EXCEEDED,
    "arrearage": ErrorCode.QUOTA_EXCEEDED,  # DashScope
    # rate limits
    "rate_limit_exceeded": ErrorCode.RATE_LIMIT_EXCEEDED,
    "rate_limit_error": ErrorCode.RATE_LIMIT_EXCEEDED,  # Anthropic
    "resource_exhausted": ErrorCode.RATE_LIMIT_EXCEEDED,  # Gemini
    "too_many_requests": ErrorCode.RATE_LIMIT_EXCEEDED,
    "throttling": ErrorCode.RATE_LIMIT_EXCEEDED,  # DashScope
    "throttlingexception": ErrorCode.RATE_LIMIT_EXCEEDED,  # Bedrock
    # authentication / permission
    "invalid_api_key": ErrorCode.AUTH_ERROR,
    "invalidapikey": ErrorCode.AUTH_ERROR,  # DashScope
    "api_key_invalid": ErrorCode.AUTH_ERROR,  # Gemini ErrorInfo reason
    "authentication_error": ErrorCode.AUTH_ERROR,  # Anthropic
    "permission_error": ErrorCode.AUTH_ERROR,  # Anthropic
    "unauthenticated": ErrorCode.AUTH_ERROR,  # Gemini
    "permission_denied": ErrorCode.AUTH_ERROR,  # Gemini
    "invalid_authentication": ErrorCode.AUTH_ERROR,
    "unrecognizedclientexception": ErrorCode.AUTH_ERROR,  # Bedrock
    "accessdeniedexception": ErrorCode.AUTH_ERROR,  # Bedrock
    # model
    "model_not_found": ErrorCode.MODEL_ERROR,
    "not_found_error": ErrorCode.MODEL_ERROR,  # Anthropic
    "not_found": ErrorCode.MODEL_ERROR,  # Gemini
    "modelnotfound": ErrorCode.MODEL_ERROR,
    "resourcenotfoundexception": ErrorCode.MODEL_ERROR,  # Bedrock
    "invalid_model": ErrorCode.MODEL_ERROR,  # Mistral
    "modelnotreadyexception": ErrorCode.SERVER_ERROR,  # Bedrock (HTTP 429, but not a limit)
    # content filtering
    "content_filter": ErrorCode.CONTENT_FILTERED,  # OpenAI / Azure
    "content_policy_violation": ErrorCode.CONTENT_FILTERED,
    "responsibleaipolicyviolation": ErrorCode.CONTENT_FILTERED,  # Azure innererror
    "data_inspection_failed": ErrorCode.CONTENT_FILTERED,  # DashScope
    "safety": ErrorCode.CONTENT_FILTERED,
    # server side
    "server_error": ErrorCode.SERVER_ERROR,
    "internal_server_error": ErrorCode.SERVER_ERROR,
    "api_error": ErrorCode.SERVER_ERROR,  # Anthropic 500
    "overloaded_error": ErrorCode.SERVER_ERROR,  # Anthropic 529
    "internal": ErrorCode.SERVER_ERROR,  # Gemini
    "unavailable": ErrorCode.SERVER_ERROR,  # Gemini
    "service_unavailable": ErrorCode.SERVER_ERROR,
    "serviceunavailableexception": ErrorCode.SERVER_ERROR,  # Bedrock
    "deadline_exceeded": ErrorCode.TIMEOUT,  # Gemini
    "timeout_error": ErrorCode.TIMEOUT,  # Anthropic 504
    "context_length_exceeded": ErrorCode.INVALID_REQUEST,
}

# Words that only describe a class of request errors; the HTTP status says more when present.
_WEAK_SIGNALS: dict[str, ErrorCode] = {
    "invalid_request_error": ErrorCode.INVALID_REQUEST,
    "invalid_argument": ErrorCode.INVALID_REQUEST,
    "failed_precondition": ErrorCode.INVALID_REQUEST,
    "bad_request": ErrorCode.INVALID_REQUEST,
    "validationexception": ErrorCode.INVALID_REQUEST,
}

# Last resort: phrases in the message. Specific phrases only; RAGFlow matched bare words such
# as "key", which turned connection failures into "bad API key" reports.
_KEYWORDS: list[tuple[ErrorCode, re.Pattern[str]]] = [
    (
        ErrorCode.CONTENT_FILTERED,
        re.compile(r"content[ _-]?(filter|policy|management)|safety|inappropriate|blocked"),
    ),
    (
        ErrorCode.QUOTA_EXCEEDED,
        re.compile(r"insufficient[ _]?(quota|balance|credit)|quota|billing|arrear|欠费"),
    ),
    (ErrorCode.RATE_LIMIT_EXCEEDED, re.compile(r"rate[ _-]?limit|too many requests|throttl")),
    (
        ErrorCode.AUTH_ERROR,
        re.compile(
            r"(invalid|incorrect|missing|expired|wrong)[ _-]?api[ _-]?key|api[ _-]?key "
            r"(not valid|is invalid|invalid)|unauthori[sz]ed|authentication|permission denied"
        ),
    ),
    (
        ErrorCode.MODEL_ERROR,
        re.compile(
            r"model.{0,80}(not found|does not exist|not exist|is not supported|not available)"
            r"|no such model|unknown model|model_not_found"
        ),
    ),
    (ErrorCode.TIMEOUT, re.compile(r"timed? ?out|deadline exceeded")),
    (
        ErrorCode.SERVER_ERROR,
        re.compile(r"internal (server )?error|overloaded|service unavailable|bad gateway"),
    ),
    (
        ErrorCode.CONNECTION_ERROR,
        re.compile(r"connection (refused|reset|aborted)|network (error|is unreachable)"),
    ),
    (ErrorCode.INVALID_REQUEST, re.compile(r"invalid|bad request|malformed|parameter")),
]

# For a 4xx other than the statuses with a fixed meaning, only these refine INVALID_REQUEST.
_CLIENT_ERROR_REFINEMENTS = {
    ErrorCode.CONTENT_FILTERED,
    ErrorCode.AUTH_ERROR,
    ErrorCode.MODEL_ERROR,
    ErrorCode.QUOTA_EXCEEDED,
}


def _keyword_code(message: str, among: set[ErrorCode] | None = None) -> ErrorCode | None:
    text = message.lower()
    for code, pattern in _KEYWORDS:
        if (among is None or code in among) and pattern.search(text):
            return code
    return None


def classify_code(status: int | None, info: ErrorBody) -> ErrorCode:
    """Decide the code from the status and the parsed body; structured fields before words."""
    for signal in info.signals:
        if signal in _STRONG_SIGNALS:
            return _STRONG_SIGNALS[signal]
    if status is None or 200 <= status < 300:
        status = info.embedded_status
    if status is not None:
        if status in (401, 403):
            return ErrorCode.AUTH_ERROR
        if status == 402:
            return ErrorCode.QUOTA_EXCEEDED
        if status == 429:
            quota = _keyword_code(info.message, {ErrorCode.QUOTA_EXCEEDED})
            return quota or ErrorCode.RATE_LIMIT_EXCEEDED
        if status == 408:
            return ErrorCode.TIMEOUT
        if status >= 500:  # includes Anthropic's 529 "overloaded"
            return ErrorCode.SERVER_ERROR
        if 400 <= status < 500:
            refined = _keyword_code(info.message, _CLIENT_ERROR_REFINEMENTS)
            return refined or ErrorCode.INVALID_REQUEST
    for signal in info.signals:
        if signal in _WEAK_SIGNALS:
            return _WEAK_SIGNALS[signal]
    return _keyword_code(info.message) or ErrorCode.GENERIC_ERROR


def classify(
    status: int | None,
    body: Any,
    *,
    provider: str,
    model: str,
    secrets: Iterable[str] = (),
    retry_after: float | None = None,
    signals: Iterable[str] = (),
) -> ProviderError:
    """Turn an HTTP error status and the provider's error body into a ProviderError.

    `signals` are error type names the provider sent outside the body (a header); they are
    read first, as the body's own are.
    """
    info = parse_error_body(body)
    info.signals[:0] = [signal.lower() for signal in signals if signal]
    code = classify_code(status, info)
    message = " ".join(info.message.split())[:500] or "no error message"
    if status is not None and not 200 <= status < 300:
        message = f"HTTP {status}: {message}"
        if status == 404 and code is ErrorCode.INVALID_REQUEST:
            message += " (check the base URL)"
    return ERROR_CLASSES[code](
        message,
        provider=provider,
        model=model,
        status=status,
        retry_after=retry_after if retry_after is not None else info.retry_after,
        secrets=secrets,
    )


def _origin(exc: httpx.HTTPError) -> str:
    # Only scheme, host and port: paths and query strings can carry keys or deployment names.
    try:
        url = exc.request.url
    except RuntimeError:
        return "the provider"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def from_transport_error(
    exc: Exception, *, provider: str, model: str, secrets: Iterable[str] = ()
) -> ProviderError:
    """Map an httpx transport failure. A failed connection is never an authentication error."""
    kwargs = {"provider": provider, "model": model, "secrets": secrets}
    if isinstance(exc, ProviderError):
        return exc
    if not isinstance(exc, httpx.HTTPError):
        return ProviderConnectionError(f"network error: {exc}", **kwargs)
    origin = _origin(exc)
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderTimeout(f"timed out connecting to {origin}", **kwargs)
    if isinstance(exc, httpx.PoolTimeout):
        return ProviderTimeout("timed out waiting for a free connection", **kwargs)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"timed out waiting for {origin}: {reason}", **kwargs)
    if isinstance(exc, httpx.ConnectError):
        return ProviderConnectionError(f"could not connect to {origin}: {reason}", **kwargs)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderConnectionError(
            f"{origin} closed the connection before the response was complete: {reason}",
            **kwargs,
        )
    if isinstance(exc, httpx.NetworkError):
        return ProviderConnectionError(f"network error talking to {origin}: {reason}", **kwargs)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.TooManyRedirects):
        return InvalidRequestError(f"bad provider URL: {reason}", **kwargs)
    return GenericProviderError(f"{type(exc).__name__}: {reason}", **kwargs)


@dataclass(frozen=True)
class ErrorContext:
    """Who is being called, so errors name the factory and model and scrub the right secrets."""

    provider: str
    model: str
    secrets: tuple[str, ...] = ()

    def classify(
        self,
        status: int | None,
        body: Any,
        *,
        retry_after: float | None = None,
        signals: Iterable[str] = (),
    ) -> ProviderError:
        return classify(
            status,
            body,
            provider=self.provider,
            model=self.model,
            secrets=self.secrets,
            retry_after=retry_after,
            signals=signals,
        )

    def from_transport(self, exc: Exception) -> ProviderError:
        return from_transport_error(
            exc, provider=self.provider, model=self.model, secrets=self.secrets
        )

    def error(self, cls: type[ProviderError], message: str, **kwargs: Any) -> ProviderError:
        return cls(
            message, provider=self.provider, model=self.model, secrets=self.secrets, **kwargs
        )

    def __repr__(self) -> str:
        return f"ErrorContext(provider={self.provider!r}, model={self.model!r})"
