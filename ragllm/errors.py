"""Domain errors: what went wrong, in words fit for the caller, and nothing about HTTP.

Services and selectors raise these; commands print them; the API's exception handler
(`ragllm.api`) is the one place that maps each class to an HTTP status and a RAGFlow code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ApplicationError(Exception):
    """A request the application refuses, with a message for the caller and optional data."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class InvalidInput(ApplicationError):
    """A value in the request is wrong (unknown, malformed or not allowed)."""


class MissingArguments(InvalidInput):
    """Required arguments are missing."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        # RAGFlow's exact wording, which clients match on.
        super().__init__(f"required argument are missing: {','.join(self.names)}; ")


class NotFound(ApplicationError):
    """The thing named does not exist, or not for this caller."""


class Conflict(ApplicationError):
    """The request contradicts the current state (e.g. deleting a tenant's default model)."""


class PermissionDenied(ApplicationError):
    """The caller may not do this."""


class ServerMisconfigured(ApplicationError):
    """The server's own configuration prevents the request (an operator must fix it)."""


class ServiceUnavailable(ApplicationError):
    """A part of this service the request needs is not running (e.g. no task worker)."""


class UpstreamError(ApplicationError):
    """A provider failed or could not be reached, for reasons on its side."""


class UpstreamRateLimited(UpstreamError):
    """A provider is rate-limiting the credentials."""
