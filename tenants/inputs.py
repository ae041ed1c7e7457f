"""Input fields the tenants routes share (tenants.api, tenants.tenant_api, and through them the
RAGFlow-compatible mount): what a value may be, checked before any service sees it, so that bad
input is a 400 with the field's name, never a database error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from providers.factories import NAME_SUFFIX_SEPARATOR, strip_name_suffix
from providers.models import LLMFactory
from providers.types import ModelType, normalize_model_type
from ragllm.errors import InvalidInput

from .models import TenantLLM


@extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": True}]}
)
class CredentialField(serializers.Field):
    """api_key: a key, the JSON text of a credential object, or the object itself."""

    default_error_messages = {"invalid": "must be a string or an object of credential fields."}

    def to_internal_value(self, data: Any) -> str | dict[str, Any]:
        if isinstance(data, str):
            return data.strip()
        if isinstance(data, dict):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {"oneOf": [{"type": "string", "enum": ["1", "0"]}, {"type": "integer"}, {"type": "boolean"}]}
)
class SwitchField(serializers.Field):
    """An on/off value as clients send it: 1/0, "1"/"0", true/false."""

    default_error_messages = {"invalid": 'must be "1" or "0"'}

    def to_internal_value(self, data: Any) -> bool:
        lowered = str(data).strip().lower()
        if lowered in {"1", "true"}:
            return True
        if lowered in {"0", "false"}:
            return False
        self.fail("invalid")

    def to_representation(self, value: Any) -> str:
        return "1" if value else "0"


# Lengths are the columns' own, so that too long a value is a 400 here, never a database error.


class StrictSerializer(serializers.Serializer):
    """Unknown fields are refused (a misspelt limit must not pass silently)."""

    def validate(self, attrs):
        unknown = set(getattr(self, "initial_data", {}) or {}) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
        return attrs


def limit_field(maximum: int, help_text: str) -> serializers.IntegerField:
    """An optional count limit (RPM, TPM, a token quota): null is no limit."""
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=maximum, help_text=help_text
    )


def budget_field() -> serializers.DecimalField:
    """An optional money budget per quota window: null is none."""
    return serializers.DecimalField(
        max_digits=14,
        decimal_places=4,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="US dollars per quota window (catalog prices); null: none.",
    )


def column_max_length(model, field_name: str) -> int:
    return model._meta.get_field(field_name).max_length


def factory_name_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=column_max_length(LLMFactory, "name"), **kwargs)


def base_url_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=column_max_length(TenantLLM, "api_base"),
        **kwargs,
    )


@extend_schema_field({"type": "string", "enum": ModelType.values})
class ModelTypeField(serializers.CharField):
    """A model type; RAGFlow's other spellings ("reranker", "vision", any case) are accepted."""

    def to_internal_value(self, data) -> str:
        try:
            return normalize_model_type(super().to_internal_value(data)).value
        except ValueError as exc:
            raise serializers.ValidationError(
                f"{data!r} is not one of {', '.join(ModelType.values)}."
            ) from exc


class LLMNameField(serializers.CharField):
    """A model name; RAGFlow's "___<suffix>" (`qwen2___VLLM`) is accepted and dropped."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=column_max_length(TenantLLM, "llm_name"), **kwargs)

    def to_internal_value(self, data) -> str:
        name = strip_name_suffix(super().to_internal_value(data)).strip()
        if not name:
            raise serializers.ValidationError(
                f"{data!r} has no model name before RAGFlow's {NAME_SUFFIX_SEPARATOR} suffix."
            )
        return name


# An on/off query parameter's spellings (any case); empty or absent means off.
QUERY_FLAGS = {"true": True, "1": True, "false": False, "0": False, "": False}


def query_flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "")
    try:
        return QUERY_FLAGS[value.strip().lower()]
    except KeyError:
        raise InvalidInput(f"{name} must be true or false (or 1 or 0), not {value!r}.") from None
