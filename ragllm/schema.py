"""OpenAPI material every app's API shares: the tenant header, envelope examples, error table."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)

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


def answer(*examples: OpenApiExample, description: str = "") -> OpenApiResponse:
    """A JSON response with its envelope examples."""
    return OpenApiResponse(
        OpenApiTypes.OBJECT, description=description, examples=list(examples) or None
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
