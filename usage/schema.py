"""OpenAPI material of GET /api/v1/usage and GET /api/v1/usage/quota: examples and errors."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema

from ragllm.schema import ERRORS, TENANT_PARAM, envelope_example

_ROW_EXAMPLE = {
    "calls": 42,
    "errors": 1,
    "prompt_tokens": 51200,
    "completion_tokens": 8800,
    "total_tokens": 60000,
    "cost": "0.21600000",
}
_QUOTA_EXAMPLE = {
    "quota": 1000000,
    "window": "monthly",
    "window_start": "2026-05-01T00:00:00Z",
    "used": 850000,
    "remaining": 150000,
    "percent": 85.0,
    "warning": True,
}


def usage_list(query):
    return extend_schema(
        operation_id="usage_list",
        summary="The tenant's token usage and cost over a period, grouped by day, model, "
        "factory or type",
        description="Sums of the tenant's usage events over `[from, to)` in UTC, exact and up "
        "to date. Days are UTC dates; `cost` is a decimal string (8 places).",
        parameters=[TENANT_PARAM, query],
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "By day",
                        {
                            "from": "2026-05-01T00:00:00Z",
                            "to": "2026-05-31T00:00:00Z",
                            "group_by": "day",
                            "rows": [{"day": "2026-05-01"} | _ROW_EXAMPLE],
                            "totals": _ROW_EXAMPLE,
                        },
                    ),
                    envelope_example(
                        "By model",
                        {
                            "from": "2026-05-01T00:00:00Z",
                            "to": "2026-05-31T00:00:00Z",
                            "group_by": "model",
                            "rows": [{"model": "gpt-4o@OpenAI"} | _ROW_EXAMPLE],
                            "totals": _ROW_EXAMPLE,
                        },
                    ),
                ],
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="With format=csv: an attachment, one header row, one row a group.",
                examples=[
                    OpenApiExample(
                        "CSV by model",
                        value="model,calls,errors,prompt_tokens,completion_tokens,"
                        "total_tokens,cost\ngpt-4o@OpenAI,42,1,51200,8800,60000,0.21600000\n",
                        response_only=True,
                        media_type="text/csv",
                    )
                ],
            ),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="A bad from, to, group_by or format (code 102).",
                examples=[
                    envelope_example(
                        "Bad group_by",
                        None,
                        code=102,
                        message="group_by: 'week' is not one of day, model, factory, type",
                        status=400,
                    )
                ],
            ),
            **{code: response for code, response in ERRORS.items() if code != 400},
        },
    )


def usage_quota():
    return extend_schema(
        operation_id="usage_quota",
        summary="The tenant's token quota and its models' quotas in their current windows",
        description="`used` is the quota counter of the current window (settled plus reserved "
        "tokens), the number calls are checked against; `warning` is set from 80 % on. "
        "An unlimited tenant bypasses every quota and never warns.",
        parameters=[TENANT_PARAM],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Quota",
                        {
                            "warn_at_percent": 80,
                            "tenant": _QUOTA_EXAMPLE | {"unlimited": False},
                            "models": [
                                {
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
                            ],
                        },
                    ),
                    envelope_example(
                        "No tenant quota",
                        {
                            "warn_at_percent": 80,
                            "tenant": {
                                "quota": None,
                                "window": "monthly",
                                "window_start": None,
                                "used": None,
                                "remaining": None,
                                "percent": None,
                                "warning": False,
                                "unlimited": False,
                            },
                            "models": [],
                        },
                    ),
                ],
            ),
            **ERRORS,
        },
    )
