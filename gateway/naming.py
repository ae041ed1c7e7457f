"""Model ids on the gateway: `name@factory`, a bare `name` when the tenant has exactly one
enabled model of that name, or `default` (the tenant's default model of the endpoint's type).

The tenant's enabled models come from tenants.identity's in-process cache (no query in steady
state). A name the tenant has not configured is still tried by LLMBundle's resolution, which
knows the system default models; it fails as 404 model_not_found.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.types import ModelType
from tenants.identity import MISS, TenantModel, peek_tenant_models, tenant_models

from .errors import invalid, model_not_found
from .metering import run_db

DEFAULT = "default"

# What each endpoint serves, and what a model of another type is told.
ENDPOINT_TYPES = {
    "/v1/chat/completions": (ModelType.CHAT, ModelType.IMAGE2TEXT),
    "/v1/embeddings": (ModelType.EMBEDDING,),
    "/v1/rerank": (ModelType.RERANK,),
    "/v1/audio/transcriptions": (ModelType.SPEECH2TEXT,),
    "/v1/audio/speech": (ModelType.TTS,),
}


@dataclass(frozen=True, slots=True)
class Choice:
    """What LLMBundle is asked for: a model type and a name (None: the tenant's default)."""

    model_type: str
    llm_name: str | None


async def models_of(tenant_id: str) -> tuple[TenantModel, ...]:
    models = peek_tenant_models(tenant_id=tenant_id)
    if models is MISS:
        models = await run_db(tenant_models, tenant_id=tenant_id)
    return models


def find(models: tuple[TenantModel, ...], model_id: str) -> TenantModel | None:
    """The tenant's model named `model_id`: its full name, else a bare name it has once.
    Raises 404 when a bare name is ambiguous."""
    for model in models:
        if model.full_name == model_id:
            return model
    named = [model for model in models if model.name == model_id]
    if len(named) > 1:
        choices = ", ".join(model.full_name for model in named)
        raise model_not_found(f"The model name `{model_id}` is ambiguous ({choices}).")
    return named[0] if named else None


async def choose(tenant_id: str, model_id: str, endpoint: str, *, images: bool = False) -> Choice:
    """The model an endpoint calls for `model_id`; 400 when the model is of another type."""
    accepted = ENDPOINT_TYPES[endpoint]
    if model_id == DEFAULT:
        return Choice(accepted[0].value, None)
    model = find(await models_of(tenant_id), model_id)
    if model is None:
        # Perhaps a system default model; LLMBundle knows (or answers model_not_found).
        return Choice(accepted[0].value, model_id)
    usable = [kind for kind in accepted if kind in model.types]
    if not usable:
        raise invalid(
            f"Model {model.full_name} is a {model.model_type} model; {endpoint} takes "
            f"{' or '.join(kind.value for kind in accepted)} models.",
            "model",
            "model_type_mismatch",
        )
    kind = usable[0]
    if images and ModelType.IMAGE2TEXT in usable:
        kind = ModelType.IMAGE2TEXT
    return Choice(kind.value, model.full_name)
