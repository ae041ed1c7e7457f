"""Facts about factories that are not in the catalog file: hosting and credential shapes."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

# Run by the user on their own machines: their base URL may be private or loopback, a key is
# optional, and the catalog lists no models for them (users add model names).
SELF_HOSTED_FACTORIES = frozenset(
    {
        "Ollama",
        "LocalAI",
        "VLLM",
        "Xinference",
        "LM-Studio",
        "GPUStack",
        "OpenAI-API-Compatible",
        "HuggingFace",
    }
)

# RAGFlow appends "___<suffix>" to the names of self-hosted models (`qwen2___VLLM`,
# `bge-m3___OpenAI-API`). Providers must never see the suffix and we never store or show it,
# but names that carry one (from RAGFlow clients or exports) are accepted.
NAME_SUFFIX_SEPARATOR = "___"


def strip_name_suffix(name: str) -> str:
    """The model name without RAGFlow's "___<suffix>"."""
    return name.split(NAME_SUFFIX_SEPARATOR, 1)[0]


def split_full_name(name: str, factories: Container[str] | None = None) -> tuple[str, str]:
    """("gpt-4o", "OpenAI") for "gpt-4o@OpenAI", and ("gpt-4o", "") for a bare name; the name
    suffix is stripped. Given `factories`, a tail that is not one of them stays in the name."""
    head, at, tail = name.rpartition("@")
    if at and (factories is None or tail in factories):
        return strip_name_suffix(head), tail
    return strip_name_suffix(name), ""


@dataclass(frozen=True)
class CredentialShape:
    """The JSON object a factory's credentials are stored as (RAGFlow's `apikey_json`)."""

    fields: tuple[str, ...]
    required: tuple[str, ...]
    defaults: dict[str, str] = field(default_factory=dict)
    # Also takes a single plain key instead of the fields (stored as it is; its adapter is
    # the one registered `for_plain_key`).
    plain_key: bool = False


# Factories whose credentials are several fields, stored as one JSON object in api_key.
CREDENTIAL_SHAPES: dict[str, CredentialShape] = {
    "VolcEngine": CredentialShape(("ark_api_key", "endpoint_id"), ("ark_api_key", "endpoint_id")),
    # A SecretId and SecretKey (the native API), or a plain API key (the OpenAI-compatible one).
    "Tencent Hunyuan": CredentialShape(
        ("hunyuan_sid", "hunyuan_sk"), ("hunyuan_sid", "hunyuan_sk"), plain_key=True
    ),
    "Tencent Cloud": CredentialShape(
        ("tencent_cloud_sid", "tencent_cloud_sk"), ("tencent_cloud_sid", "tencent_cloud_sk")
    ),
    "Bedrock": CredentialShape(
        ("auth_mode", "bedrock_ak", "bedrock_sk", "bedrock_region", "aws_role_arn"),
        ("bedrock_region",),
        {"auth_mode": "access_key_secret"},
    ),
    "Azure-OpenAI": CredentialShape(
        ("api_key", "api_version"), ("api_key",), {"api_version": "2024-02-01"}
    ),
    "BaiduYiyan": CredentialShape(("yiyan_ak", "yiyan_sk"), ("yiyan_ak", "yiyan_sk")),
    "Fish Audio": CredentialShape(
        ("fish_audio_ak", "fish_audio_refid"), ("fish_audio_ak", "fish_audio_refid")
    ),
    "Google Cloud": CredentialShape(
        ("google_project_id", "google_region", "google_service_account_key"),
        ("google_project_id", "google_region", "google_service_account_key"),
    ),
    "XunFei Spark": CredentialShape(
        ("spark_app_id", "spark_api_secret", "spark_api_key"),
        ("spark_app_id", "spark_api_secret", "spark_api_key"),
    ),
    "OpenRouter": CredentialShape(("api_key", "provider_order"), ("api_key",)),
}

# Bedrock's required fields depend on how it authenticates. RAGFlow's "assume_role" (use this
# server's own AWS identity) is not offered: a multi-tenant service must not lend it to tenants.
BEDROCK_AUTH_MODES = {
    "access_key_secret": ("bedrock_ak", "bedrock_sk"),
    "iam_role": ("bedrock_ak", "bedrock_sk", "aws_role_arn"),
}


def required_credential_fields(factory: str, values: dict[str, object]) -> tuple[str, ...]:
    shape = CREDENTIAL_SHAPES[factory]
    required = shape.required
    if factory == "Bedrock":
        mode = str(values.get("auth_mode") or shape.defaults["auth_mode"])
        required = required + BEDROCK_AUTH_MODES.get(mode, ())
    return required
