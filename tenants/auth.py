"""Who is calling (Bearer API tokens) and for which tenant (X-Tenant-ID)."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .models import Role, Tenant
from .selectors import api_token_authenticate, membership_for
from .services.tokens import api_token_touch

TENANT_HEADER = "X-Tenant-ID"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rgl_...`: a personal API token issued by `create_tenant`/admin."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        token = api_token_authenticate(raw=raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A ragllm API token."}


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


def resolve_tenant(request) -> TenantContext:
    """The tenant this request acts for: X-Tenant-ID, or the one the user owns.

    A tenant the user is not a member of is reported as not found, never as forbidden, so that
    tenant ids cannot be probed.
    """
    requested = request.headers.get(TENANT_HEADER, "").strip() or None
    membership = membership_for(user=request.user, tenant_id=requested)
    if membership is None:
        raise exceptions.NotFound()
    return TenantContext(tenant=membership.tenant, role=membership.role)
