"""Showing stored credentials without revealing them: masked keys, public JSON fields kept."""

from __future__ import annotations

import json

# Fields of JSON credentials that identify rather than authenticate: safe to show as they are.
PUBLIC_FIELDS = frozenset(
    {
        "endpoint_id",
        "api_version",
        "auth_mode",
        "bedrock_region",
        "aws_role_arn",
        "provider_order",
        "google_project_id",
        "google_region",
        "fish_audio_refid",
        "spark_app_id",
    }
)


def mask_key(value: str) -> str:
    """`sk-...7f3a` for a long key; fixed stars for a short one (too short to reveal a tail)."""
    value = value or ""
    if not value:
        return ""
    if len(value) < 12:
        return "****"
    return f"{value[:3]}...{value[-4:]}"


def mask_credentials(raw: str) -> str:
    """The stored api_key as it may be displayed: JSON credentials keep their shape."""
    raw = raw or ""
    stripped = raw.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            return mask_key(raw)
        if isinstance(data, dict):
            shown = {
                key: (value if key in PUBLIC_FIELDS else mask_key(str(value)))
                for key, value in data.items()
                if value not in (None, "")
            }
            return json.dumps(shown, sort_keys=True)
    return mask_key(raw)
