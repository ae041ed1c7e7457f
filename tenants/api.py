"""The /api/v1/llm/ and /api/v1/tenant/ routes, keeping RAGFlow's request and response shapes.

Views parse input, call one service or selector, and wrap the answer in the envelope; errors are
turned into responses by ragllm.api.exception_handler.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers

from providers.factories import strip_name_suffix
from providers.types import ModelType, normalize_model_type
from ragllm.api import TENANT_HEADER, TenantAPIView, ok
from ragllm.errors import InvalidInput, NotFound

from .models import KeyValidation, Tenant, ValidationState
from .selectors import (
    factories_with_types,
    factory_get,
    key_validation_for,
    key_validation_wait,
    tenant_catalog,
    tenant_my_llms,
)
from .services.configs import tenant_factory_delete, tenant_llm_delete, tenant_llm_set_status
from .services.key_validation import tenant_llm_request_key, tenant_llm_request_model
from .services.tenants import tenant_default_models_set
from .validation import validation_failure

TENANT_PARAM = OpenApiParameter(
    TENANT_HEADER,
    OpenApiTypes.UUID,
    OpenApiParameter.HEADER,
    required=False,
    description="The tenant to act for; default: the tenant the caller owns.",
)


def envelope_example(name: str, data, *, code: int = 0, message: str = "success", status=200):
    return OpenApiExample(
        name,
        value={"code": code, "message": message, "data": data},
        response_only=True,
        status_codes=[str(status)],
    )


ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Missing argument (code 101) or data error (code 102).",
        examples=[
            envelope_example(
                "Missing argument",
                None,
                code=101,
                message="required argument are missing: llm_factory; ",
                status=400,
            )
        ],
    ),
    401: OpenApiResponse(OpenApiTypes.OBJECT, description="No or invalid credentials (code 401)."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="Role may not do this (code 403)."),
    404: OpenApiResponse(OpenApiTypes.OBJECT, description="Not found in this tenant (code 102)."),
}


def _factory_or_404(name: str):
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


def _validation_response(validation: KeyValidation, *, wait: bool):
    """RAGFlow's answers once the task is done; 202 with a task id while it is not."""
    if wait:
        validation = key_validation_wait(
            validation=validation, timeout=float(settings.LLM_TIMEOUT_SECONDS)
        )
    if not validation.finished:
        return ok(
            {"task_id": str(validation.pk), "status": validation.state},
            message="validation is running; poll GET /api/v1/llm/tasks/<task_id>",
            http_status=202,
        )
    succeeded = validation.state == ValidationState.SUCCEEDED
    if validation.verify_only:
        return ok({"message": validation.message, "success": succeeded})
    if succeeded:
        return ok(True)
    raise validation_failure(
        message=validation.message,
        attempts=validation.attempts,
        data={"task_id": str(validation.pk), "attempts": validation.attempts},
    )


# --- Serializers --------------------------------------------------------------------------------


class SetApiKeyInput(serializers.Serializer):
    llm_factory = serializers.CharField()
    api_key = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True)
    base_url = serializers.CharField(required=False, allow_blank=True, default="")
    verify = serializers.BooleanField(required=False, default=False)
    # `async` is a Python keyword: declared below under its wire name.


SetApiKeyInput._declared_fields["async"] = serializers.BooleanField(required=False, default=False)


class AddLLMInput(serializers.Serializer):
    llm_factory = serializers.CharField()
    llm_name = serializers.CharField()
    model_type = serializers.CharField()
    api_base = serializers.CharField(required=False, allow_blank=True, default="")
    base_url = serializers.CharField(required=False, allow_blank=True, default="")
    api_key = serializers.CharField(required=False, allow_blank=True, default="")
    max_tokens = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    verify = serializers.BooleanField(required=False, default=False)


AddLLMInput._declared_fields["async"] = serializers.BooleanField(required=False, default=False)


class ModelRefInput(serializers.Serializer):
    llm_factory = serializers.CharField()
    llm_name = serializers.CharField()


class EnableInput(ModelRefInput):
    status = serializers.CharField(help_text='"1" to enable, "0" to disable (true/false accepted).')

    def validate_status(self, value: str) -> bool:
        lowered = str(value).strip().lower()
        if lowered in {"1", "true"}:
            return True
        if lowered in {"0", "false"}:
            return False
        raise serializers.ValidationError('must be "1" or "0"')


class FactoryInput(serializers.Serializer):
    llm_factory = serializers.CharField()


DEFAULT_FIELD_NAMES = list(Tenant.DEFAULT_FIELDS.values())


class DefaultModelsInput(serializers.Serializer):
    llm_id = serializers.CharField(required=False, allow_blank=True)
    embd_id = serializers.CharField(required=False, allow_blank=True)
    rerank_id = serializers.CharField(required=False, allow_blank=True)
    img2txt_id = serializers.CharField(required=False, allow_blank=True)
    asr_id = serializers.CharField(required=False, allow_blank=True)
    tts_id = serializers.CharField(required=False, allow_blank=True)
    ocr_id = serializers.CharField(required=False, allow_blank=True)

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
        return attrs


def _parse(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Views --------------------------------------------------------------------------------------


class FactoriesView(TenantAPIView):
    @extend_schema(
        operation_id="llm_factories",
        summary="List the LLM factories of the catalog",
        parameters=[TENANT_PARAM],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Factories",
                        [
                            {
                                "name": "OpenAI",
                                "logo": "",
                                "tags": "LLM,TEXT EMBEDDING,TTS,SPEECH2TEXT,IMAGE2TEXT",
                                "status": "1",
                                "rank": 999,
                                "url": "https://api.openai.com/v1",
                                "model_types": ["chat", "embedding", "image2text"],
                            }
                        ],
                    )
                ],
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        return ok(factories_with_types())


class SetApiKeyView(TenantAPIView):
    @extend_schema(
        operation_id="llm_set_api_key",
        summary="Validate a factory key by live calls, then save it for all its catalog models",
        parameters=[TENANT_PARAM],
        request=SetApiKeyInput,
        examples=[
            OpenApiExample(
                "OpenAI key",
                value={"llm_factory": "OpenAI", "api_key": "sk-...", "base_url": ""},
                request_only=True,
            ),
            OpenApiExample(
                "Verify only, asynchronously",
                value={
                    "llm_factory": "DeepSeek",
                    "api_key": "sk-...",
                    "verify": True,
                    "async": True,
                },
                request_only=True,
            ),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example("Saved", True),
                    envelope_example("Verified", {"message": "", "success": True}),
                ],
            ),
            202: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Accepted",
                        {"task_id": "5f0c...", "status": "pending"},
                        message="validation is running; poll GET /api/v1/llm/tasks/<task_id>",
                        status=202,
                    )
                ],
            ),
            **ERRORS,
            502: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The provider could not be reached or failed.",
                examples=[
                    envelope_example(
                        "Unreachable",
                        {"task_id": "5f0c...", "attempts": []},
                        code=102,
                        message="Fail to access chat model(deepseek-chat) using this api key: "
                        "the provider could not be reached (network problem). ...",
                        status=502,
                    )
                ],
            ),
        },
    )
    def post(self, request):
        data = _parse(SetApiKeyInput, request.data)
        validation = tenant_llm_request_key(
            tenant=self.tenant,
            factory=_factory_or_404(data["llm_factory"]),
            api_key=data.get("api_key"),
            fields=request.data,
            base_url=data["base_url"],
            verify=data["verify"],
            user=request.user,
        )
        return _validation_response(validation, wait=not data["async"])


class AddLLMView(TenantAPIView):
    @extend_schema(
        operation_id="llm_add_llm",
        summary="Add (or edit) one model configuration, tested by its type before it is saved",
        parameters=[TENANT_PARAM],
        request=AddLLMInput,
        examples=[
            OpenApiExample(
                "Self-hosted Ollama chat model",
                value={
                    "llm_factory": "Ollama",
                    "llm_name": "llama3.2",
                    "model_type": "chat",
                    "api_base": "http://127.0.0.1:11434",
                    "max_tokens": 8192,
                },
                request_only=True,
            ),
            OpenApiExample(
                "VolcEngine (JSON credentials from fields)",
                value={
                    "llm_factory": "VolcEngine",
                    "llm_name": "doubao-pro",
                    "model_type": "chat",
                    "ark_api_key": "...",
                    "endpoint_id": "ep-2024...",
                },
                request_only=True,
            ),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example("Saved", True),
                    envelope_example(
                        "Verified (failed)",
                        {"message": "Fail to access chat model(llama3.2) ...", "success": False},
                    ),
                ],
            ),
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="Validation accepted."),
            **ERRORS,
            502: OpenApiResponse(OpenApiTypes.OBJECT, description="Provider unreachable."),
        },
    )
    def post(self, request):
        data = _parse(AddLLMInput, request.data)
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
        )
        return _validation_response(validation, wait=not data["async"])


class DeleteLLMView(TenantAPIView):
    @extend_schema(
        operation_id="llm_delete_llm",
        summary="Delete one model configuration",
        parameters=[TENANT_PARAM],
        request=ModelRefInput,
        examples=[
            OpenApiExample(
                "One model",
                value={"llm_factory": "OpenAI", "llm_name": "gpt-4o"},
                request_only=True,
            )
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, examples=[envelope_example("Deleted", True)]),
            **ERRORS,
            409: OpenApiResponse(OpenApiTypes.OBJECT, description="It is a default model."),
        },
    )
    def post(self, request):
        data = _parse(ModelRefInput, request.data)
        factory = _factory_or_404(data["llm_factory"])
        tenant_llm_delete(
            tenant=self.tenant, factory=factory, llm_name=strip_name_suffix(data["llm_name"])
        )
        return ok(True)


class EnableLLMView(TenantAPIView):
    @extend_schema(
        operation_id="llm_enable_llm",
        summary="Enable or disable one model configuration",
        parameters=[TENANT_PARAM],
        request=EnableInput,
        examples=[
            OpenApiExample(
                "Disable",
                value={"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"},
                request_only=True,
            )
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, examples=[envelope_example("Done", True)]),
            **ERRORS,
        },
    )
    def post(self, request):
        data = _parse(EnableInput, request.data)
        factory = _factory_or_404(data["llm_factory"])
        tenant_llm_set_status(
            tenant=self.tenant,
            factory=factory,
            llm_name=strip_name_suffix(data["llm_name"]),
            enabled=data["status"],
        )
        return ok(True)


class DeleteFactoryView(TenantAPIView):
    @extend_schema(
        operation_id="llm_delete_factory",
        summary="Delete every model configuration of one factory",
        parameters=[TENANT_PARAM],
        request=FactoryInput,
        examples=[OpenApiExample("Factory", value={"llm_factory": "OpenAI"}, request_only=True)],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, examples=[envelope_example("Deleted", True)]),
            **ERRORS,
        },
    )
    def post(self, request):
        data = _parse(FactoryInput, request.data)
        tenant_factory_delete(tenant=self.tenant, factory=_factory_or_404(data["llm_factory"]))
        return ok(True)


class MyLLMsView(TenantAPIView):
    @extend_schema(
        operation_id="llm_my_llms",
        summary="The tenant's model configurations by factory (never their keys)",
        parameters=[
            TENANT_PARAM,
            OpenApiParameter("include_details", OpenApiTypes.BOOL, required=False),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Configs",
                        {
                            "OpenAI": {
                                "tags": "LLM,TEXT EMBEDDING",
                                "llm": [
                                    {
                                        "id": 12,
                                        "type": "chat",
                                        "name": "gpt-4o",
                                        "used_token": 1234,
                                        "status": "1",
                                    }
                                ],
                            }
                        },
                    )
                ],
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        details = request.query_params.get("include_details", "").lower() in {"1", "true", "yes"}
        return ok(tenant_my_llms(tenant=self.tenant, include_details=details))


class ListView(TenantAPIView):
    @extend_schema(
        operation_id="llm_list",
        summary="The catalog by factory, each model marked available to this tenant or not",
        parameters=[
            TENANT_PARAM,
            OpenApiParameter("model_type", OpenApiTypes.STR, required=False, enum=ModelType.values),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Catalog",
                        {
                            "OpenAI": [
                                {
                                    "llm_name": "gpt-4o",
                                    "model_type": "chat",
                                    "model_types": ["chat", "image2text"],
                                    "max_tokens": 128000,
                                    "tags": "LLM,CHAT,128K,IMAGE2TEXT",
                                    "is_tools": True,
                                    "status": "1",
                                    "fid": "OpenAI",
                                    "available": True,
                                }
                            ]
                        },
                    )
                ],
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        model_type = request.query_params.get("model_type") or None
        if model_type:
            model_type = _model_type(model_type)
        return ok(tenant_catalog(tenant=self.tenant, model_type=model_type))


class DefaultModelsView(TenantAPIView):
    @extend_schema(
        operation_id="tenant_default_models",
        summary="The tenant's default model per type",
        parameters=[TENANT_PARAM],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Defaults",
                        dict.fromkeys(DEFAULT_FIELD_NAMES, "") | {"llm_id": "gpt-4o@OpenAI"},
                    )
                ],
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        return ok({name: getattr(self.tenant, name) for name in DEFAULT_FIELD_NAMES})

    @extend_schema(
        operation_id="tenant_default_models_update",
        summary="Set default models; each must be an enabled model of the tenant, of that type",
        parameters=[TENANT_PARAM],
        request=DefaultModelsInput,
        examples=[
            OpenApiExample(
                "Chat and embedding",
                value={"llm_id": "gpt-4o@OpenAI", "embd_id": "text-embedding-3-small@OpenAI"},
                request_only=True,
            )
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Updated",
                        dict.fromkeys(DEFAULT_FIELD_NAMES, "")
                        | {"llm_id": "gpt-4o@OpenAI", "embd_id": "text-embedding-3-small@OpenAI"},
                    )
                ],
            ),
            **ERRORS,
        },
    )
    def put(self, request):
        data = _parse(DefaultModelsInput, request.data)
        tenant = tenant_default_models_set(tenant=self.tenant, values=dict(data))
        return ok({name: getattr(tenant, name) for name in DEFAULT_FIELD_NAMES})


class TaskView(TenantAPIView):
    @extend_schema(
        operation_id="llm_task",
        summary="The state of a key validation started with async: true",
        parameters=[TENANT_PARAM],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                examples=[
                    envelope_example(
                        "Finished",
                        {
                            "task_id": "5f0c...",
                            "kind": "set_api_key",
                            "status": "failed",
                            "success": False,
                            "message": "Fail to access chat model(gpt-4o) using this api key: ...",
                            "attempts": [
                                {
                                    "model": "gpt-4o",
                                    "model_type": "chat",
                                    "ok": False,
                                    "cause": "key",
                                    "error_code": "AUTH_ERROR",
                                    "message": "...",
                                }
                            ],
                            "created_at": "2026-11-29T10:00:00Z",
                            "finished_at": "2026-11-29T10:00:01Z",
                        },
                    )
                ],
            ),
            **ERRORS,
        },
    )
    def get(self, request, task_id):
        validation = key_validation_for(tenant=self.tenant, validation_id=task_id)
        if validation is None:
            raise NotFound("No such task in this tenant.")
        return ok(
            {
                "task_id": str(validation.pk),
                "kind": validation.kind,
                "factory": validation.factory.name,
                "llm_name": validation.llm_name,
                "verify": validation.verify_only,
                "status": validation.state,
                "success": (validation.state == ValidationState.SUCCEEDED)
                if validation.finished
                else None,
                "message": validation.message,
                "attempts": validation.attempts,
                "created_at": validation.created_at.isoformat(),
                "finished_at": validation.finished_at.isoformat()
                if validation.finished_at
                else None,
            }
        )
