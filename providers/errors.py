"""Provider errors: RAGFlow's error codes and one exception class per code.

Errors are raised, never returned as "**ERROR**" strings. Every message names the factory and
the model, and is scrubbed (providers.scrub) of the secrets it was given before it is stored,
so no str(), repr() or log line of a ProviderError can leak a key. What a provider's answer
means is decided in providers.classify.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, ClassVar

from .scrub import excerpt, scrub

# What callers are told when no model server answered: an address the network policy refuses
# (providers.netguard), a port where nothing listens, a server that is not a model server.
# The same words whatever the reason, so that calls cannot be used to scan a network.
UNREACHABLE = "could not reach a model server at this address"


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


# --- exceptions ------------------------------------------------------------------------------

# The class raised for each code (the first class declared with it).
ERROR_CLASSES: dict[ErrorCode, type[ProviderError]] = {}


def _restore(cls: type[ProviderError], args: tuple, state: dict) -> ProviderError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ProviderError(Exception):
    """A failed call to a model provider.

    `detail` is the scrubbed explanation (for logs and exceptions); str(error) prefixes it with
    the code, the factory and the model. `provider_message` is a short scrubbed excerpt of the
    provider's own error text, when its answer was a provider's error body: what may be stored
    and shown next to the classified message.
    """

    code: ClassVar[ErrorCode] = ErrorCode.GENERIC_ERROR

    def __init_subclass__(cls, code: ErrorCode | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
            ERROR_CLASSES.setdefault(code, cls)

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        secrets: Iterable[str] = (),
        provider_message: str = "",
    ) -> None:
        secrets = tuple(secrets)
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.detail = scrub(str(message), secrets)
        self.provider_message = excerpt(provider_message, secrets)
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


class RateLimitError(ProviderError, code=ErrorCode.RATE_LIMIT_EXCEEDED):
    """The provider is limiting this key's request rate; retried after its Retry-After."""


class AuthError(ProviderError, code=ErrorCode.AUTH_ERROR):
    """The credentials were refused (invalid, expired or without permission)."""


class InvalidRequestError(ProviderError, code=ErrorCode.INVALID_REQUEST):
    """The provider (or our own checks, before anything was sent) refused the request as
    malformed: bad parameters, a base URL that may not be called, missing credential fields."""


class ServerError(ProviderError, code=ErrorCode.SERVER_ERROR):
    """The provider failed or is overloaded (5xx); retried."""


class ProviderTimeout(ProviderError, code=ErrorCode.TIMEOUT):
    """No complete answer in time; retried."""


class ProviderConnectionError(ProviderError, code=ErrorCode.CONNECTION_ERROR):
    """The provider could not be reached, its name did not resolve, what answered was not a
    model server, or the connection broke mid-answer. Never an authentication problem, however
    it looks. Its detail is always our own words, never what the other end sent."""


class UnreachableError(ProviderConnectionError):
    """No model server is at this address, and trying again will not change it: the network
    policy refuses the address (providers.netguard), or what answered redirected or is not a
    model server. Told to callers in the same words as a closed port; not retried."""

    @property
    def retryable(self) -> bool:
        return False


class ModelError(ProviderError, code=ErrorCode.MODEL_ERROR):
    """The model does not exist or is not available to this key."""


class UnsupportedModelError(ModelError):
    """No adapter serves this (model type, factory) pair."""


class ContentFilteredError(ProviderError, code=ErrorCode.CONTENT_FILTERED):
    """A safety filter blocked the prompt or the answer."""


class QuotaExceededError(ProviderError, code=ErrorCode.QUOTA_EXCEEDED):
    """The account has no quota or credit left (not retried: waiting will not help), or a
    tenant quota of ours refused the call before the provider was asked."""


class GenericProviderError(ProviderError, code=ErrorCode.GENERIC_ERROR):
    """Anything else, such as an answer that is not what the wire protocol promises."""


class MaxRetriesExceededError(ProviderError, code=ErrorCode.MAX_RETRIES_EXCEEDED):
    """Retryable failures went on until the retries ran out; `last_error` is the last one."""

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
            provider_message=last_error.provider_message,
        )
