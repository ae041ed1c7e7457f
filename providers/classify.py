"""What a failed call means: a provider's error body or a transport failure, as a ProviderError.

Structured fields settle the class first (OpenAI error.type/code, Anthropic error.type, Gemini
error.status and ErrorInfo reasons, AWS error type headers), then the HTTP status, then
specific phrases of the message. `ErrorContext` carries who is being called, so that every
error names the factory and the model and is scrubbed of the right secrets.

Only a provider's error body (a JSON object in one of the known error shapes) is read for
words, and only its message is kept, as the error's scrubbed `provider_message`. Any other
answer (an HTML page, Redis's `-ERR`, a JSON document that is no error) is never repeated: its
status still means what it always means for 401, 402, 403, 408 and 429, and anything else is
"could not reach a model server at this address", the words used for a closed port too.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import (
    ERROR_CLASSES,
    UNREACHABLE,
    AuthError,
    ErrorCode,
    GenericProviderError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceededError,
    RateLimitError,
    UnreachableError,
)
from .scrub import scrub

logger = logging.getLogger(__name__)

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
    # The body was a provider's error object, not some other server's page or document.
    from_provider: bool = False


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
        return _aws_xml_error(body)

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
    info.from_provider = bool(info.message) or isinstance(error, Mapping)
    return info


# AWS query APIs (STS) answer errors in XML: <ErrorResponse><Error><Type/><Code/><Message/>.
_XML_CODE_RE = re.compile(r"<Code>([^<]{1,200})</Code>")
_XML_MESSAGE_RE = re.compile(r"<Message>([^<]{0,2000})</Message>")


def _aws_xml_error(body: Any) -> ErrorBody:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    if not isinstance(text, str) or "<ErrorResponse" not in text[:500]:
        return ErrorBody()
    code, message = _XML_CODE_RE.search(text), _XML_MESSAGE_RE.search(text)
    if code is None:
        return ErrorBody()
    return ErrorBody(
        message=html.unescape(message.group(1)) if message else "",
        signals=[code.group(1).strip().lower()],
        from_provider=True,
    )


# --- classification --------------------------------------------------------------------------

# Machine-readable words that settle the class, whatever the HTTP status says; a comment names
# the provider a word is peculiar to.
# fmt: off
_STRONG_SIGNAL_WORDS: dict[ErrorCode, tuple[str, ...]] = {
    ErrorCode.QUOTA_EXCEEDED: (
        "insufficient_quota", "billing_hard_limit_reached", "billing_not_active",
        "quota_exceeded", "insufficient_balance",
        "arrearage",  # DashScope
    ),
    ErrorCode.RATE_LIMIT_EXCEEDED: (
        "rate_limit_exceeded", "too_many_requests",
        "rate_limit_error",  # Anthropic
        "resource_exhausted",  # Gemini
        "throttling",  # DashScope
        "throttlingexception",  # Bedrock
    ),
    ErrorCode.AUTH_ERROR: (
        "invalid_api_key", "invalid_authentication",
        "authentication_error", "permission_error",  # Anthropic
        "unauthenticated", "permission_denied", "api_key_invalid",  # Gemini (and its reason)
        "invalidapikey",  # DashScope
        "unrecognizedclientexception", "accessdeniedexception",  # Bedrock
    ),
    ErrorCode.MODEL_ERROR: (
        "model_not_found", "modelnotfound",
        "not_found_error",  # Anthropic
        "not_found",  # Gemini
        "resourcenotfoundexception",  # Bedrock
        "invalid_model",  # Mistral
    ),
    ErrorCode.CONTENT_FILTERED: (
        "content_filter",  # OpenAI / Azure
        "content_policy_violation", "safety",
        "responsibleaipolicyviolation",  # Azure innererror
        "data_inspection_failed",  # DashScope
    ),
    ErrorCode.SERVER_ERROR: (
        "server_error", "internal_server_error", "service_unavailable",
        "api_error", "overloaded_error",  # Anthropic 500 and 529
        "internal", "unavailable",  # Gemini
        "serviceunavailableexception",  # Bedrock
        "modelnotreadyexception",  # Bedrock (HTTP 429, but not a limit)
    ),
    ErrorCode.TIMEOUT: (
        "deadline_exceeded",  # Gemini
        "timeout_error",  # Anthropic 504
    ),
    ErrorCode.INVALID_REQUEST: ("context_length_exceeded",),
}
# fmt: on
_STRONG_SIGNALS = {word: code for code, words in _STRONG_SIGNAL_WORDS.items() for word in words}

# Words that only describe a class of request errors; the HTTP status says more when present.
_WEAK_SIGNALS = dict.fromkeys(
    (
        "invalid_request_error",
        "invalid_argument",
        "failed_precondition",
        "bad_request",
        "validationexception",
    ),
    ErrorCode.INVALID_REQUEST,
)

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
    retry_after = retry_after if retry_after is not None else info.retry_after
    kwargs = {"provider": provider, "model": model, "status": status, "secrets": secrets}
    if not info.from_provider and not info.signals:
        return _not_a_provider_body(body, retry_after=retry_after, **kwargs)
    code = classify_code(status, info)
    text = " ".join(info.message.split())[:500]
    message = text or "no error message"
    if status is not None and not 200 <= status < 300:
        message = f"HTTP {status}: {message}"
        if status == 404 and code is ErrorCode.INVALID_REQUEST:
            message += " (check the base URL)"
    return ERROR_CLASSES[code](message, retry_after=retry_after, provider_message=text, **kwargs)


# Statuses that mean the same whoever answers (an auth proxy in front of a self-hosted
# server, a CDN's rate limit page), with the words we say for them.
_STATUS_MEANINGS: dict[int, tuple[type[ProviderError], str]] = {
    401: (AuthError, "the credentials were refused"),
    403: (AuthError, "access was refused"),
    402: (QuotaExceededError, "payment required"),
    408: (ProviderTimeout, "the request timed out"),
    429: (RateLimitError, "too many requests"),
}


def _not_a_provider_body(body: Any, *, retry_after: float | None, **kwargs: Any) -> ProviderError:
    """An error answer whose body is not a provider's error object: its status alone."""
    status = kwargs["status"]
    size = len(body) if isinstance(body, bytes | bytearray | str) else 0
    logger.info(
        "%s: HTTP %s answer without a provider error body (%d bytes, not shown)",
        kwargs["provider"],
        status,
        size,
    )
    if status in _STATUS_MEANINGS:
        cls, words = _STATUS_MEANINGS[status]
        return cls(f"HTTP {status}: {words}", retry_after=retry_after, **kwargs)
    # A gateway's 5xx page may pass (retried); a 404 page will not.
    cls = ProviderConnectionError if status is not None and status >= 500 else UnreachableError
    return cls(UNREACHABLE, retry_after=retry_after, **kwargs)


def url_origin(url: httpx.URL) -> str:
    """Scheme, host and port only: paths and query strings can carry keys or deployment names."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _origin(exc: httpx.HTTPError) -> str:
    try:
        return url_origin(exc.request.url)
    except RuntimeError:
        return "the provider"


def from_transport_error(
    exc: Exception,
    *,
    provider: str,
    model: str,
    secrets: Iterable[str] = (),
    before_response: bool = False,
) -> ProviderError:
    """Map an httpx transport failure. A failed connection is never an authentication error.

    Before a response began, every failure to connect or to get an HTTP answer (refused,
    reset, garbage instead of a status line) is UNREACHABLE, whatever the other end did; the
    reason only goes to the log. Messages never carry what the other end sent.
    """
    secrets = tuple(secrets)
    kwargs = {"provider": provider, "model": model, "secrets": secrets}
    if isinstance(exc, ProviderError):
        return exc
    if not isinstance(exc, httpx.HTTPError):
        logger.info("%s: network error: %s", provider, scrub(repr(exc), secrets))
        message = UNREACHABLE if before_response else "the connection failed"
        return ProviderConnectionError(message, **kwargs)
    origin = _origin(exc)
    if isinstance(exc, httpx.PoolTimeout):
        return ProviderTimeout("timed out waiting for a free connection", **kwargs)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.TooManyRedirects):
        return InvalidRequestError(f"bad provider URL: {exc or type(exc).__name__}", **kwargs)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or (
        before_response and isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
    ):
        reason = scrub(f"{type(exc).__name__}: {exc}", secrets)
        logger.info("%s: %s unreachable: %s", provider, origin, reason)
        return ProviderConnectionError(UNREACHABLE, **kwargs)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"timed out waiting for {origin}", **kwargs)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderConnectionError(
            f"{origin} closed the connection before the response was complete", **kwargs
        )
    if isinstance(exc, httpx.NetworkError):
        return ProviderConnectionError(f"the connection to {origin} broke", **kwargs)
    return GenericProviderError(f"{type(exc).__name__} talking to {origin}", **kwargs)


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

    def from_transport(self, exc: Exception, *, before_response: bool = False) -> ProviderError:
        return from_transport_error(
            exc,
            provider=self.provider,
            model=self.model,
            secrets=self.secrets,
            before_response=before_response,
        )

    def unreachable(
        self, cls: type[ProviderError] = ProviderConnectionError, **kwargs: Any
    ) -> ProviderError:
        """No model server could be reached at the address (the same words whatever the
        reason: see providers.netguard)."""
        return self.error(cls, UNREACHABLE, **kwargs)

    def error(self, cls: type[ProviderError], message: str, **kwargs: Any) -> ProviderError:
        return cls(
            message, provider=self.provider, model=self.model, secrets=self.secrets, **kwargs
        )

    def __repr__(self) -> str:
        return f"ErrorContext(provider={self.provider!r}, model={self.model!r})"
