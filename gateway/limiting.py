"""Rate limits on the gateway's requests (issue 11): which limits a caller is held to, and
OpenAI's `x-ratelimit-*` headers on every response to a caller under a limit.

The check itself is LLMBundle's (usage.ratelimits, just before the provider call, after every
400/403/404 check), so a refused request never counts. The gateway only names the request's
limits (the tenant's and the key's) in `usage.ratelimits.request_limits` and adds the headers
of what the check found; a response without a check (a bad request, `/v1/models`) reads the
counters' state without charging them.
"""

from __future__ import annotations

from functools import lru_cache

from usage.ratelimits import Limits, RequestLimits, apeek, limits_for, request_limits

from .auth import Caller


@lru_cache(maxsize=4096)
def _limits(tenant_id, tenant_rpm, tenant_tpm, key_id, key_rpm, key_tpm) -> Limits | None:
    return limits_for(
        tenant_id=tenant_id,
        tenant_rpm=tenant_rpm,
        tenant_tpm=tenant_tpm,
        key_id=key_id,
        key_rpm=key_rpm,
        key_tpm=key_tpm,
    )


def begin() -> None:
    """A new request: no limits known yet (a context may serve several requests)."""
    request_limits.set(None)


def limit(caller: Caller, send):
    """Name the caller's limits for this request; `send`, adding the headers when one applies."""
    tenant, token = caller.tenant, caller.token
    limits = _limits(tenant.tenant_id, tenant.rpm, tenant.tpm, token.token_id, token.rpm, token.tpm)
    request_limits.set(RequestLimits(limits))
    return send if limits is None else with_headers(send)


def with_headers(send):
    """`send`, adding the x-ratelimit-* headers of the current request's limits, if any."""
    state = request_limits.get()
    if state is None or state.limits is None:
        return send

    async def send_with_headers(message) -> None:
        if message["type"] == "http.response.start":
            verdict = state.verdict or await apeek(state.limits)
            if verdict is not None:
                extra = [(k.encode(), v.encode()) for k, v in verdict.headers().items()]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_headers
