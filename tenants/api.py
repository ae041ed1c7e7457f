"""The /api/v1/llm/ and /api/v1/tenant/ routes, keeping RAGFlow's request and response shapes.

One view per operation: it parses its InputSerializer, calls one service or selector, and
builds the answer with its OutputSerializer inside the envelope. Domain errors become
responses in ragllm.api.exception_handler; the OpenAPI material is in tenants.schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from providers.factories import CREDENTIAL_SHAPES, strip_name_suffix
from providers.models import LLMFactory
from providers.types import ModelType, normalize_model_type
from ragllm.api import IsoDateTimeField, TenantAPIView, ok, parse
from ragllm.errors import InvalidInput, NotFound

from . import schema
from .models import KeyValidation
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

# RAGFlow's add_llm takes these factories' credentials without a model and saves them as
# set_api_key does, for every catalog model (its Tencent Hunyuan and Tencent Cloud forms).
KEY_ONLY_FACTORIES = frozenset({"Tencent Hunyuan", "Tencent Cloud"})

# The request fields that carry parts of a credential (hunyuan_sid, yiyan_ak...).
CREDENTIAL_FIELDS = frozenset(
    name for shape in CREDENTIAL_SHAPES.values() for name in shape.fields
) - {"api_key"}


class UnknownFactory(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"Factory {name} is not in the catalog.")
        self.factory = name


def _factory_or_404(name: str) -> LLMFactory:
    factory = factory_get(name=name)
    if factory is None:
        raise UnknownFactory(name)
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


class RAGFlowRouteView(TenantAPIView):
    """A tenant view that reads its input with `body()` and `query()`, decides with
    `waits_for_validation()` whether the caller waits for a key validation, and answers it with
    `validation_answer()`: the RAGFlow-compatible mount (tenants.ragflow) overrides these four
    and nothing else."""

    def body(self) -> Mapping[str, Any]:
        return self.request.data

    def query(self) -> Mapping[str, str]:
        return self.request.query_params

    def waits_for_validation(self, *, requested_async: bool) -> bool:
        """Whether this answer waits for the validation's verdict (then a validation no worker
        would take is refused at once, see key_validation_request)."""
        return not requested_async

    def validation_answer(self, validation: KeyValidation, *, wait: bool) -> Response:
        return _validation_response(validation, wait=wait)


@extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": True}]}
)
class CredentialField(serializers.Field):
    """api_key: a key, the JSON text of a credential object, or the object itself."""

    default_error_messages = {"invalid": "must be a string or an object of credential fields."}

    def to_internal_value(self, data: Any) -> str | dict[str, Any]:
        if isinstance(data, str):
            return data.strip()
        if isinstance(data, dict):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {"oneOf": [{"type": "string", "enum": ["1", "0"]}, {"type": "integer"}, {"type": "boolean"}]}
)
class SwitchField(serializers.Field):
    """An on/off value as clients send it: 1/0, "1"/"0", true/false."""

    default_error_messages = {"invalid": 'must be "1" or "0"'}

    def to_internal_value(self, data: Any) -> bool:
        lowered = str(data).strip().lower()
        if lowered in {"1", "true"}:
            return True
        if lowered in {"0", "false"}:
            return False
        self.fail("invalid")

    def to_representation(self, value: Any) -> str:
        return "1" if value else "0"


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


class SetApiKeyInput(ValidationInput):
    llm_factory = serializers.CharField()
    api_key = CredentialField(required=False, allow_null=True)
    base_url = serializers.CharField(required=False, allow_blank=True, default="")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # Required as in RAGFlow, unless the credential comes as fields (hunyuan_sid...). With
        # a factory and a base URL, the service says what is missing: the key, or the key again
        # because the base URL changes (a stored key never follows a new base URL).
        given = getattr(self, "initial_data", None)
        given = given if isinstance(given, Mapping) else {}
        moving = bool(given.get("llm_factory") and given.get("base_url"))
        fields["api_key"].required = not (CREDENTIAL_FIELDS & set(given) or moving)
        return fields


def _request_key(view: RAGFlowRouteView) -> Response:
    body = view.body()
    data = parse(SetApiKeyInput, body)
    wait = view.waits_for_validation(requested_async=data["async"])
    validation = tenant_llm_request_key(
        tenant=view.tenant,
        factory=_factory_or_404(data["llm_factory"]),
        api_key=data.get("api_key"),
        fields=body,
        base_url=data["base_url"],
        verify=data["verify"],
        user=view.request.user,
        synchronous=wait,
    )
    return view.validation_answer(validation, wait=wait)


class SetApiKeyView(RAGFlowRouteView):
    @schema.set_api_key(request=SetApiKeyInput)
    def post(self, request):
        return _request_key(self)


class AddLLMView(RAGFlowRouteView):
    class InputSerializer(ValidationInput):
        llm_factory = serializers.CharField()
        llm_name = serializers.CharField()
        model_type = serializers.CharField()
        api_base = serializers.CharField(required=False, allow_blank=True, default="")
        base_url = serializers.CharField(required=False, allow_blank=True, default="")
        api_key = CredentialField(required=False, allow_null=True, default=None)
        max_tokens = serializers.IntegerField(required=False, min_value=1, allow_null=True)
        is_tools = serializers.BooleanField(required=False, allow_null=True, default=None)

    @schema.add_llm(request=InputSerializer)
    def post(self, request):
        body = self.body()
        if body.get("llm_factory") in KEY_ONLY_FACTORIES and not body.get("llm_name"):
            return _request_key(self)
        data = parse(self.InputSerializer, body)
        wait = self.waits_for_validation(requested_async=data["async"])
        validation = tenant_llm_request_model(
            tenant=self.tenant,
            factory=_factory_or_404(data["llm_factory"]),
            llm_name=data["llm_name"],
            model_type=_model_type(data["model_type"]),
            api_base=data["api_base"] or data["base_url"],
            api_key=data["api_key"],
            fields=body,
            max_tokens=data.get("max_tokens"),
            is_tools=data["is_tools"],
            verify=data["verify"],
            user=request.user,
            synchronous=wait,
        )
        return self.validation_answer(validation, wait=wait)


class ModelRefInput(serializers.Serializer):
    llm_factory = serializers.CharField()
    llm_name = serializers.CharField()


class DeleteLLMView(RAGFlowRouteView):
    class InputSerializer(ModelRefInput):
        pass

    @schema.delete_llm(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, self.body())
        factory = _factory_or_404(data["llm_factory"])
        tenant_llm_delete(
            tenant=self.tenant, factory=factory, llm_name=strip_name_suffix(data["llm_name"])
        )
        return ok(True)


class EnableLLMView(RAGFlowRouteView):
    class InputSerializer(ModelRefInput):
        status = SwitchField(
            required=False,
            default=True,
            help_text='"1" (default) to enable, "0" to disable; 1/0 and true/false accepted.',
        )

    @schema.enable_llm(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, self.body())
        factory = _factory_or_404(data["llm_factory"])
        tenant_llm_set_status(
            tenant=self.tenant,
            factory=factory,
            llm_name=strip_name_suffix(data["llm_name"]),
            enabled=data["status"],
        )
        return ok(True)


class DeleteFactoryView(RAGFlowRouteView):
    class InputSerializer(serializers.Serializer):
        llm_factory = serializers.CharField()

    @schema.delete_factory(request=InputSerializer)
    def post(self, request):
        data = parse(self.InputSerializer, self.body())
        tenant_factory_delete(tenant=self.tenant, factory=_factory_or_404(data["llm_factory"]))
        return ok(True)


class MyLLMsView(RAGFlowRouteView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        type = serializers.CharField(source="model_type")
        name = serializers.CharField(source="llm_name")
        used_token = serializers.IntegerField(source="used_tokens")
        status = serializers.CharField()

    class DetailedOutputSerializer(OutputSerializer):
        api_base = serializers.CharField()
        max_tokens = serializers.IntegerField()
        is_tools = serializers.BooleanField(source="tools")
        validation_status = serializers.CharField()
        validated_at = IsoDateTimeField()
        last_error = serializers.CharField()

    @schema.my_llms()
    def get(self, request):
        # {"OpenAI": {"tags": "LLM,...", "llm": [...]}, ...}
        details = _is_true(self.query().get("include_details", ""))
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


class ListView(RAGFlowRouteView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(allow_null=True)
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
        model_type = self.query().get("model_type") or None
        if model_type:
            model_type = _model_type(model_type)
        catalog = tenant_catalog(tenant=self.tenant, model_type=model_type)
        return ok(
            {
                factory: self.OutputSerializer(models, many=True).data
                for factory, models in catalog.items()
            }
        )


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
