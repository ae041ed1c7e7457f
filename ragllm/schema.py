"""OpenAPI material every app's API shares: the tenant header, the envelope, the error table.

Every answer is documented as RAGFlow's envelope {"code", "message", "data"} with the shape of
its `data`, so that the schema says exactly what a client gets (tests/test_api_fuzz.py holds
every route to it).
"""

from __future__ import annotations

import copy

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers

from .api import TENANT_HEADER

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


_envelopes: dict[str, serializers.Serializer] = {}


def envelope(name: str, data: serializers.Field) -> serializers.Serializer:
    """The answer {"code", "message", "data"} with this `data`, as the component `name`.

    One component per name: operations answering the same shape share it.
    """
    if name not in _envelopes:

        @extend_schema_serializer(component_name=name)
        class Envelope(serializers.Serializer):
            code = serializers.IntegerField(
                help_text="0 on success; RAGFlow's codes otherwise (101 missing argument, "
                "102 data error, 100 internal error, 401 unauthenticated, 403 forbidden)."
            )
            message = serializers.CharField()

            def get_fields(self) -> dict[str, serializers.Field]:
                return {**super().get_fields(), "data": copy.deepcopy(data)}

        _envelopes[name] = Envelope()
    return _envelopes[name]


def one_of(*schemas: dict, description: str = "") -> serializers.Field:
    """A value documented as one of these JSON schemas (serializers have no union type)."""

    @extend_schema_field({"oneOf": list(schemas), "description": description})
    class OneOf(serializers.JSONField):
        pass

    return OneOf()


TRUE = {"type": "boolean", "enum": [True]}

_ERROR = envelope(
    "ErrorAnswer",
    serializers.JSONField(
        allow_null=True,
        help_text="null, or details: a validation's task_id and the attempts made.",
    ),
)


def error(description: str, *examples: OpenApiExample) -> OpenApiResponse:
    return OpenApiResponse(_ERROR, description=description, examples=list(examples) or None)


ERRORS = {
    400: error(
        "Missing argument (code 101) or a value refused (code 102), with the reason.",
        envelope_example(
            "Missing argument",
            None,
            code=101,
            message="required argument are missing: llm_factory; ",
            status=400,
        ),
    ),
    401: error(
        "No or invalid credentials (code 401).",
        envelope_example(
            "No token", None, code=401, message="Invalid or revoked token.", status=401
        ),
    ),
    403: error(
        "Your role may not do this (code 403).",
        envelope_example(
            "Read-only member",
            None,
            code=403,
            message="Only the tenant's owner or admins may change model configurations.",
            status=403,
        ),
    ),
    404: error(
        "Not found in this tenant, or no such tenant for you (code 102).",
        envelope_example("Not found", None, code=102, message="not found", status=404),
    ),
    429: error(
        "Too many failed authentications from your address; wait for Retry-After seconds.",
        envelope_example(
            "Throttled",
            None,
            code=102,
            message="Too many failed authentications from this address.",
            status=429,
        ),
    ),
}
# Routes that take a body.
BODY_ERRORS = {
    413: error(
        "The body is larger than the server accepts (DATA_UPLOAD_MAX_MEMORY_SIZE).",
        envelope_example(
            "Too large",
            None,
            code=102,
            message="The request body is larger than the 2,621,440 bytes this server accepts.",
            status=413,
        ),
    ),
}


def answer(
    name: str, data: serializers.Field, *examples: OpenApiExample, description: str = ""
) -> OpenApiResponse:
    """A JSON answer whose `data` is `data` (component `name`), with its envelope examples."""
    return OpenApiResponse(
        envelope(name, data), description=description, examples=list(examples) or None
    )


def request_example(name: str, value: dict) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


def operation(
    operation_id: str,
    summary: str,
    *,
    responses: dict,
    request=None,
    examples: list[OpenApiExample] | None = None,
    parameters: list | None = None,
    description: str | None = None,
):
    """The `extend_schema` of a tenant-scoped operation (the X-Tenant-ID header first)."""
    extra = {"request": request} if request is not None else {}
    if request is not None:
        responses = {**responses, **BODY_ERRORS}
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        parameters=[TENANT_PARAM, *(parameters or [])],
        examples=examples,
        responses=responses,
        **extra,
    )


def named(serializer_class, name: str):
    """The views' serializers are all called InputSerializer: give each its own component."""
    return extend_schema_serializer(component_name=name)(serializer_class)
