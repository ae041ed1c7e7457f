"""Who is calling: Bearer API tokens (which tenant a request acts for: ragllm.api)."""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from .selectors import api_token_authenticate
from .services.tokens import api_token_touch


def client_address(request) -> str:
    """The caller's address: the connection's, or X-Forwarded-For's behind TRUSTED_PROXY_COUNT
    proxies. One definition for the admin lockout (django-axes) and the API throttle."""
    return throttling.BaseThrottle().get_ident(request)


class FailedTokenThrottle(throttling.BaseThrottle):
    """At most API_AUTH_FAILURE_LIMIT failed token authentications per client address in each
    window of API_AUTH_COOLOFF_SECONDS; past that, the address gets 429 until the window ends.

    Checked before the token is looked up, so a blocked address learns nothing, not even that
    a token is valid. The counter is one atomic increment in the shared cache (Redis when
    configured), so every worker process counts against the same limit.
    """

    def __init__(self, request) -> None:
        self.window = max(1, settings.API_AUTH_COOLOFF_SECONDS)
        now = time.time()
        bucket = int(now // self.window)
        self.key = f"ragllm:auth-failures:{self.get_ident(request)}:{bucket}"
        self.retry_after = math.ceil((bucket + 1) * self.window - now)

    def allow_request(self, request, view) -> bool:
        return (cache.get(self.key) or 0) < settings.API_AUTH_FAILURE_LIMIT

    def wait(self) -> float:
        return self.retry_after

    def record_failure(self) -> None:
        if not cache.add(self.key, 1, timeout=self.window + 1):
            try:
                cache.incr(self.key)
            except ValueError:  # expired between add and incr
                cache.add(self.key, 1, timeout=self.window + 1)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rgl_...`: a personal API token issued by `create_tenant`/admin."""

    keyword = "Bearer"

    def token_words(self, request) -> list[bytes] | None:
        """The Authorization header's words after the scheme; None if it is not ours."""
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        return header[1:]

    def authenticate(self, request):
        words = self.token_words(request)
        if words is None:
            return None
        throttle = FailedTokenThrottle(request)
        if not throttle.allow_request(request, None):
            raise exceptions.Throttled(
                wait=throttle.wait(), detail="Too many failed authentications from this address."
            )
        token = None
        if len(words) == 1:
            try:
                token = api_token_authenticate(raw=words[0].decode())
            except UnicodeDecodeError:
                token = None
        if token is None:
            throttle.record_failure()
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked token." if len(words) == 1 else "Invalid Authorization header."
            )
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class SchemelessTokenAuthentication(BearerTokenAuthentication):
    """`Authorization: rgl_...` with no scheme, as RAGFlow's web app and SDK send their token;
    `Bearer rgl_...` works too. Same tokens, throttle and checks as BearerTokenAuthentication."""

    def token_words(self, request) -> list[bytes] | None:
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() == self.keyword.lower().encode():
            return header[1:]
        return header


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A ragllm API token."}
