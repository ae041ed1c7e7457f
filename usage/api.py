"""GET /api/v1/usage and GET /api/v1/usage/quota: a tenant's own usage, read-only.

Both are tenant-scoped like the /llm/ routes (X-Tenant-ID or the caller's own tenant; any
member but an invited one may read). Sums come from the daily and hourly rollups, which the
ledger writes with the events: they equal the events and are never stale. The OpenAPI
material is in usage.schema.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation

from ragllm.api import TenantAPIView, ok, parse
from ragllm.schema import named

from . import schema
from .quotas import WARN_AT
from .reporting import GROUP_BYS, iso, money, parse_period, write_csv
from .selectors.quotas import quota_status
from .selectors.sums import UsageSummary, usage_summary


class _IgnoreFormatParam(DefaultContentNegotiation):
    """`?format=csv` picks our CSV answer, not a DRF renderer; errors stay JSON envelopes."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema_field(OpenApiTypes.DATETIME)
class UtcField(serializers.Field):
    """A datetime as "2026-05-01T00:00:00Z"."""

    def to_representation(self, value) -> str:
        return iso(value)


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.21600000"})
class MoneyField(serializers.Field):
    """A cost with the ledger's 8 decimals, as a string."""

    def to_representation(self, value) -> str:
        return money(value)


@extend_schema_serializer(component_name="UsageSums")
class RowOutputSerializer(serializers.Serializer):
    """One group's sums; with context["key"] (the group_by), the group's key comes first."""

    calls = serializers.IntegerField()
    errors = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = MoneyField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        key = self.context.get("key")
        return {key: serializers.CharField(source="key"), **fields} if key else fields


class QuotaEntryOutputSerializer(serializers.Serializer):
    """A quota in its current window; without a quota, only `window` and `warning` are set."""

    quota = serializers.IntegerField(allow_null=True)
    window = serializers.CharField()
    window_start = UtcField(allow_null=True)
    used = serializers.IntegerField(allow_null=True)
    remaining = serializers.IntegerField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    warning = serializers.BooleanField()


class BudgetEntryOutputSerializer(serializers.Serializer):
    """A money budget in its current window (US dollars as decimal strings, 8 places);
    without a budget, only `window` and `warning` are set."""

    budget = MoneyField(allow_null=True)
    window = serializers.CharField()
    window_start = UtcField(allow_null=True)
    spent = MoneyField(allow_null=True)
    remaining = MoneyField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    warning = serializers.BooleanField()


class KeyQuotaOutputSerializer(serializers.Serializer):
    """An application key with its own token quota and budget."""

    id = serializers.IntegerField(source="token_id")
    name = serializers.CharField()
    prefix = serializers.CharField()
    quota = QuotaEntryOutputSerializer()
    budget = BudgetEntryOutputSerializer()


def _csv_response(summary: UsageSummary) -> HttpResponse:
    last_day = (summary.end - timedelta(microseconds=1)).date()
    name = f"usage-by-{summary.group_by}-{summary.start:%Y-%m-%d}-to-{last_day:%Y-%m-%d}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    write_csv(response, group_by=summary.group_by, rows=summary.rows)
    return response


class UsageView(TenantAPIView):
    content_negotiation_class = _IgnoreFormatParam

    class InputSerializer(serializers.Serializer):
        to = serializers.CharField(
            required=False,
            allow_blank=True,
            help_text="End: YYYY-MM-DD includes that whole UTC day; an ISO datetime on the hour "
            "is exclusive. Default: today (UTC).",
        )
        # An empty value (`?group_by=`) means the default, as for every optional parameter.
        group_by = serializers.ChoiceField(
            choices=GROUP_BYS,
            required=False,
            allow_blank=True,
            default="day",
            error_messages={"invalid_choice": f"{{input!r}} is not one of {', '.join(GROUP_BYS)}"},
            help_text='day: UTC date; model: "llm_name@factory"; factory; type: model type; '
            'token: the API token id that made the calls ("none": no token).',
        )
        token = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=2**31 - 1,
            help_text="Only the calls made with this API token (its id).",
        )
        format = serializers.ChoiceField(
            choices=("json", "csv"),
            required=False,
            allow_blank=True,
            default="json",
            error_messages={"invalid_choice": "{input!r} is not one of json, csv"},
            help_text="csv: a text/csv attachment with a header row, without the envelope.",
        )

        def get_fields(self) -> dict[str, serializers.Field]:
            # `from` is a Python keyword: the field is added under its wire name here.
            start = serializers.CharField(
                required=False,
                allow_blank=True,
                help_text="Start (inclusive): YYYY-MM-DD (midnight UTC) or an ISO datetime on the "
                "hour. Default: 30 days before `to`.",
            )
            return {"from": start, **super().get_fields()}

        def validate_group_by(self, value: str) -> str:
            return value or "day"

        def validate_format(self, value: str) -> str:
            return value or "json"

        def validate(self, attrs: dict) -> dict:
            try:
                attrs["period"] = parse_period(attrs.get("from"), attrs.get("to"))
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from exc
            return attrs

    class OutputSerializer(serializers.Serializer):
        to = UtcField(source="end")
        group_by = serializers.CharField()
        rows = serializers.SerializerMethodField()
        totals = RowOutputSerializer()

        def get_fields(self) -> dict[str, serializers.Field]:
            return {"from": UtcField(source="start"), **super().get_fields()}

        @extend_schema_field(
            inline_serializer(
                "UsageGroup",
                fields={
                    **{
                        key: serializers.CharField(
                            required=False, help_text=f"The group, with group_by={key}."
                        )
                        for key in GROUP_BYS
                    },
                    **RowOutputSerializer().get_fields(),
                },
                many=True,
            )
        )
        def get_rows(self, summary: UsageSummary) -> list:
            context = {"key": summary.group_by}
            return RowOutputSerializer(summary.rows, many=True, context=context).data

    @schema.usage_list(query=InputSerializer, data=named(OutputSerializer, "Usage")())
    def get(self, request):
        query = parse(self.InputSerializer, request.query_params)
        period = query["period"]
        summary = usage_summary(
            tenant=self.tenant,
            start=period.start,
            end=period.end,
            group_by=query["group_by"],
            token=query.get("token"),
        )
        if query["format"] == "csv":
            return _csv_response(summary)
        return ok(self.OutputSerializer(summary).data)


class ModelQuotaOutputSerializer(serializers.Serializer):
    """A model's config, then its quota's fields (QuotaEntryOutputSerializer) beside them."""

    id = serializers.IntegerField(source="config_id")
    model = serializers.CharField()
    model_type = serializers.CharField()
    used_tokens = serializers.IntegerField()

    def to_representation(self, instance) -> dict:
        quota = QuotaEntryOutputSerializer(instance.quota).data
        return {**super().to_representation(instance), **quota}


class QuotaView(TenantAPIView):
    class OutputSerializer(serializers.Serializer):
        warn_at_percent = serializers.SerializerMethodField()
        tenant = serializers.SerializerMethodField()
        budget = BudgetEntryOutputSerializer(help_text="The tenant's money budget.")
        models = serializers.SerializerMethodField()
        keys = KeyQuotaOutputSerializer(
            many=True, help_text="Live application keys with a token quota or a budget."
        )

        def get_warn_at_percent(self, status) -> int:
            return round(WARN_AT * 100)

        @extend_schema_field(
            inline_serializer(
                "TenantQuota",
                fields={
                    **QuotaEntryOutputSerializer().get_fields(),
                    "unlimited": serializers.BooleanField(),
                },
            )
        )
        def get_tenant(self, status) -> dict:
            return {**QuotaEntryOutputSerializer(status.tenant).data, "unlimited": status.unlimited}

        @extend_schema_field(
            inline_serializer(
                "ModelQuota",
                fields={
                    **ModelQuotaOutputSerializer().get_fields(),
                    **QuotaEntryOutputSerializer().get_fields(),
                },
                many=True,
            )
        )
        def get_models(self, status) -> list:
            return ModelQuotaOutputSerializer(status.models, many=True).data

    @schema.usage_quota(data=named(OutputSerializer, "QuotaStatus")())
    def get(self, request):
        return ok(self.OutputSerializer(quota_status(tenant=self.tenant)).data)
