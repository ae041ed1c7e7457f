"""Who is calling the gateway: a ragllm API token (`Authorization: Bearer rgl_...`) and the
tenant it acts for (`X-Tenant-ID`, else the one its user owns), as in the management API.

In steady state this does no I/O: identities and memberships come from tenants.identity's
in-process caches, invalidated in every process when a token is revoked or a membership
changes. A miss goes to the database in bundle.run_db's worker thread, behind the same
brute-force limit as the management API (FailedTokenThrottle): that limit is checked only
when a token is not in the cache, since a cached token is one that matched its stored hash.
`last_used_at` is written at most once a minute per token and process, off the request path.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

from tenants.auth import FailedTokenThrottle
from tenants.identity import (
    MISS,
    TenantAccess,
    TokenIdentity,
    peek_tenant_access,
    peek_token_identity,
    tenant_access,
    token_identity,
)
from tenants.models import Role
from tenants.services.tokens import api_token_touch

from .errors import GatewayError
from .http import Request
from .metering import in_background, refresh_caches_soon, run_db

TENANT_HEADER = "x-tenant-id"
INVOKE_SCOPE = "invoke"
TOUCH_EVERY_SECONDS = 60.0

_touched: dict[int, float] = {}  # token id -> time.monotonic() of this process's last touch


@dataclass(frozen=True, slots=True)
class Caller:
    token: TokenIdentity
    tenant: TenantAccess


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(
        401, message, code="invalid_api_key", headers={"WWW-Authenticate": 'Bearer realm="api"'}
    )


async def authenticate(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.strip().partition(" ")
    raw = raw.strip()
    if not header:
        raise _unauthorized(
            "You didn't provide an API key. Send your ragllm API token in an Authorization "
            "header: Authorization: Bearer rgl_..."
        )
    if scheme.lower() != "bearer" or not raw or " " in raw:
        raise _unauthorized("Invalid Authorization header; expected 'Bearer <ragllm API token>'.")
    refresh_caches_soon()
    identity = peek_token_identity(raw)
    if identity is MISS:
        identity = await run_db(_look_up, raw, _meta(request))
    if identity is None:
        raise _unauthorized("Incorrect API key provided, or it was revoked.")
    if identity.expires_at is not None and identity.expires_at <= datetime.now(UTC):
        raise _unauthorized("This API key has expired.")
    if INVOKE_SCOPE not in identity.scopes:
        raise _forbidden(
            "This API key has no 'invoke' scope: it may use the management API, not call models."
        )
    requested = request.headers.get(TENANT_HEADER, "").strip()
    if identity.tenant_id is not None:  # an application key acts for its own tenant only
        if requested and not _names(requested, identity.tenant_id):
            raise _tenant_not_found()
        requested = identity.tenant_id
    access = peek_tenant_access(user_id=identity.user_id, requested=requested)
    if access is MISS:
        access = await run_db(tenant_access, user_id=identity.user_id, requested=requested)
    if access is None:
        raise _tenant_not_found()
    if access.role == Role.INVITE:
        raise _forbidden("Invited members have no access until they join the tenant.")
    _touch_soon(identity)
    return Caller(identity, access)


def _forbidden(message: str) -> GatewayError:
    return GatewayError(403, message, "permission_denied", "permission_denied")


def _tenant_not_found() -> GatewayError:
    return GatewayError(
        404,
        "Tenant not found: X-Tenant-ID names no tenant of yours (without it, the tenant "
        "you own is used).",
        code="tenant_not_found",
    )


def _names(requested: str, tenant_hex: str) -> bool:
    try:
        return uuid.UUID(requested).hex == tenant_hex
    except ValueError:
        return False


def model_allowed(token: TokenIdentity, name: str, factory: str) -> bool:
    """Whether the key may use `name@factory` (its list empty: every model). No I/O."""
    allowed = token.allowed_models
    return not allowed or f"{name}@{factory}" in allowed or f"*@{factory}" in allowed


def check_model(caller: Caller, name: str, factory: str) -> None:
    """403 permission_denied naming the model when the caller's key may not use it."""
    if not model_allowed(caller.token, name, factory):
        raise _forbidden(
            f"This API key may not use the model {name}@{factory} (allowed: "
            f"{', '.join(caller.token.allowed_models)})."
        )


def _meta(request: Request) -> SimpleNamespace:
    """What FailedTokenThrottle reads of a request (DRF's client address rules)."""
    return SimpleNamespace(META={"REMOTE_ADDR": request.client}, headers=request.headers)


def _look_up(raw: str, request: SimpleNamespace) -> TokenIdentity | None:
    throttle = FailedTokenThrottle(request)
    if not throttle.allow_request(request, None):
        raise GatewayError(
            429,
            "Too many failed authentications from this address.",
            "rate_limit_exceeded",
            "rate_limit_exceeded",
            headers={"Retry-After": str(throttle.wait())},
        )
    identity = token_identity(raw)
    if identity is None:
        throttle.record_failure()
    return identity


def _touch_soon(identity: TokenIdentity) -> None:
    now = time.monotonic()
    last = _touched.get(identity.token_id)
    if last is not None and now - last < TOUCH_EVERY_SECONDS:
        return
    _touched[identity.token_id] = now
    token = SimpleNamespace(pk=identity.token_id, last_used_at=identity.last_used_at)
    in_background(run_db(api_token_touch, token=token))
