"""GET /api/v1/usage and GET /api/v1/usage/quota: a tenant's own usage, read-only.

Both are tenant-scoped like the /llm/ routes (X-Tenant-ID or the caller's own tenant; any
member but an invited one may read). Sums come from the hourly rollups, so they equal the
events and are never stale.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation

from ragllm.api import TenantAPIView, ok
from tenants.api import ERRORS, TENANT_PARAM, envelope_example

from .quotas import WARN_AT
from .reporting import GROUP_BYS, iso, money, parse_period, write_csv
from .selectors.quotas import QuotaEntry, QuotaStatus, quota_status
from .selectors.sums import UsageRow, UsageSummary, usage_summary

# --- Input ----------------------------------------------------------------------------------


class UsageQueryInput(serializers.Serializer):
    # `from` is a Python keyword: declared below under its wire name.
    to = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="End: YYYY-MM-DD includes that whole UTC day; an ISO datetime on the hour is "
        "exclusive. Default: today (UTC).",
    )
    group_by = serializers.ChoiceField(
        choices=GROUP_BYS,
        required=False,
        default="day",
        error_messages={"invalid_choice": f"{{input!r}} is not one of {', '.join(GROUP_BYS)}"},
        help_text='day: UTC date; model: "llm_name@factory"; factory; type: model type.',
    )
    format = serializers.ChoiceField(
        choices=("json", "csv"),
        required=False,
        default="json",
        error_messages={"invalid_choice": "{input!r} is not one of json, csv"},
        help_text="csv: a text/csv attachment with a header row, without the envelope.",
    )

    def validate(self, attrs: dict) -> dict:
        try:
            attrs["period"] = parse_period(attrs.get("from"), attrs.get("to"))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return attrs


UsageQueryInput._declared_fields = {
    "from": serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Start (inclusive): YYYY-MM-DD (midnight UTC) or an ISO datetime on the hour. "
        "Default: 30 days before `to`.",
    ),
    **UsageQueryInput._declared_fields,
}


class _IgnoreFormatParam(DefaultContentNegotiation):
    """`?format=csv` picks our CSV answer, not a DRF renderer; errors stay JSON envelopes."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# --- Output ---------------------------------------------------------------------------------


def _row_json(row: UsageRow, key_name: str | None) -> dict:
    data = {key_name: row.key} if key_name else {}
    return data | {
        "calls": row.calls,
        "errors": row.errors,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "cost": money(row.cost),
    }


def _summary_json(summary: UsageSummary) -> dict:
    return {
        "from": iso(summary.start),
        "to": iso(summary.end),
        "group_by": summary.group_by,
        "rows": [_row_json(row, summary.group_by) for row in summary.rows],
        "totals": _row_json(summary.totals, None),
    }


def _quota_json(entry: QuotaEntry) -> dict:
    return {
        "quota": entry.quota,
        "window": entry.window,
        "window_start": iso(entry.window_start) if entry.window_start else None,
        "used": entry.used,
        "remaining": entry.remaining,
        "percent": entry.percent,
        "warning": entry.warning,
    }


def _status_json(status: QuotaStatus) -> dict:
    return {
        "warn_at_percent": round(WARN_AT * 100),
        "tenant": _quota_json(status.tenant) | {"unlimited": status.unlimited},
        "models": [
            {
                "id": item.config_id,
                "model": item.model,
                "model_type": item.model_type,
                "used_tokens": item.used_tokens,
            }
            | _quota_json(item.quota)
            for item in status.models
        ],
    }


def _csv_response(summary: UsageSummary) -> HttpResponse:
    last_day = (summary.end - timedelta(microseconds=1)).date()
    name = f"usage-by-{summary.group_by}-{summary.start:%Y-%m-%d}-to-{last_day:%Y-%m-%d}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    write_csv(response, group_by=summary.group_by, rows=summary.rows)
    return response


# --- Views ----------------------------------------------------------------------------------

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


class UsageView(TenantAPIView):
    content_negotiation_class = _IgnoreFormatParam

    @extend_schema(
        operation_id="usage_list",
        summary="The tenant's token usage and cost over a period, grouped by day, model, "
        "factory or type",
        description="Sums of the tenant's usage events over `[from, to)` in UTC, exact and up "
        "to date. Days are UTC dates; `cost` is a decimal string (8 places).",
        parameters=[TENANT_PARAM, UsageQueryInput],
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
    def get(self, request):
        serializer = UsageQueryInput(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        query = serializer.validated_data
        period = query["period"]
        summary = usage_summary(
            tenant=self.tenant, start=period.start, end=period.end, group_by=query["group_by"]
        )
        if query["format"] == "csv":
            return _csv_response(summary)
        return ok(_summary_json(summary))


class QuotaView(TenantAPIView):
    @extend_schema(
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
    def get(self, request):
        return ok(_status_json(quota_status(tenant=self.tenant)))
