"""OpenAPI material of the /api/v1/llm/ and /api/v1/tenant/ routes: summaries, examples, errors.

One function per operation, returning its `extend_schema` decorator; the views in tenants.api
pass in their request serializers.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from providers.types import ModelType
from ragllm.schema import ERRORS, answer, envelope_example, named, operation, request_example

from .models import Tenant

_NO_DEFAULTS = dict.fromkeys(Tenant.DEFAULT_FIELDS.values(), "")
_ACCEPTED = envelope_example(
    "Accepted",
    {"task_id": "5f0c...", "status": "pending"},
    message="validation is running; poll GET /api/v1/llm/tasks/<task_id>",
    status=202,
)
_NO_WORKER = envelope_example(
    "No worker",
    None,
    code=100,
    message="No Celery worker is taking key validations, so the key cannot be checked now; "
    "nothing was saved. Start one (celery -A ragllm worker) and try again.",
    status=503,
)
_WAITING_ERRORS = {
    409: answer(description="A newer request for the same model or factory replaced this one."),
    503: answer(_NO_WORKER, description="No worker takes validations (only without async)."),
}
_UNREACHABLE = envelope_example(
    "Unreachable",
    {"task_id": "5f0c...", "attempts": []},
    code=102,
    message="Fail to access chat model(deepseek-chat) using this api key: "
    "could not reach a model server at this address (network problem).",
    status=502,
)


def factories():
    factory = {
        "name": "OpenAI",
        "logo": "",
        "tags": "LLM,TEXT EMBEDDING,TTS,SPEECH2TEXT,IMAGE2TEXT",
        "status": "1",
        "rank": 999,
        "url": "https://api.openai.com/v1",
        "model_types": ["chat", "embedding", "image2text"],
    }
    return operation(
        "llm_factories",
        "List the LLM factories of the catalog",
        responses={200: answer(envelope_example("Factories", [factory])), **ERRORS},
    )


def set_api_key(request):
    return operation(
        "llm_set_api_key",
        "Validate a factory key by live calls, then save it for all its catalog models",
        request=named(request, "SetApiKeyInput"),
        examples=[
            request_example(
                "OpenAI key", {"llm_factory": "OpenAI", "api_key": "sk-...", "base_url": ""}
            ),
            request_example(
                "Verify only, asynchronously",
                {"llm_factory": "DeepSeek", "api_key": "sk-...", "verify": True, "async": True},
            ),
        ],
        responses={
            200: answer(
                envelope_example("Saved", True),
                envelope_example("Verified", {"message": "", "success": True}),
            ),
            202: answer(_ACCEPTED),
            **ERRORS,
            **_WAITING_ERRORS,
            502: answer(_UNREACHABLE, description="The provider could not be reached or failed."),
        },
    )


def add_llm(request):
    return operation(
        "llm_add_llm",
        "Add (or edit) one model configuration, tested by its type before it is saved",
        request=named(request, "AddLLMInput"),
        examples=[
            request_example(
                "Self-hosted Ollama chat model",
                {
                    "llm_factory": "Ollama",
                    "llm_name": "llama3.2",
                    "model_type": "chat",
                    "api_base": "http://127.0.0.1:11434",
                    "max_tokens": 8192,
                },
            ),
            request_example(
                "VolcEngine (JSON credentials from fields)",
                {
                    "llm_factory": "VolcEngine",
                    "llm_name": "doubao-pro",
                    "model_type": "chat",
                    "ark_api_key": "...",
                    "endpoint_id": "ep-2024...",
                },
            ),
        ],
        responses={
            200: answer(
                envelope_example("Saved", True),
                envelope_example(
                    "Verified (failed)",
                    {"message": "Fail to access chat model(llama3.2) ...", "success": False},
                ),
            ),
            202: answer(description="Validation accepted."),
            **ERRORS,
            **_WAITING_ERRORS,
            502: answer(description="Provider unreachable."),
        },
    )


def delete_llm(request):
    return operation(
        "llm_delete_llm",
        "Delete one model configuration",
        request=named(request, "ModelRefInput"),
        examples=[request_example("One model", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"})],
        responses={
            200: answer(envelope_example("Deleted", True)),
            **ERRORS,
            409: answer(description="It is a default model."),
        },
    )


def enable_llm(request):
    disable = {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"}
    return operation(
        "llm_enable_llm",
        "Enable or disable one model configuration",
        request=named(request, "EnableInput"),
        examples=[request_example("Disable", disable)],
        responses={200: answer(envelope_example("Done", True)), **ERRORS},
    )


def delete_factory(request):
    return operation(
        "llm_delete_factory",
        "Delete every model configuration of one factory",
        request=named(request, "FactoryInput"),
        examples=[request_example("Factory", {"llm_factory": "OpenAI"})],
        responses={200: answer(envelope_example("Deleted", True)), **ERRORS},
    )


def my_llms():
    config = {"id": 12, "type": "chat", "name": "gpt-4o", "used_token": 1234, "status": "1"}
    configs = {"OpenAI": {"tags": "LLM,TEXT EMBEDDING", "llm": [config]}}
    return operation(
        "llm_my_llms",
        "The tenant's model configurations by factory (never their keys)",
        parameters=[OpenApiParameter("include_details", OpenApiTypes.BOOL, required=False)],
        responses={200: answer(envelope_example("Configs", configs)), **ERRORS},
    )


def llm_list():
    model = {
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
    return operation(
        "llm_list",
        "The catalog by factory, each model marked available to this tenant or not",
        parameters=[
            OpenApiParameter("model_type", OpenApiTypes.STR, required=False, enum=ModelType.values)
        ],
        responses={200: answer(envelope_example("Catalog", {"OpenAI": [model]})), **ERRORS},
    )


def default_models():
    defaults = _NO_DEFAULTS | {"llm_id": "gpt-4o@OpenAI"}
    return operation(
        "tenant_default_models",
        "The tenant's default model per type",
        responses={200: answer(envelope_example("Defaults", defaults)), **ERRORS},
    )


def default_models_update(request):
    chosen = {"llm_id": "gpt-4o@OpenAI", "embd_id": "text-embedding-3-small@OpenAI"}
    return operation(
        "tenant_default_models_update",
        "Set default models; each must be an enabled model of the tenant, of that type",
        request=named(request, "DefaultModelsInput"),
        examples=[request_example("Chat and embedding", chosen)],
        responses={200: answer(envelope_example("Updated", _NO_DEFAULTS | chosen)), **ERRORS},
    )


def task():
    attempt = {
        "model": "gpt-4o",
        "model_type": "chat",
        "ok": False,
        "cause": "key",
        "error_code": "AUTH_ERROR",
        "message": "...",
    }
    finished = {
        "task_id": "5f0c...",
        "kind": "set_api_key",
        "status": "failed",
        "success": False,
        "message": "Fail to access chat model(gpt-4o) using this api key: ...",
        "attempts": [attempt],
        "created_at": "2026-11-29T10:00:00Z",
        "finished_at": "2026-11-29T10:00:01Z",
    }
    return operation(
        "llm_task",
        "The state of a key validation started with async: true",
        description="status: pending, running, then succeeded, failed, superseded (a newer "
        "request for the same model or factory replaced it; nothing was saved) or expired (not "
        "finished by its deadline; nothing was saved).",
        responses={200: answer(envelope_example("Finished", finished)), **ERRORS},
    )


def tenant_info():
    info = {
        "tenant_id": "0b5f6c1e-...",
        "name": "Alice Inc",
        **_NO_DEFAULTS,
        "llm_id": "gpt-4o@OpenAI",
        "parser_ids": "naive:General,qa:Q&A,...",
        "role": "owner",
    }
    return operation(
        "tenant_info",
        "The tenant's id, name, default models and the caller's role (RAGFlow's tenant_info)",
        responses={200: answer(envelope_example("Tenant", info)), **ERRORS},
    )


def set_tenant_info(request):
    body = {
        "tenant_id": "0b5f6c1e-...",
        "name": "Alice Inc",
        "llm_id": "gpt-4o@OpenAI",
        "embd_id": "text-embedding-3-small@OpenAI",
        "img2txt_id": "",
        "asr_id": "",
        "rerank_id": "",
        "tts_id": None,
    }
    return operation(
        "tenant_set_info",
        "Rename the tenant and set its default models (RAGFlow's set_tenant_info)",
        description='`tenant_id` must be the tenant the request acts for; "" or null clears '
        "a default; every default must be an enabled model of the tenant, of that type.",
        request=named(request, "SetTenantInfoInput"),
        examples=[request_example("As RAGFlow's app sends it", body)],
        responses={200: answer(envelope_example("Updated", True)), **ERRORS},
    )
