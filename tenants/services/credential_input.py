"""The credential and base URL a caller gives: checked, and shaped as they are stored."""

from __future__ import annotations

import json
from typing import Any

from providers.factories import (
    BEDROCK_AUTH_MODES,
    CREDENTIAL_SHAPES,
    SELF_HOSTED_FACTORIES,
    required_credential_fields,
)
from providers.netguard import BlockedAddressError, check_url
from ragllm.errors import InvalidInput, MissingArguments

from ..models import TenantLLM


def credentials_from_input(
    *, factory: str, api_key: str | None, fields: dict[str, Any]
) -> str | None:
    """The api_key to store: the plain key, or the factory's JSON object built from `fields`.

    None means "no new credential given" (edits then keep the stored one).
    """
    shape = CREDENTIAL_SHAPES.get(factory)
    if shape is None:
        return api_key if api_key else None
    values = {name: fields.get(name) for name in shape.fields}
    if factory in {"Azure-OpenAI", "OpenRouter"} and not values.get("api_key"):
        values["api_key"] = api_key
    if not any(
        values.get(name) not in (None, "") for name in shape.fields if name != "api_version"
    ):
        return None
    for name, default in shape.defaults.items():
        if values.get(name) in (None, ""):
            values[name] = default
    if factory == "Bedrock" and values["auth_mode"] not in BEDROCK_AUTH_MODES:
        raise InvalidInput(
            f"auth_mode must be one of {', '.join(BEDROCK_AUTH_MODES)}, not {values['auth_mode']!r}"
        )
    missing = [
        n for n in required_credential_fields(factory, values) if values.get(n) in (None, "")
    ]
    if missing:
        raise MissingArguments(missing)
    return json.dumps({k: v for k, v in values.items() if v not in (None, "")}, sort_keys=True)


def check_base_url(*, factory: str, url: str) -> None:
    """Refuse a base URL that may not be called (see providers.netguard)."""
    if not url:
        return
    longest = TenantLLM._meta.get_field("api_base").max_length
    if len(url) > longest:
        raise InvalidInput(f"base_url is longer than {longest} characters.")
    try:
        check_url(url, allow_private=factory in SELF_HOSTED_FACTORIES)
    except BlockedAddressError as exc:
        raise InvalidInput(f"base_url is not allowed: {exc}") from exc
