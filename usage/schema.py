"""OpenAPI material of GET /api/v1/usage and GET /api/v1/usage/quota: examples and errors."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from ragllm.schema import ERRORS, answer, envelope_example, error, operation

_ROW = {
    "calls": 42,
    "errors": 1,
    "prompt_tokens": 51200,
    "completion_tokens": 8800,
    "total_tokens": 60000,
    "cost": "0.21600000",
}
_MAY = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-31T00:00:00Z"}
_QUOTA = {
    "quota": 1000000,
    "window": "monthly",
    "window_start": "2026-05-01T00:00:00Z",
    "used": 850000,
    "remaining": 150000,
    "percent": 85.0,
    "warning": True,
}
_NO_QUOTA = {
    "quota": None,
    "window": "monthly",
    **dict.fromkeys(("window_start", "used", "remaining", "percent")),
    "warning": False,
}


def usage_list(query, data: serializers.Serializer):
    by_day = _MAY | {"group_by": "day", "rows": [{"day": "2026-05-01"} | _ROW], "totals": _ROW}
    by_model = _MAY | {
        "group_by": "model",
        "rows": [{"model": "gpt-4o@OpenAI"} | _ROW],
        "totals": _ROW,
    }
    csv = OpenApiExample(
        "CSV by model",
        value="model,calls,errors,prompt_tokens,completion_tokens,"
        "total_tokens,cost\ngpt-4o@OpenAI,42,1,51200,8800,60000,0.21600000\n",
        response_only=True,
        media_type="text/csv",
    )
    bad_group_by = envelope_example(
        "Bad group_by",
        None,
        code=102,
        message="group_by: 'week' is not one of day, model, factory, type, token",
        status=400,
    )
    return operation(
        "usage_list",
        "The tenant's token usage and cost over a period, grouped by day, model, factory, type "
        "or API token",
        description="Sums of the tenant's usage events over `[from, to)` in UTC, exact and up "
        "to date. Days are UTC dates; `cost` is a decimal string (8 places).",
        parameters=[query],
        responses={
            (200, "application/json"): answer(
                "UsageAnswer",
                data,
                envelope_example("By day", by_day),
                envelope_example("By model", by_model),
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="With format=csv: an attachment, one header row, one row a group.",
                examples=[csv],
            ),
            400: error("A bad from, to, group_by or format (code 102).", bad_group_by),
            **{code: response for code, response in ERRORS.items() if code != 400},
        },
    )


def usage_quota(data: serializers.Serializer):
    model = {
        "id": 12,
        "model": "gpt-4o@OpenAI",
        "model_type": "chat",
        "used_tokens": 4200000,
        "quota": 200000,
        "window": "daily",
        "window_start": "2026-05-20T00:00:00Z",
        "used": 1000,
        "remaining": 199000,
        "percent": 0.5,
        "warning": False,
    }
    budget = {
        "budget": "50.00000000",
        "window": "monthly",
        "window_start": "2026-05-01T00:00:00Z",
        "spent": "12.50000000",
        "remaining": "37.50000000",
        "percent": 25.0,
        "warning": False,
    }
    no_budget = (
        {"budget": None, "window": "monthly"}
        | dict.fromkeys(("window_start", "spent", "remaining", "percent"))
        | {"warning": False}
    )
    key = {
        "id": 7,
        "name": "rag-service",
        "prefix": "rgl_4f2a",
        "quota": _QUOTA | {"window": "monthly"},
        "budget": no_budget,
    }
    quota = {
        "warn_at_percent": 80,
        "tenant": _QUOTA | {"unlimited": False},
        "budget": budget,
        "models": [model],
        "keys": [key],
    }
    no_tenant_quota = {
        "warn_at_percent": 80,
        "tenant": _NO_QUOTA | {"unlimited": False},
        "budget": no_budget,
        "models": [],
        "keys": [],
    }
    return operation(
        "usage_quota",
        "The tenant's token quota and budget, its models' quotas and its keys' quotas and "
        "budgets, in their current windows",
        description="`used` (tokens) and `spent` (US dollars) are the counters of the current "
        "window (settled plus reserved), the numbers calls are checked against; `warning` is "
        "set from 80 % on. An unlimited tenant bypasses every quota and budget and never warns.",
        responses={
            200: answer(
                "QuotaAnswer",
                data,
                envelope_example("Quota", quota),
                envelope_example("No tenant quota", no_tenant_quota),
            ),
            **ERRORS,
        },
    )
