"""RAGFlow's own paths for the LLM and tenant-model routes, answered as RAGFlow answers them.

RAGFlow's web app and SDK call `/v1/llm/...`, `/v1/user/tenant_info` and
`/v1/user/set_tenant_info` (the prefix is RAGFLOW_COMPAT_PREFIX). Each route here is the
`/api/v1/...` view of the same operation, with the same serializers and services; this module
changes only how a request is read and how an answer is written:

- the token comes with or without the `Bearer` scheme (RAGFlow's app sends it bare); a missing
  or wrong one gets HTTP 401 with RAGFlow's body, character for character;
- every other answer is HTTP 200 with the code in the body: RAGFlow's app throws on a non-2xx
  status before it reads the body (two error notices, a Save spinner that never stops);
- a body that is not a JSON object or a form reads as empty (so it is "missing arguments");
- deleting or disabling what is not there succeeds, as in RAGFlow (`/api/v1` says 404);
- a key validation is waited for (at most RAGFLOW_COMPAT_WAIT_SECONDS), since the app reads the
  verdict from the answer, and a failure is worded as RAGFlow words it; so no Celery worker
  taking validations is refused at once (code 100, as /api/v1's 503), a request replaced by a
  newer one is code 102 (/api/v1's 409) and one that expired is code 100 (/api/v1's 503);
- an unknown factory is "LLM factory X is not allowed"; an unexpected error is code 100 with a
  reference to the server log, never the exception's text.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse, QueryDict
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from providers.types import ModelType
from ragllm import api as envelope
from ragllm.errors import ApplicationError, NotFound

from . import api, tenant_api
from .auth import SchemelessTokenAuthentication
from .models import KeyValidation, ValidationKind, ValidationState
from .selectors import key_validation_wait
from .services.key_requests import UnsupportedModelType
from .services.key_validation import key_validation_error

logger = logging.getLogger(__name__)

app_name = "ragflow"

# RAGFlow's answer to a request without a valid token (the repr of its Unauthorized error).
UNAUTHORIZED = {"code": 401, "message": "<Unauthorized '401: Unauthorized'>", "data": None}
TENANT_NOT_FOUND = "Tenant not found!"
# Statuses kept as they are; everything else is answered with HTTP 200.
KEPT_STATUSES = frozenset({401, 405, 429})


def _answer(code: int, message: str, data: Any = None) -> Response:
    return Response({"code": code, "message": message, "data": data})


def _is_true(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true"}


class RAGFlowMount:
    """Mixed into a tenants view: RAGFlow's way of reading requests and writing answers."""

    authentication_classes = [SchemelessTokenAuthentication]
    schema = None  # documented once, under /api/v1
    # delete_llm, enable_llm, delete_factory: nothing to change is success.
    absent_is_success = False

    def perform_content_negotiation(self, request, force=False):
        # Always JSON, whatever Accept says (RAGFlow never answers 406).
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def get_exception_handler(self):
        return exception_handler

    def body(self) -> Mapping[str, Any]:
        if not hasattr(self, "_body"):
            try:
                data = self.request.data
            except (exceptions.ParseError, exceptions.UnsupportedMediaType):
                data = {}
            if isinstance(data, QueryDict):
                data = data.dict()
            self._body = data if isinstance(data, Mapping) else {}
        return self._body

    def waits_for_validation(self, *, requested_async: bool) -> bool:
        return True  # the app reads the verdict from the answer ("async" is ignored)

    def validation_answer(self, validation: KeyValidation, *, wait: bool) -> Response:
        seconds = float(settings.RAGFLOW_COMPAT_WAIT_SECONDS)
        validation = key_validation_wait(validation=validation, timeout=seconds)
        if not validation.finished:
            return _answer(
                envelope.DATA_ERROR,
                f"The key is still being tested after {seconds:g} seconds (task "
                f"{validation.pk}); it is saved if the test passes.",
            )
        if validation.state in (ValidationState.SUPERSEDED, ValidationState.EXPIRED):
            # No verdict on the key: a newer request replaced this one, or no worker ended it
            # in time. Answered as the API's 409 / 503 are, with HTTP 200 (exception_handler).
            raise key_validation_error(validation=validation)
        text = failure_text(validation)
        if validation.verify_only:
            return envelope.ok({"message": text, "success": validation.succeeded})
        if validation.succeeded:
            return envelope.ok(True)
        return _answer(envelope.DATA_ERROR, text)


def failure_text(validation: KeyValidation) -> str:
    """RAGFlow's message for a failed validation: one line per model that failed, each
    starting with a newline, the label glued to the detail ("" when it succeeded)."""
    if validation.succeeded:
        return ""
    failed = [a for a in validation.attempts if not a.get("ok")]
    if not failed:
        return validation.message
    factory = validation.factory.name
    ending = " using this api key." if validation.kind == ValidationKind.SET_API_KEY else "."
    lines = []
    for attempt in failed:
        name = attempt.get("model", "")
        if attempt.get("model_type") == ModelType.EMBEDDING:
            label = f"Fail to access embedding model({name})"
        else:
            label = f"Fail to access model({factory}/{name})"
        lines.append(f"\n{label}{ending}{attempt.get('detail') or attempt.get('message', '')}")
    return "".join(lines)


def exception_handler(exc: Exception, context: dict) -> Response:
    view = context.get("view")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Response(UNAUTHORIZED, status=401)
    if isinstance(exc, NotFound) and getattr(view, "absent_is_success", False):
        return envelope.ok(True)
    if isinstance(exc, api.UnknownFactory):
        return _answer(envelope.DATA_ERROR, f"LLM factory {exc.factory} is not allowed")
    if isinstance(exc, UnsupportedModelType):
        text = f"{exc.factory} does not support this model({exc.factory}/{exc.llm_name})"
        if view is not None and _is_true(view.body().get("verify")):
            return envelope.ok({"message": text, "success": False})
        return _answer(envelope.DATA_ERROR, text)
    if isinstance(exc, Http404 | exceptions.NotFound):  # the tenant could not be resolved
        return _answer(envelope.DATA_ERROR, TENANT_NOT_FOUND)
    if isinstance(exc, ApplicationError | exceptions.APIException):
        response = envelope.exception_handler(exc, context)
        if response.status_code not in KEPT_STATUSES:
            response.status_code = 200
        return response
    reference = uuid.uuid4().hex[:12]
    logger.exception("unhandled error on the RAGFlow-compatible routes (reference %s)", reference)
    return _answer(envelope.EXCEPTION_ERROR, f"Internal error (reference {reference}).")


# --- Routes -------------------------------------------------------------------------------------

# (path under the prefix, view, deleting what is not there succeeds)
ROUTES: list[tuple[str, type[api.RAGFlowRouteView], bool]] = [
    ("llm/factories", api.FactoriesView, False),
    ("llm/list", api.ListView, False),
    ("llm/my_llms", api.MyLLMsView, False),
    ("llm/set_api_key", api.SetApiKeyView, False),
    ("llm/add_llm", api.AddLLMView, False),
    ("llm/delete_llm", api.DeleteLLMView, True),
    ("llm/enable_llm", api.EnableLLMView, True),
    ("llm/delete_factory", api.DeleteFactoryView, True),
    ("user/tenant_info", tenant_api.TenantInfoView, False),
    ("user/set_tenant_info", tenant_api.SetTenantInfoView, False),
]

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")


def mounted(view: type[api.RAGFlowRouteView], *, absent_is_success: bool) -> type:
    return type(
        f"RAGFlow{view.__name__}",
        (RAGFlowMount, view),
        {"absent_is_success": absent_is_success, "__module__": __name__},
    )


@csrf_exempt
def not_found(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    """RAGFlow's answer for a path it does not serve."""
    body = {"code": 404, "message": f"Not Found: {request.path}", "data": None}
    return JsonResponse({**body, "error": "Not Found"}, status=404)


def mount_paths(prefix: str) -> list[str]:
    """The routes' paths under `prefix`, without the leading slash."""
    return [f"{prefix}/{path}" for path, _, _ in ROUTES] if prefix else []


def patterns(prefix: str) -> list:
    """The mount's URL patterns under `prefix` ("" mounts nothing). A trailing slash is
    optional, as in RAGFlow, so nothing is redirected (a redirected POST loses its body)."""
    if not prefix:
        return []
    root = re.escape(prefix)
    routes = [
        re_path(
            rf"^{root}/{re.escape(path)}/?$",
            mounted(view, absent_is_success=absent).as_view(),
            name=path.replace("/", "-"),
        )
        for path, view, absent in ROUTES
    ]
    return [*routes, re_path(rf"^{root}/(?:llm|user)/", not_found, name="not-found")]


urlpatterns = patterns(settings.RAGFLOW_COMPAT_PREFIX)
