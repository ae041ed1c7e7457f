"""The shared API base: the response envelope, tenant selection, and the one error handler.

The envelope is RAGFlow's: {"code", "message", "data"}. `code` keeps RAGFlow's meanings
(0 success, 101 missing arguments, 102 data error, 100 internal error, 401 unauthenticated,
403 forbidden); unlike RAGFlow, the HTTP status is honest too. Domain errors
(`ragllm.errors`) carry no status: `exception_handler` maps them here, in one place.

Every tenant-scoped view derives from `TenantAPIView`: the tenant is the one named by the
`X-Tenant-ID` header, or the one the caller owns; a tenant the caller is not a member of is
reported as not found, never as forbidden, so that tenant ids cannot be probed.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import APIToken, Role, Tenant
from tenants.selectors import membership_for

from .errors import (
    ApplicationError,
    Conflict,
    MissingArguments,
    NotFound,
    PermissionDenied,
    ServerMisconfigured,
    ServiceUnavailable,
    UpstreamError,
    UpstreamRateLimited,
)

logger = logging.getLogger(__name__)

TENANT_HEADER = "X-Tenant-ID"
MANAGE_SCOPE = "manage"

SUCCESS = 0
EXCEPTION_ERROR = 100
ARGUMENT_ERROR = 101
DATA_ERROR = 102
UNAUTHORIZED = 401
FORBIDDEN = 403

# (HTTP status, RAGFlow code) of each domain error; the most specific class of an error wins.
ERROR_RESPONSES: dict[type[ApplicationError], tuple[int, int]] = {
    MissingArguments: (status.HTTP_400_BAD_REQUEST, ARGUMENT_ERROR),
    PermissionDenied: (status.HTTP_403_FORBIDDEN, FORBIDDEN),
    NotFound: (status.HTTP_404_NOT_FOUND, DATA_ERROR),
    Conflict: (status.HTTP_409_CONFLICT, DATA_ERROR),
    UpstreamRateLimited: (status.HTTP_429_TOO_MANY_REQUESTS, DATA_ERROR),
    UpstreamError: (status.HTTP_502_BAD_GATEWAY, DATA_ERROR),
    ServerMisconfigured: (status.HTTP_500_INTERNAL_SERVER_ERROR, EXCEPTION_ERROR),
    ServiceUnavailable: (status.HTTP_503_SERVICE_UNAVAILABLE, EXCEPTION_ERROR),
    ApplicationError: (status.HTTP_400_BAD_REQUEST, DATA_ERROR),
}


def ok(data: Any = True, *, message: str = "success", http_status: int = 200) -> Response:
    return Response({"code": SUCCESS, "message": message, "data": data}, status=http_status)


# --- Tenant selection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantContext:
    tenant: Tenant
    role: str

    @property
    def can_write(self) -> bool:
        return self.role in {Role.OWNER, Role.ADMIN}

    @property
    def can_read(self) -> bool:
        return self.role != Role.INVITE


def _api_key(request) -> APIToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, APIToken) else None


def resolve_tenant(request) -> TenantContext:
    """The tenant this request acts for: X-Tenant-ID, or the one the user owns. An application
    key acts only for its own tenant (another X-Tenant-ID is not found, as for outsiders)."""
    requested = request.headers.get(TENANT_HEADER, "").strip() or None
    key = _api_key(request)
    if key is not None and key.tenant_id is not None:
        if requested is not None and not _names_tenant(requested, key.tenant_id):
            raise exceptions.NotFound()
        requested = str(key.tenant_id)
    membership = membership_for(user=request.user, tenant_id=requested)
    if membership is None:
        raise exceptions.NotFound()
    return TenantContext(tenant=membership.tenant, role=membership.role)


def _names_tenant(requested: str, tenant_id: uuid.UUID) -> bool:
    try:
        return uuid.UUID(requested) == tenant_id
    except ValueError:
        return False


class TenantAPIView(APIView):
    """Resolves the tenant and the caller's role before any handler runs.

    Reads need membership (invited members may do nothing); writes need owner or admin.
    """

    ctx: TenantContext
    write_methods = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        key = _api_key(request)
        if key is not None and MANAGE_SCOPE not in (key.scopes or ()):
            raise PermissionDenied(
                "This API key has no 'manage' scope: it may call models through the /v1 "
                "gateway, not the management API."
            )
        self.ctx = resolve_tenant(request)
        if not self.ctx.can_read:
            raise PermissionDenied("Invited members have no access until they join the tenant.")
        if request.method in self.write_methods and not self.ctx.can_write:
            raise PermissionDenied(
                "Only the tenant's owner or admins may change model configurations."
            )

    @property
    def tenant(self) -> Tenant:
        return self.ctx.tenant


# --- Serializer helpers --------------------------------------------------------------------------


def parse(serializer_class: type[serializers.Serializer], data: Any) -> dict:
    """The validated input, or a ValidationError the handler turns into the envelope."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema_field(OpenApiTypes.DATETIME)
class IsoDateTimeField(serializers.Field):
    """A datetime as Python's isoformat() writes it ("2026-11-29T10:00:00+00:00"), or null."""

    def to_representation(self, value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None


# --- Errors -------------------------------------------------------------------------------------


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


def _application_error(exc: ApplicationError) -> Response:
    http_status, code = next(
        ERROR_RESPONSES[cls] for cls in type(exc).__mro__ if cls in ERROR_RESPONSES
    )
    return _error(code, exc.message, http_status, exc.data)


def exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, ApplicationError):
        return _application_error(exc)
    if isinstance(exc, exceptions.ValidationError):
        codes = exc.get_codes()
        if isinstance(codes, dict):
            missing = [name for name, c in codes.items() if isinstance(c, list) and "required" in c]
            if missing:
                return _application_error(MissingArguments(missing))
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
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than the {limit:,} bytes this server accepts."
        return _error(DATA_ERROR, message, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        # Too many form fields or files, a malformed multipart body...: the request's fault.
        return _error(DATA_ERROR, f"Bad request: {exc}", status.HTTP_400_BAD_REQUEST)
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return _error(EXCEPTION_ERROR, "internal error", status.HTTP_500_INTERNAL_SERVER_ERROR)
