"""OpenAPI material of the /api/v1/llm/ and /api/v1/tenant/ routes: summaries, examples, errors.

One function per operation, returning its `extend_schema` decorator; the views in tenants.api
pass in their request serializers and the serializers of their answers' `data`.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from providers.types import ModelType
from ragllm.schema import (
    ERRORS,
    TRUE,
    answer,
    envelope,
    envelope_example,
    error,
    named,
    one_of,
    operation,
    request_example,
)

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
_SUPERSEDED = envelope_example(
    "Replaced",
    {"task_id": "5f0c...", "attempts": []},
    code=102,
    message="A newer request (9a1e...) replaced this one before it was applied; nothing was saved.",
    status=409,
)
_EXPIRED = envelope_example(
    "Expired",
    {"task_id": "5f0c...", "attempts": []},
    code=100,
    message="The validation expired: no worker took it before its deadline; nothing was saved. "
    "Try again.",
    status=503,
)
_UNREACHABLE = envelope_example(
    "Unreachable",
    {"task_id": "5f0c...", "attempts": []},
    code=102,
    message="Fail to access chat model(deepseek-chat) using this api key: "
    "could not reach a model server at this address (network problem).",
    status=502,
)
_REFUSED = envelope_example(
    "Key refused",
    {"task_id": "5f0c...", "attempts": [{"model": "gpt-4o", "ok": False, "cause": "key"}]},
    code=102,
    message="Fail to access chat model(gpt-4o) using this api key: the provider rejected the "
    "credentials (key problem). ...",
    status=400,
)
_IS_DEFAULT = error(
    "It is one of the tenant's default models (code 102).",
    envelope_example(
        "Default model",
        None,
        code=102,
        message="gpt-4o@OpenAI is the tenant's default chat model; choose another default first.",
        status=409,
    ),
)
_VALIDATION = """The credentials are tested by live calls to the provider before anything is saved.

By default the request waits for the verdict (up to the server's LLM_TIMEOUT_SECONDS) and
answers 200 when the key works, 400 when the provider refused it, 502 when the provider could
not be reached, each failure with one message per model tried. With `"async": true`, or when
the verdict takes longer, it answers 202 with a `task_id`: poll `GET /api/v1/llm/tasks/{task_id}`.
With `"verify": true` nothing is saved; `data` then says whether the key works.

Waiting needs a Celery worker: with none taking validations the request is refused at once (503)
and nothing is recorded. Only the newest request for a model (or a factory) is applied: one
replaced by a newer request before it finished answers 409, one that did not finish by its
deadline 503; neither saves anything.

A failed validation never replaces a working stored key."""


def _validation_answers(name: str, *, saved, accepted, failed, verified) -> dict:
    """The answers of a route that validates credentials (set_api_key, add_llm)."""
    data = one_of(
        TRUE,
        {
            "type": "object",
            "properties": {"message": {"type": "string"}, "success": {"type": "boolean"}},
            "required": ["message", "success"],
        },
        description="true once saved; with verify, {message, success}.",
    )
    # null when the request was refused before any call was made.
    failure = envelope(f"{name}Failed", named(failed, "ValidationFailure")(allow_null=True))
    return {
        200: answer(f"{name}Answer", data, saved, verified),
        202: answer("ValidationAccepted", named(accepted, "ValidationTicket")(), _ACCEPTED),
        **ERRORS,
        400: OpenApiResponse(
            failure,
            description="A value refused, or the provider refused the credentials: "
            "`data` lists each model tried and why it failed.",
            examples=[_REFUSED],
        ),
        409: OpenApiResponse(
            failure,
            description="A newer request for the same model or factory replaced this one "
            "before it was applied (code 102); nothing was saved.",
            examples=[_SUPERSEDED],
        ),
        502: OpenApiResponse(
            failure,
            description="The provider could not be reached or failed on its side.",
            examples=[_UNREACHABLE],
        ),
        503: OpenApiResponse(
            failure,
            description="No Celery worker takes validations (only without async; `data` is "
            "null), or the validation did not finish by its deadline (code 100); nothing was "
            "saved.",
            examples=[_NO_WORKER, _EXPIRED],
        ),
    }


def factories(data: serializers.Serializer):
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
        description="Every factory (provider) you can configure, highest rank first, with the "
        "model types its catalog models serve.",
        responses={
            200: answer("FactoriesAnswer", data, envelope_example("Factories", [factory])),
            **ERRORS,
        },
    )


def set_api_key(request, *, accepted, failed):
    return operation(
        "llm_set_api_key",
        "Set a factory's API key for all its catalog models, once live calls prove it works",
        description=_VALIDATION
        + "\n\nThe key is tested on at most one embedding, one chat and one rerank model of "
        "the factory's catalog (the first success is enough), then stored for every catalog "
        "model of the factory. It is never shown again: answers show it masked.",
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
        responses=_validation_answers(
            "SetApiKey",
            saved=envelope_example("Saved", True),
            verified=envelope_example("Verified", {"message": "", "success": True}),
            accepted=accepted,
            failed=failed,
        ),
    )


def add_llm(request, *, accepted, failed):
    return operation(
        "llm_add_llm",
        "Add or edit one model configuration, tested by its type before it is saved",
        description=_VALIDATION
        + "\n\nSelf-hosted factories (Ollama, VLLM, LocalAI, OpenAI-API-Compatible...) need "
        "`api_base` and may have no key. Factories whose credentials have several fields take "
        "them as extra body fields (see the VolcEngine example). Editing a model without "
        "sending a key keeps its stored key.",
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
        responses=_validation_answers(
            "AddLLM",
            saved=envelope_example("Saved", True),
            verified=envelope_example(
                "Verified (failed)",
                {"message": "Fail to access chat model(llama3.2) ...", "success": False},
            ),
            accepted=accepted,
            failed=failed,
        ),
    )


def delete_llm(request):
    return operation(
        "llm_delete_llm",
        "Delete one model configuration",
        description="Its stored key goes with it. A model that is one of the tenant's default "
        "models cannot be deleted (409): choose another default first.",
        request=named(request, "ModelRefInput"),
        examples=[request_example("One model", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"})],
        responses={
            200: answer(
                "DeletedAnswer", serializers.BooleanField(), envelope_example("Deleted", True)
            ),
            **ERRORS,
            409: _IS_DEFAULT,
        },
    )


def enable_llm(request):
    disable = {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": "0"}
    return operation(
        "llm_enable_llm",
        "Enable or disable one model configuration",
        description="A disabled model is not used for calls. A default model cannot be "
        "disabled (409).",
        request=named(request, "EnableInput"),
        examples=[request_example("Disable", disable)],
        responses={
            200: answer("DoneAnswer", serializers.BooleanField(), envelope_example("Done", True)),
            **ERRORS,
            409: _IS_DEFAULT,
        },
    )


def delete_factory(request):
    return operation(
        "llm_delete_factory",
        "Delete every model configuration of one factory",
        description="All of the tenant's models of this factory and their keys. Refused (409) "
        "while one of them is a default model.",
        request=named(request, "FactoryInput"),
        examples=[request_example("Factory", {"llm_factory": "OpenAI"})],
        responses={
            200: answer(
                "DeletedAnswer", serializers.BooleanField(), envelope_example("Deleted", True)
            ),
            **ERRORS,
            409: _IS_DEFAULT,
        },
    )


def my_llms(data: serializers.Field):
    config = {"id": 12, "type": "chat", "name": "gpt-4o", "used_token": 1234, "status": "1"}
    configs = {"OpenAI": {"tags": "LLM,TEXT EMBEDDING", "llm": [config]}}
    return operation(
        "llm_my_llms",
        "The tenant's model configurations, by factory",
        description="Keys are never included. With `include_details=true`, each model also "
        "has its base URL, token limit, tool support and last validation verdict.",
        parameters=[
            OpenApiParameter(
                "include_details",
                {"type": "string", "enum": ["true", "false", "1", "0", ""]},
                required=False,
                description="true (or 1) for the details; any case. Empty or absent: false.",
            )
        ],
        responses={
            200: answer("MyLLMsAnswer", data, envelope_example("Configs", configs)),
            **ERRORS,
        },
    )


def llm_list(data: serializers.Field):
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
        "The catalog's models by factory, each marked available to this tenant or not",
        description="`available` is true when the tenant has an enabled configuration with a "
        "key for the model's factory, or the factory is self-hosted (no key needed). The "
        "tenant's own models outside the catalog are listed too.",
        parameters=[
            OpenApiParameter(
                "model_type",
                OpenApiTypes.STR,
                required=False,
                enum=[*ModelType.values, ""],
                description="Only models of this type. Empty or absent: every type.",
            )
        ],
        responses={
            200: answer("CatalogAnswer", data, envelope_example("Catalog", {"OpenAI": [model]})),
            **ERRORS,
        },
    )


def default_models(data: serializers.Serializer):
    defaults = _NO_DEFAULTS | {"llm_id": "gpt-4o@OpenAI"}
    return operation(
        "tenant_default_models",
        "The tenant's default model per type",
        description="Each as `model@factory`, empty when the tenant has none of that type.",
        responses={
            200: answer("DefaultModelsAnswer", data, envelope_example("Defaults", defaults)),
            **ERRORS,
        },
    )


def default_models_update(request, data: serializers.Serializer):
    chosen = {"llm_id": "gpt-4o@OpenAI", "embd_id": "text-embedding-3-small@OpenAI"}
    return operation(
        "tenant_default_models_update",
        "Set the tenant's default models",
        description="Send only the types to change; an empty string clears one. Each must be "
        "an enabled model of the tenant, of that type (`model@factory`, or a bare model name "
        "when it is unique).",
        request=named(request, "DefaultModelsInput"),
        examples=[request_example("Chat and embedding", chosen)],
        responses={
            200: answer(
                "DefaultModelsAnswer", data, envelope_example("Updated", _NO_DEFAULTS | chosen)
            ),
            **ERRORS,
        },
    )


def task(data: serializers.Serializer):
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
        "factory": "OpenAI",
        "llm_name": "",
        "verify": False,
        "status": "failed",
        "success": False,
        "message": "Fail to access chat model(gpt-4o) using this api key: ...",
        "attempts": [attempt],
        "created_at": "2026-11-29T10:00:00+00:00",
        "finished_at": "2026-11-29T10:00:01+00:00",
    }
    return operation(
        "llm_task",
        "The state of a key validation",
        description="For the `task_id` a validation answered with (202). `success` is null "
        "until the validation has finished; `attempts` has one verdict per model tried. "
        "`status`: pending, running, then succeeded, failed, superseded (a newer request for "
        "the same model or factory replaced it; nothing was saved) or expired (not finished by "
        "its deadline; nothing was saved).",
        responses={
            200: answer("TaskAnswer", data, envelope_example("Finished", finished)),
            **ERRORS,
        },
    )


def tenant_info(data: serializers.Serializer):
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
        description="Default models are `model@factory`, empty when the tenant has none of "
        "that type. `parser_ids` lists RAGFlow's document parsers (ragllm parses no documents); "
        "`role` is yours in this tenant.",
        responses={
            200: answer("TenantInfoAnswer", data, envelope_example("Tenant", info)),
            **ERRORS,
        },
    )


def set_tenant_info(request, data: serializers.Field):
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
        responses={200: answer("DoneAnswer", data, envelope_example("Updated", True)), **ERRORS},
    )
