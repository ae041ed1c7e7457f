"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the HTTP
status each SDK maps to its exception class (401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 400 BadRequestError, 429 RateLimitError, 5xx
InternalServerError / APIStatusError).

`error_for(exc)` is the one place where what went wrong becomes a status: our own refusals
(quota, model naming), and provider failures as providers.classify read them. Provider
messages are already scrubbed of the tenant's keys (providers.errors).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from providers.errors import (
    AuthError,
    ContentFilteredError,
    InvalidRequestError,
    MaxRetriesExceededError,
    ModelError,
    ProviderError,
    ProviderTimeout,
    QuotaExceededError,
    RateLimitError,
    UnsupportedModelError,
)
from tenants.resolution import ModelNotAuthorized
from usage.ratelimits import RateLimitExceeded

logger = logging.getLogger(__name__)

MODEL_NAMING = (
    "Name a model as `name@factory` (GET /v1/models lists this tenant's), as a bare `name` "
    "when the tenant has exactly one enabled model of that name, or as `default` for the "
    "tenant's default model of the endpoint's type."
)


class GatewayError(Exception):
    """A response in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def model_not_found(message: str) -> GatewayError:
    message = message.rstrip(".")
    return GatewayError(404, f"{message}. {MODEL_NAMING}", code="model_not_found", param="model")


def error_for(exc: BaseException) -> GatewayError:
    """The response for an exception raised while serving a call."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, MaxRetriesExceededError):
        return _provider_error(exc.last_error, str(exc))
    if isinstance(exc, ProviderError):
        return _provider_error(exc, str(exc))
    logger.exception("gateway: unexpected error", exc_info=exc)
    return GatewayError(
        500, "The server had an error while processing your request.", "server_error"
    )


def _provider_error(exc: ProviderError, message: str) -> GatewayError:
    if isinstance(exc, ModelNotAuthorized):
        return model_not_found(exc.detail)
    if isinstance(exc, RateLimitExceeded):
        # Our own limit, as OpenAI words it: type "requests" or "tokens". Without a
        # Retry-After when the request alone is over the limit (waiting would not help).
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return GatewayError(429, exc.detail, exc.kind, "rate_limit_exceeded", headers=headers)
    if isinstance(exc, QuotaExceededError):
        return GatewayError(429, message, "insufficient_quota", "insufficient_quota")
    if isinstance(exc, RateLimitError):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return GatewayError(
            429, message, "rate_limit_exceeded", "rate_limit_exceeded", headers=headers
        )
    if isinstance(exc, UnsupportedModelError):
        return GatewayError(400, message, code="model_not_supported", param="model")
    if isinstance(exc, ContentFilteredError):
        return GatewayError(400, message, code="content_filter")
    if isinstance(exc, InvalidRequestError):
        return GatewayError(400, message)
    if isinstance(exc, ModelError):
        return GatewayError(404, message, code="model_not_found", param="model")
    if isinstance(exc, ProviderTimeout):
        return GatewayError(504, message, "upstream_error", "upstream_timeout")
    if isinstance(exc, AuthError):
        # The tenant's stored credentials were refused: not the caller's token.
        return GatewayError(502, message, "upstream_error", "upstream_auth_error")
    return GatewayError(502, message, "upstream_error", "upstream_error")
