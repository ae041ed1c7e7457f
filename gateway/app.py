"""The gateway's ASGI application: OpenAI's routes under /v1, served without Django's request
stack (ragllm.asgi sends it exactly these paths; everything else goes to Django).

    POST /v1/chat/completions     POST /v1/embeddings          POST /v1/rerank
    POST /v1/audio/transcriptions POST /v1/audio/speech
    GET  /v1/models               GET  /v1/models/{name@factory}

Other paths of OpenAI's API namespaces answer an OpenAI-style 404; the rest of /v1 (RAGFlow's
`/v1/llm/...` and `/v1/user/...` routes among them) is left to Django.

A request: read the body (bounded by GATEWAY_MAX_REQUEST_MB), authenticate (gateway.auth),
run the endpoint (gateway.endpoints), and turn any failure into OpenAI's error shape
(gateway.errors). Django settings, the ORM, the cache and the services are the same as the
rest of the application's.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from django.conf import settings

from usage.quotas import acting_key
from usage.selectors.quotas import key_limits

from . import endpoints, limiting
from .auth import authenticate
from .errors import GatewayError, error_for
from .http import ClientGone, Request, read_body, send_error

logger = logging.getLogger(__name__)

ROUTES = {
    "/v1/chat/completions": ("POST", endpoints.chat_completions),
    "/v1/embeddings": ("POST", endpoints.embeddings),
    "/v1/rerank": ("POST", endpoints.rerank),
    "/v1/audio/transcriptions": ("POST", endpoints.transcriptions),
    "/v1/audio/speech": ("POST", endpoints.speech),
    "/v1/models": ("GET", endpoints.list_models),
}
MODEL_PREFIX = "/v1/models/"
# OpenAI's API namespaces: unknown paths under them answer OpenAI's 404, not Django's.
OPENAI_NAMESPACES = (
    "/v1/chat/",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/rerank",
    "/v1/audio/",
    "/v1/models",
    "/v1/images/",
    "/v1/moderations",
    "/v1/files",
    "/v1/fine_tuning/",
    "/v1/batches",
    "/v1/uploads",
    "/v1/assistants",
    "/v1/threads",
    "/v1/vector_stores",
    "/v1/responses",
    "/v1/realtime",
    "/v1/conversations",
)


def handles(path: str) -> bool:
    """True for the paths the gateway answers (its routes and OpenAI's namespaces)."""
    return path in ROUTES or path.startswith(OPENAI_NAMESPACES)


async def application(scope, receive, send) -> None:
    request = Request.of(scope)
    limiting.begin()
    try:
        await _serve(request, receive, send)
    except ClientGone:
        return
    except Exception as exc:
        error = error_for(exc)
        try:
            await send_error(limiting.with_headers(send), error)
        except Exception:  # the client is gone, or the response had begun (a stream)
            logger.debug("gateway: could not send %s", error.status)


async def _serve(request: Request, receive, send) -> None:
    path = request.path
    model_id = None
    if path in ROUTES:
        method, endpoint = ROUTES[path]
    elif path.startswith(MODEL_PREFIX) and len(path) > len(MODEL_PREFIX):
        method, endpoint = "GET", endpoints.retrieve_model
        model_id = unquote(path[len(MODEL_PREFIX) :])
    else:
        raise GatewayError(404, f"Invalid URL ({request.method} {path})", code="unknown_url")
    if request.method != method:
        raise GatewayError(
            405,
            f"Method {request.method} is not allowed on {path}; use {method}.",
            code="method_not_allowed",
            headers={"Allow": method},
        )
    limit = settings.GATEWAY_MAX_REQUEST_MB * 1024 * 1024
    await read_body(request, receive, limit)
    caller = await authenticate(request)
    send = limiting.limit(caller, send)
    # An application key's own quota and budget count beside the tenant's (usage.quotas).
    key = acting_key.set(key_limits(caller.token))
    try:
        if model_id is not None:
            await endpoint(request, caller, receive, send, model_id)
        else:
            await endpoint(request, caller, receive, send)
    finally:
        acting_key.reset(key)
