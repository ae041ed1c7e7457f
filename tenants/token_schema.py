"""OpenAPI material of /api/v1/tokens, /api/v1/audit and /api/v1/tenant/limits."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from ragllm.schema import ERRORS, answer, envelope_example, operation, request_example

_KEY = {
    "id": 7,
    "name": "support-bot",
    "prefix": "3f9a0c1d",
    "user": "alice@example.com",
    "scopes": ["invoke"],
    "models": ["gpt-4o-mini@OpenAI", "*@Anthropic"],
    "expires_at": "2027-06-30T00:00:00+00:00",
    "rpm": 60,
    "tpm": 100000,
    "token_quota": None,
    "budget": "25.0000",
    "quota_window": "monthly",
    "created_at": "2026-12-01T10:00:00+00:00",
    "last_used_at": None,
    "revoked_at": None,
}
_ID = OpenApiParameter(
    "token_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The key's id."
)


def tokens_list(data: serializers.Field):
    return operation(
        "tokens_list",
        "The tenant's application keys",
        description="Owners and admins see every key of the tenant, normal members their own. "
        "Never the keys themselves: `prefix` identifies one.",
        responses={200: answer("APIKeysAnswer", data, envelope_example("Keys", [_KEY])), **ERRORS},
    )


def tokens_create(request, data: serializers.Serializer):
    body = {
        "name": "support-bot",
        "scopes": ["invoke"],
        "models": ["gpt-4o-mini@OpenAI", "*@Anthropic"],
        "expires_at": "2027-06-30T00:00:00Z",
        "rpm": 60,
        "tpm": 100000,
        "budget": "25",
    }
    created = _KEY | {"token": "rgl_3f9a0c1d_..."}
    return operation(
        "tokens_create",
        "Create an application key bound to the tenant (owners and admins)",
        description="The answer's `token` is the key: shown this once, never again. `scopes`: "
        "`manage` (the /api/v1 routes), `invoke` (the /v1 gateway); default both. `models`: "
        "`name@factory` or `*@factory` of the catalog or the tenant; empty: every model. "
        "Limits are null for none.",
        request=request,
        examples=[request_example("Gateway key", body)],
        responses={
            201: answer(
                "APIKeyCreatedAnswer", data, envelope_example("Created", created, status=201)
            ),
            **ERRORS,
        },
    )


def token_get(data: serializers.Serializer):
    return operation(
        "tokens_get",
        "One application key",
        parameters=[_ID],
        responses={200: answer("APIKeyAnswer", data, envelope_example("Key", _KEY)), **ERRORS},
    )


def token_update(request, data: serializers.Serializer):
    return operation(
        "tokens_update",
        "Change an application key's settings (owners and admins)",
        description="Send only what changes; null clears a limit, the expiry or the model list.",
        parameters=[_ID],
        request=request,
        examples=[request_example("Raise the RPM", {"rpm": 120})],
        responses={
            200: answer("APIKeyAnswer", data, envelope_example("Updated", _KEY | {"rpm": 120})),
            **ERRORS,
        },
    )


def token_revoke(data: serializers.Serializer):
    revoked = _KEY | {"revoked_at": "2026-12-02T09:00:00+00:00"}
    return operation(
        "tokens_revoke",
        "Revoke an application key",
        description="Refused by every process from the next request on. Normal members may "
        "revoke their own keys only.",
        parameters=[_ID],
        responses={
            200: answer("APIKeyAnswer", data, envelope_example("Revoked", revoked)),
            **ERRORS,
        },
    )


def audit_list(query, data: serializers.Serializer):
    entry = {
        "id": 42,
        "created_at": "2026-12-01T10:00:00+00:00",
        "kind": "credential.set",
        "object": "Factory OpenAI",
        "changes": {"api_key": {"from": "", "to": "sk-...7f3a"}},
        "actor": "alice@example.com",
        "actor_user_id": 3,
        "actor_token_id": None,
        "source": "api",
        "client_address": "203.0.113.7",
    }
    page = {"total": 1, "page": 1, "page_size": 50, "entries": [entry]}
    return operation(
        "audit_list",
        "The tenant's audit log (owners and admins)",
        description="Changes of credentials, base URLs, model configs, default models, quotas, "
        "budgets, limits, keys, members and the webhook: who (user, key), from where (api, "
        "admin, command, client address), when, and what (field names and masked values, "
        "never a key or secret). Newest first.",
        parameters=[query],
        responses={200: answer("AuditAnswer", data, envelope_example("Log", page)), **ERRORS},
    )


def limits_get(data: serializers.Serializer):
    return operation(
        "tenant_limits",
        "The tenant's quota, budget, rate limits and alert webhook",
        description="`alert_webhook_secret_set` says whether a secret is stored; the secret "
        "itself is never returned.",
        responses={
            200: answer("TenantLimitsAnswer", data, envelope_example("Limits", _LIMITS)),
            **ERRORS,
        },
    )


def limits_update(request, data: serializers.Serializer):
    return operation(
        "tenant_limits_update",
        "Set the tenant's quota, budget, rate limits or alert webhook (owners and admins)",
        description="Send only what changes; null clears a limit. The webhook URL is checked by "
        "the SSRF guard; an empty secret clears it.",
        request=request,
        examples=[
            request_example("A monthly budget", {"budget": "100", "quota_window": "monthly"})
        ],
        responses={
            200: answer("TenantLimitsAnswer", data, envelope_example("Updated", _LIMITS)),
            **ERRORS,
        },
    )


_LIMITS = {
    "token_quota": 5000000,
    "quota_window": "monthly",
    "budget": "100.0000",
    "rpm": 600,
    "tpm": 1000000,
    "unlimited": False,
    "alert_webhook_url": "https://hooks.example.com/ragllm",
    "alert_webhook_secret_set": True,
}
