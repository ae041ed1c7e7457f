"""The /api/v1/llm/ and /api/v1/tenant/ routes, keeping RAGFlow's request and response shapes.

One view per operation: it parses its InputSerializer, calls one service or selector, and
builds the answer with its OutputSerializer inside the envelope. Domain errors become
responses in ragllm.api.exception_handler; the OpenAPI material is in tenants.schema.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from providers.factories import strip_name_suffix
from providers.models import LLMFactory
from providers.types import ModelType, normalize_model_type
from ragllm.api import IsoDateTimeField, TenantAPIView, ok, parse
from ragllm.errors import InvalidInput, NotFound

from . import schema
from .models import KeyValidation, Tenant
from .selectors import (
    factories_with_types,
    factory_get,
    key_validation_for,
    key_validation_wait,
    tenant_catalog,
    tenant_llm_by_factory,
)
from .services.configs import tenant_factory_delete, tenant_llm_delete, tenant_llm_set_status
from .services.key_requests import tenant_llm_request_key, tenant_llm_request_model
from .services.key_validation import key_validation_error, key_validation_expire_overdue
from .services.tenants import tenant_default_models_set


def _factory_or_404(name: str) -> LLMFactory:
    factory = factory_get(name=name)
    if factory is None:
        raise NotFound(f"Factory {name} is not in the catalog.")
    return factory


def _model_type(value: str) -> str:
    try:
        return normalize_model_type(value).value
    except ValueError as exc:
        raise InvalidInput(
            f"model_type {value!r} is not one of {', '.join(ModelType.values)}."
        ) from exc


def _is_true(value: str) -> bool:
    return value.lower() in {"1", "true", "yes"}


# --- Key validation answers (set_api_key, add_llm) -----------------------------------------------


# Input of the routes that validate credentials; `verify` and `async` come last.
class ValidationInput(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        # `async` is a Python keyword: the field is added under its wire name here.
        return {
            **super().get_fields(),
            "verify": serializers.BooleanField(required=False, default=False),
            "async": serializers.BooleanField(required=False, default=False),
        }


class ValidationAcceptedOutput(serializers.Serializer):
    task_id = serializers.CharField(source="pk")
    status = serializers.CharField(source="state")


class ValidationVerifiedOutput(serializers.Serializer):
    message = serializers.CharField()
    success = serializers.BooleanField(source="succeeded")


class ValidationFailedOutput(serializers.Serializer):
    task_id = serializers.CharField(source="pk")
    attempts = serializers.JSONField()


def _validation_response(validation: KeyValidation, *, wait: bool):
    """RAGFlow's answers once the task is done; 202 with a task id while it is not."""
    if wait:
        validation = key_validation_wait(
            validation=validation, timeout=float(settings.LLM_TIMEOUT_SECONDS)
        )
    if not validation.finished:
        return ok(
            ValidationAcceptedOutput(validation).data,
            message="validation is running; poll GET /api/v1/llm/tasks/<task_id>",
            http_status=202,
        )
    if validation.verify_only:
        return ok(ValidationVerifiedOutput(validation).data)
    if validation.succeeded:
        return ok(True)
    raise key_validation_error(validation=validation, data=ValidationFailedOutput(validation).data)


# --- Views --------------------------------------------------------------------------------------


class FactoriesView(TenantAPIView):
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField(source="factory.name")
        logo = serializers.CharField(source="factory.logo")
        tags = serializers.CharField(source="factory.tags")
        status = serializers.CharField(source="factory.status")
        rank = serializers.IntegerField(source="factory.rank")
        url = serializers.CharField(source="factory.url")
        model_types = serializers.ListField(child=serializers.CharField())

    @schema.factories()
    def get(self, request):
        return ok(self.OutputSerializer(factories_with_types(), many=True).data)


class SetApiKeyView(TenantAPIView):
    class InputSerializer(ValidationInput):
        llm_factory = serializers.CharField()
        api_key = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True)
        base_url = serializers.CharField(required=False, allow_blank=True, default="")

    @schema.set_api_key(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, request.data)
        validation = tenant_llm_request_key(
            tenant=self.tenant,
            factory=_factory_or_404(data["llm_factory"]),
            api_key=data.get("api_key"),
            fields=request.data,
            base_url=data["base_url"],
            verify=data["verify"],
            user=request.user,
            synchronous=not data["async"],
        )
        return _validation_response(validation, wait=not data["async"])


class AddLLMView(TenantAPIView):
    class InputSerializer(ValidationInput):
        llm_factory = serializers.CharField()
        llm_name = serializers.CharField()
        model_type = serializers.CharField()
        api_base = serializers.CharField(required=False, allow_blank=True, default="")
        base_url = serializers.CharField(required=False, allow_blank=True, default="")
        api_key = serializers.CharField(required=False, allow_blank=True, default="")
        max_tokens = serializers.IntegerField(required=False, min_value=1, allow_null=True)

    @schema.add_llm(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, request.data)
        validation = tenant_llm_request_model(
            tenant=self.tenant,
            factory=_factory_or_404(data["llm_factory"]),
            llm_name=data["llm_name"],
            model_type=_model_type(data["model_type"]),
            api_base=data["api_base"] or data["base_url"],
            api_key=data.get("api_key"),
            fields=request.data,
            max_tokens=data.get("max_tokens"),
            verify=data["verify"],
            user=request.user,
            synchronous=not data["async"],
        )
        return _validation_response(validation, wait=not data["async"])


class ModelRefInput(serializers.Serializer):
    llm_factory = serializers.CharField()
    llm_name = serializers.CharField()


class DeleteLLMView(TenantAPIView):
    class InputSerializer(ModelRefInput):
        pass

    @schema.delete_llm(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, request.data)
        factory = _factory_or_404(data["llm_factory"])
        tenant_llm_delete(
            tenant=self.tenant, factory=factory, llm_name=strip_name_suffix(data["llm_name"])
        )
        return ok(True)


class EnableLLMView(TenantAPIView):
    class InputSerializer(ModelRefInput):
        status = serializers.CharField(
            help_text='"1" to enable, "0" to disable (true/false accepted).'
        )

        def validate_status(self, value: str) -> bool:
            lowered = str(value).strip().lower()
            if lowered in {"1", "true"}:
                return True
            if lowered in {"0", "false"}:
                return False
            raise serializers.ValidationError('must be "1" or "0"')

    @schema.enable_llm(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, request.data)
        factory = _factory_or_404(data["llm_factory"])
        tenant_llm_set_status(
            tenant=self.tenant,
            factory=factory,
            llm_name=strip_name_suffix(data["llm_name"]),
            enabled=data["status"],
        )
        return ok(True)


class DeleteFactoryView(TenantAPIView):
    class InputSerializer(serializers.Serializer):
        llm_factory = serializers.CharField()

    @schema.delete_factory(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, request.data)
        tenant_factory_delete(tenant=self.tenant, factory=_factory_or_404(data["llm_factory"]))
        return ok(True)


class MyLLMsView(TenantAPIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        type = serializers.CharField(source="model_type")
        name = serializers.CharField(source="llm_name")
        used_token = serializers.IntegerField(source="used_tokens")
        status = serializers.CharField()

    class DetailedOutputSerializer(OutputSerializer):
        api_base = serializers.CharField()
        max_tokens = serializers.IntegerField()
        is_tools = serializers.BooleanField()
        validation_status = serializers.CharField()
        validated_at = IsoDateTimeField()
        last_error = serializers.CharField()

    @schema.my_llms()
    def get(self, request):
        # {"OpenAI": {"tags": "LLM,...", "llm": [...]}, ...}
        details = _is_true(request.query_params.get("include_details", ""))
        output = self.DetailedOutputSerializer if details else self.OutputSerializer
        groups = tenant_llm_by_factory(tenant=self.tenant, with_tools=details)
        return ok(
            {
                group.factory.name: {
                    "tags": group.factory.tags,
                    "llm": output(group.configs, many=True).data,
                }
                for group in groups
            }
        )


class ListView(TenantAPIView):
    class OutputSerializer(serializers.Serializer):
        llm_name = serializers.CharField()
        model_type = serializers.SerializerMethodField()
        model_types = serializers.ListField(child=serializers.CharField())
        max_tokens = serializers.IntegerField()
        tags = serializers.CharField()
        is_tools = serializers.BooleanField()
        status = serializers.CharField()
        fid = serializers.CharField(source="factory")
        available = serializers.BooleanField()

        def get_model_type(self, model) -> str:
            return (model.model_types or [""])[0]

    @schema.llm_list()
    def get(self, request):
        model_type = request.query_params.get("model_type") or None
        if model_type:
            model_type = _model_type(model_type)
        catalog = tenant_catalog(tenant=self.tenant, model_type=model_type)
        return ok(
            {
                factory: self.OutputSerializer(models, many=True).data
                for factory, models in catalog.items()
            }
        )


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


class TaskView(TenantAPIView):
    class OutputSerializer(serializers.Serializer):
        task_id = serializers.CharField(source="pk")
        kind = serializers.CharField()
        factory = serializers.CharField(source="factory.name")
        llm_name = serializers.CharField()
        verify = serializers.BooleanField(source="verify_only")
        status = serializers.CharField(source="state")
        success = serializers.SerializerMethodField()
        message = serializers.CharField()
        attempts = serializers.JSONField()
        created_at = IsoDateTimeField()
        finished_at = IsoDateTimeField()

        def get_success(self, validation: KeyValidation) -> bool | None:
            return validation.succeeded if validation.finished else None

    @schema.task()
    def get(self, request, task_id):
        validation = key_validation_for(tenant=self.tenant, validation_id=task_id)
        if validation is None:
            raise NotFound("No such task in this tenant.")
        # Past its deadline, a validation is shown as what it is (expired), not as running.
        if not validation.finished and key_validation_expire_overdue(
            validation_ids=[validation.pk]
        ):
            validation = key_validation_for(tenant=self.tenant, validation_id=task_id)
        return ok(self.OutputSerializer(validation).data)
