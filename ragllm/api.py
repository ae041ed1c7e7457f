"""The API's response envelope, kept from RAGFlow: {"code", "message", "data"}.

`code` keeps RAGFlow's meanings (0 success, 101 missing arguments, 102 data error, 100 internal
error, 401 unauthenticated, 403 forbidden); unlike RAGFlow, the HTTP status is honest too.
Domain errors become responses here, in one place, not in every view.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

SUCCESS = 0
EXCEPTION_ERROR = 100
ARGUMENT_ERROR = 101
DATA_ERROR = 102
UNAUTHORIZED = 401
FORBIDDEN = 403


def ok(data: Any = True, *, message: str = "success", http_status: int = 200) -> Response:
    return Response({"code": SUCCESS, "message": message, "data": data}, status=http_status)


class ApiError(Exception):
    """An error with its envelope code and HTTP status."""

    code = DATA_ERROR
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: int | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        if http_status is not None:
            self.http_status = http_status
        if code is not None:
            self.code = code


class MissingArguments(ApiError):
    code = ARGUMENT_ERROR

    def __init__(self, names: list[str]) -> None:
        # RAGFlow's exact wording, which clients match on.
        super().__init__(f"required argument are missing: {','.join(names)}; ")


class NotFound(ApiError):
    http_status = status.HTTP_404_NOT_FOUND


class Conflict(ApiError):
    http_status = status.HTTP_409_CONFLICT


class Forbidden(ApiError):
    code = FORBIDDEN
    http_status = status.HTTP_403_FORBIDDEN


def _error(code: int, message: str, http_status: int, data: Any = None) -> Response:
    return Response({"code": code, "message": message, "data": data}, status=http_status)


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out.extend(_flatten(value, f"{prefix}{name}: " if name else prefix))
        return out
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, ApiError):
        return _error(exc.code, exc.message, exc.http_status, exc.data)
    if isinstance(exc, exceptions.ValidationError):
        codes = exc.get_codes()
        if isinstance(codes, dict):
            missing = [name for name, c in codes.items() if isinstance(c, list) and "required" in c]
            if missing:
                return _error(ARGUMENT_ERROR, MissingArguments(missing).message, 400)
        return _error(DATA_ERROR, "; ".join(_flatten(exc.detail)), 400)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = _error(UNAUTHORIZED, str(exc.detail), status.HTTP_401_UNAUTHORIZED)
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, exceptions.PermissionDenied):
        return _error(FORBIDDEN, str(exc.detail), status.HTTP_403_FORBIDDEN)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return _error(DATA_ERROR, "not found", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, exceptions.Throttled):
        response = _error(DATA_ERROR, str(exc.detail), status.HTTP_429_TOO_MANY_REQUESTS)
        if exc.wait is not None:
            response["Retry-After"] = str(math.ceil(exc.wait))
        return response
    if isinstance(exc, exceptions.APIException):
        return _error(DATA_ERROR, str(exc.detail), exc.status_code)
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return _error(EXCEPTION_ERROR, "internal error", status.HTTP_500_INTERNAL_SERVER_ERROR)
