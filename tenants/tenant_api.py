"""The /api/v1/tenant/ routes: the tenant's name and default models, as RAGFlow's
tenant_info / set_tenant_info and as ragllm's own default_models.

Views parse, call one service and answer in the envelope, as in tenants.api.
"""

from __future__ import annotations

import uuid

from rest_framework import serializers

from ragllm.api import TenantAPIView, ok, parse
from ragllm.errors import NotFound
from ragllm.schema import named

from . import schema, token_schema
from .api import RAGFlowRouteView
from .inputs import StrictSerializer, budget_field, column_max_length, limit_field
from .models import QuotaWindow, Tenant
from .services.limits import MAX_SECRET, tenant_limits_set
from .services.tenants import tenant_default_models_set, tenant_settings_set
from .services.tokens import MAX_BIGINT, MAX_INT

# RAGFlow's document parsers, as its tenant_info lists them (ragllm parses no documents).
PARSER_IDS = (
    "naive:General,qa:Q&A,resume:Resume,manual:Manual,table:Table,paper:Paper,book:Book,"
    "laws:Laws,presentation:Presentation,picture:Picture,one:One,audio:Audio,email:Email,tag:Tag"
)


def _default_model_field(name: str, *, required: bool) -> serializers.CharField:
    # "" or null clears a default: RAGFlow's app sends "" for an emptied dropdown, its tests null.
    return serializers.CharField(
        required=required,
        allow_blank=True,
        allow_null=True,
        max_length=column_max_length(Tenant, name),
    )


class TenantInfoView(RAGFlowRouteView):
    class OutputSerializer(serializers.Serializer):
        tenant_id = serializers.CharField(source="tenant.pk")
        name = serializers.CharField(source="tenant.name")

        def get_fields(self) -> dict[str, serializers.Field]:
            fields = super().get_fields()
            for name in Tenant.DEFAULT_FIELDS.values():
                fields[name] = serializers.CharField(source=f"tenant.{name}")
            fields["parser_ids"] = serializers.CharField()
            fields["role"] = serializers.CharField()
            return fields

    @schema.tenant_info(data=named(OutputSerializer, "TenantInfo")())
    def get(self, request):
        info = {"tenant": self.tenant, "role": self.ctx.role, "parser_ids": PARSER_IDS}
        return ok(self.OutputSerializer(info).data)


class SetTenantInfoView(RAGFlowRouteView):
    class InputSerializer(serializers.Serializer):
        # RAGFlow's required arguments first, in its order.
        tenant_id = serializers.CharField(allow_blank=True, allow_null=True)
        asr_id = _default_model_field("asr_id", required=True)
        embd_id = _default_model_field("embd_id", required=True)
        img2txt_id = _default_model_field("img2txt_id", required=True)
        llm_id = _default_model_field("llm_id", required=True)
        rerank_id = _default_model_field("rerank_id", required=False)
        tts_id = _default_model_field("tts_id", required=False)
        ocr_id = _default_model_field("ocr_id", required=False)
        name = serializers.CharField(
            required=False,
            allow_blank=True,
            allow_null=True,
            max_length=column_max_length(Tenant, "name"),
        )

    @schema.set_tenant_info(request=InputSerializer, data=serializers.BooleanField())
    def post(self, request):
        data = parse(self.InputSerializer, self.body())
        if not _is_tenant(data["tenant_id"], self.tenant):
            raise NotFound("Tenant not found!")
        tenant_settings_set(
            tenant=self.tenant,
            name=data.get("name"),
            defaults={k: data[k] for k in Tenant.DEFAULT_FIELDS.values() if k in data},
        )
        return ok(True)


def _is_tenant(tenant_id: str | None, tenant: Tenant) -> bool:
    """Whether `tenant_id` names the tenant the request acts for (blank: it does)."""
    if not tenant_id:
        return True
    try:
        return uuid.UUID(tenant_id.strip()) == tenant.pk
    except ValueError:
        return False


class DefaultModelsView(TenantAPIView):
    class InputSerializer(serializers.Serializer):
        def get_fields(self) -> dict[str, serializers.Field]:
            return {
                name: serializers.CharField(
                    required=False, allow_blank=True, max_length=column_max_length(Tenant, name)
                )
                for name in Tenant.DEFAULT_FIELDS.values()
            }

        def validate(self, attrs):
            unknown = set(self.initial_data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
            return attrs

    class OutputSerializer(serializers.Serializer):
        def get_fields(self) -> dict[str, serializers.Field]:
            return {name: serializers.CharField() for name in Tenant.DEFAULT_FIELDS.values()}

    @schema.default_models(data=named(OutputSerializer, "DefaultModels")())
    def get(self, request):
        return ok(self.OutputSerializer(self.tenant).data)

    @schema.default_models_update(
        request=InputSerializer, data=named(OutputSerializer, "DefaultModels")()
    )
    def put(self, request):
        data = parse(self.InputSerializer, request.data)
        tenant = tenant_default_models_set(tenant=self.tenant, values=dict(data))
        return ok(self.OutputSerializer(tenant).data)


class TenantLimitsView(TenantAPIView):
    """The tenant's token quota, budget, RPM/TPM and alert webhook (owners and admins write)."""

    class InputSerializer(StrictSerializer):
        token_quota = limit_field(
            MAX_BIGINT, "Tokens per quota window for all models together; null: none."
        )
        quota_window = serializers.ChoiceField(choices=QuotaWindow.values, required=False)
        budget = budget_field()
        rpm = limit_field(MAX_INT, "Requests per minute, all the tenant's calls; null: no limit.")
        tpm = limit_field(MAX_INT, "Tokens per minute, all the tenant's calls; null: no limit.")
        alert_webhook_url = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=column_max_length(Tenant, "alert_webhook_url"),
            help_text="Where quota and budget alerts are POSTed; empty: none.",
        )
        alert_webhook_secret = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=MAX_SECRET,
            trim_whitespace=True,
            help_text="Signs the alerts (HMAC-SHA256); write-only; empty: clears it.",
        )

    class OutputSerializer(serializers.Serializer):
        token_quota = serializers.IntegerField(allow_null=True)
        quota_window = serializers.CharField()
        budget = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
        rpm = serializers.IntegerField(allow_null=True)
        tpm = serializers.IntegerField(allow_null=True)
        unlimited = serializers.BooleanField(help_text="Set by the operator (admin) only.")
        alert_webhook_url = serializers.CharField()
        alert_webhook_secret_set = serializers.SerializerMethodField()

        def get_alert_webhook_secret_set(self, tenant: Tenant) -> bool:
            return bool(tenant.alert_webhook_secret)

    @token_schema.limits_get(data=named(OutputSerializer, "TenantLimits")())
    def get(self, request):
        return ok(self.OutputSerializer(self.tenant).data)

    @token_schema.limits_update(
        request=named(InputSerializer, "TenantLimitsInput"),
        data=named(OutputSerializer, "TenantLimits")(),
    )
    def patch(self, request):
        data = parse(self.InputSerializer, request.data)
        tenant = tenant_limits_set(tenant=self.tenant, **data)
        return ok(self.OutputSerializer(tenant).data)
