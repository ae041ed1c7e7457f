"""OpenAPI material of the /api/v1/llm/ and /api/v1/tenant/ routes: summaries, examples, errors.

One function per operation, returning its `extend_schema` decorator; the views in tenants.api
pass in their request serializers.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)

from providers.types import ModelType
from ragllm.schema import ERRORS, TENANT_PARAM, envelope_example

from .models import Tenant

DEFAULT_FIELD_NAMES = list(Tenant.DEFAULT_FIELDS.values())


def _named(serializer_class, name: str):
    """The views' serializers are all called InputSerializer: give each its own component."""
    return extend_schema_serializer(component_name=name)(serializer_class)


def factories():
    return extend_schema(
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


def set_api_key(request):
    return extend_schema(
        operation_id="llm_set_api_key",
        summary="Validate a factory key by live calls, then save it for all its catalog models",
        parameters=[TENANT_PARAM],
        request=_named(request, "SetApiKeyInput"),
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


def add_llm(request):
    return extend_schema(
        operation_id="llm_add_llm",
        summary="Add (or edit) one model configuration, tested by its type before it is saved",
        parameters=[TENANT_PARAM],
        request=_named(request, "AddLLMInput"),
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


def delete_llm(request):
    return extend_schema(
        operation_id="llm_delete_llm",
        summary="Delete one model configuration",
        parameters=[TENANT_PARAM],
        request=_named(request, "ModelRefInput"),
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


def enable_llm(request):
    return extend_schema(
        operation_id="llm_enable_llm",
        summary="Enable or disable one model configuration",
        parameters=[TENANT_PARAM],
        request=_named(request, "EnableInput"),
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


def delete_factory(request):
    return extend_schema(
        operation_id="llm_delete_factory",
        summary="Delete every model configuration of one factory",
        parameters=[TENANT_PARAM],
        request=_named(request, "FactoryInput"),
        examples=[OpenApiExample("Factory", value={"llm_factory": "OpenAI"}, request_only=True)],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, examples=[envelope_example("Deleted", True)]),
            **ERRORS,
        },
    )


def my_llms():
    return extend_schema(
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


def llm_list():
    return extend_schema(
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


def default_models():
    return extend_schema(
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


def default_models_update(request):
    return extend_schema(
        operation_id="tenant_default_models_update",
        summary="Set default models; each must be an enabled model of the tenant, of that type",
        parameters=[TENANT_PARAM],
        request=_named(request, "DefaultModelsInput"),
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


def task():
    return extend_schema(
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
