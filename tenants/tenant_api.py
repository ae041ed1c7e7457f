"""The /api/v1/tenant/ routes: the tenant's name and default models, as RAGFlow's
tenant_info / set_tenant_info and as ragllm's own default_models.

Views parse, call one service and answer in the envelope, as in tenants.api.
"""

from __future__ import annotations

import uuid

from rest_framework import serializers

from ragllm.api import TenantAPIView, ok, parse
from ragllm.errors import NotFound

from . import schema
from .api import RAGFlowRouteView
from .models import Tenant
from .services.tenants import tenant_default_models_set, tenant_settings_set

# RAGFlow's document parsers, as its tenant_info lists them (ragllm parses no documents).
PARSER_IDS = (
    "naive:General,qa:Q&A,resume:Resume,manual:Manual,table:Table,paper:Paper,book:Book,"
    "laws:Laws,presentation:Presentation,picture:Picture,one:One,audio:Audio,email:Email,tag:Tag"
)


def _default_model_field(*, required: bool) -> serializers.CharField:
    # "" or null clears a default: RAGFlow's app sends "" for an emptied dropdown, its tests null.
    return serializers.CharField(required=required, allow_blank=True, allow_null=True)


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

    @schema.tenant_info()
    def get(self, request):
        info = {"tenant": self.tenant, "role": self.ctx.role, "parser_ids": PARSER_IDS}
        return ok(self.OutputSerializer(info).data)


class SetTenantInfoView(RAGFlowRouteView):
    class InputSerializer(serializers.Serializer):
        # RAGFlow's required arguments first, in its order.
        tenant_id = serializers.CharField(allow_blank=True, allow_null=True)
        asr_id = _default_model_field(required=True)
        embd_id = _default_model_field(required=True)
        img2txt_id = _default_model_field(required=True)
        llm_id = _default_model_field(required=True)
        rerank_id = _default_model_field(required=False)
        tts_id = _default_model_field(required=False)
        ocr_id = _default_model_field(required=False)
        name = serializers.CharField(
            required=False, allow_blank=True, allow_null=True, max_length=128
        )

    @schema.set_tenant_info(request=InputSerializer)
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
                name: serializers.CharField(required=False, allow_blank=True)
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

    @schema.default_models()
    def get(self, request):
        return ok(self.OutputSerializer(self.tenant).data)

    @schema.default_models_update(request=InputSerializer)
    def put(self, request):
        data = parse(self.InputSerializer, request.data)
        tenant = tenant_default_models_set(tenant=self.tenant, values=dict(data))
        return ok(self.OutputSerializer(tenant).data)
