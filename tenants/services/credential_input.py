"""The credential and base URL a caller gives: checked, and shaped as they are stored."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
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
    *, factory: str, api_key: str | dict[str, Any] | None, fields: Mapping[str, Any]
) -> str | None:
    """The api_key to store: the plain key, or the factory's JSON object built from `fields`.

    A factory whose credentials are several fields takes them in any of the spellings RAGFlow's
    clients send: as request fields (`hunyuan_sid`...), as an object in `api_key` (BaiduYiyan's
    form), or as that object's JSON text in `api_key` (Tencent Hunyuan's). Request fields win.
    None means "no new credential given" (edits then keep the stored one).
    """
    shape = CREDENTIAL_SHAPES.get(factory)
    nested = _credential_object(api_key)
    if shape is None:
        if nested is not None:
            return json.dumps(nested, sort_keys=True)
        return api_key if isinstance(api_key, str) and api_key else None
    values = {name: fields.get(name) for name in shape.fields}
    for name, value in (nested or {}).items():
        if name in values and values[name] in (None, ""):
            values[name] = value
    if "api_key" in shape.fields and not values.get("api_key") and nested is None:
        values["api_key"] = api_key
    if not any(
        values.get(name) not in (None, "") for name in shape.fields if name != "api_version"
    ):
        if isinstance(api_key, str) and api_key.strip():
            names = ", ".join(shape.fields)
            raise InvalidInput(
                f"{factory} does not take a single key: send {names} as request fields or as "
                "one JSON object in api_key."
            )
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


def _credential_object(api_key: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields of an api_key given as an object or as a JSON object's text, else None."""
    if isinstance(api_key, dict):
        return api_key
    if isinstance(api_key, str) and api_key.lstrip().startswith("{"):
        try:
            parsed = json.loads(api_key)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


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
