"""OpenAPI material every app's API shares: the tenant header, envelope examples, error table."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

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
