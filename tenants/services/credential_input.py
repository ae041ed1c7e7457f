"""The credential and base URL a caller gives: checked, and shaped as they are stored."""

from __future__ import annotations

import json
import logging
from typing import Any

from providers import netguard
from providers.errors import UNREACHABLE
from providers.factories import (
    BEDROCK_AUTH_MODES,
    CREDENTIAL_SHAPES,
    required_credential_fields,
)
from ragllm.errors import InvalidInput, MissingArguments

logger = logging.getLogger(__name__)


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
    """Refuse a base URL that may not be called (see providers.netguard). Where it points is
    never described: the reason is logged for the operator."""
    if not url:
        return
    try:
        netguard.check_base_url(url, factory=factory)
    except netguard.InvalidURLError as exc:
        raise InvalidInput(f"base_url is not allowed: {exc}") from None
    except netguard.BlockedAddressError as exc:
        logger.warning("base URL refused for %s: %s", factory, exc)
        raise InvalidInput(
            f"base_url is not allowed: {UNREACHABLE} (it is outside the networks this "
            "service may call)."
        ) from None
