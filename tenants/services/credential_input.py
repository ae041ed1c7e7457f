"""The credential and base URL a caller gives: checked, and shaped as they are stored.

Two rules live here and nowhere else:
- a credential must be sendable: a key with a line break, a control character or a non-ASCII
  character is refused before anything is sent (it cannot go into an HTTP header as typed);
- a stored key is only ever sent to the base URL it was saved with: changing the base URL
  without giving the key again is refused (otherwise a tenant admin could point the stored key
  at a host of its own and read it there).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from providers import netguard
from providers.errors import UNREACHABLE
from providers.factories import (
    BEDROCK_AUTH_MODES,
    CREDENTIAL_SHAPES,
    required_credential_fields,
)
from ragllm.errors import InvalidInput, MissingArguments

from ..models import TenantLLM

logger = logging.getLogger(__name__)


class BaseURLNotAllowed(InvalidInput):
    """The base URL points where calls may not go (see providers.netguard)."""

    field = "api_base"


class KeyRequiredForNewBaseURL(InvalidInput):
    """The base URL changes and the stored key would follow it: the key must be given again."""

    field = "api_key"

    def __init__(self) -> None:
        super().__init__(
            "Changing the base URL needs the API key again: a stored key is only ever sent to "
            "the base URL it was saved with. Give the key together with the new base URL."
        )


class CredentialsNotSendable(InvalidInput):
    """A credential holds characters no provider key has; nothing was sent."""

    field = "api_key"


# JSON credential fields that are documents or lists rather than tokens sent as they are.
FREE_TEXT_FIELDS = frozenset({"google_service_account_key", "provider_order"})
# Printable ASCII without spaces: what a key sent in a header or a signature can hold.
_UNSENDABLE = re.compile(r"[^\x21-\x7e]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


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
            key = json.dumps(nested, sort_keys=True)
        elif isinstance(api_key, str) and api_key:
            key = api_key
        else:
            return None
        credentials_check_sendable(credentials=key)
        return key
    values = {name: fields.get(name) for name in shape.fields}
    for name, value in (nested or {}).items():
        if name in values and values[name] in (None, ""):
            values[name] = value
    if "api_key" in shape.fields and not values.get("api_key") and nested is None:
        values["api_key"] = api_key
    if not any(
        values.get(name) not in (None, "") for name in shape.fields if name != "api_version"
    ):
        if isinstance(api_key, str) and api_key.strip() and nested is None and shape.plain_key:
            credentials_check_sendable(credentials=api_key)
            return api_key  # Tencent Hunyuan's plain API key
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
    stored = json.dumps({k: v for k, v in values.items() if v not in (None, "")}, sort_keys=True)
    credentials_check_sendable(credentials=stored)
    return stored


def credential_input_from_text(*, factory: str, text: str) -> tuple[str | None, dict[str, Any]]:
    """(api_key, fields) of a credential typed as one text (the admin's key field).

    Multi-field factories take the JSON object of their fields (or, for those that also take
    one, a plain key); a plain key is a plain key.
    """
    text = text.strip()
    fields = _json_object(text)
    shape = CREDENTIAL_SHAPES.get(factory)
    if shape is None or not text:
        return (text or None), {}
    if fields is not None:
        return None, fields
    if "api_key" in shape.fields or shape.plain_key:
        # Azure-OpenAI, OpenRouter: a plain key is their api_key; Tencent Hunyuan takes one.
        return text, {}
    raise InvalidInput(
        f"{factory} credentials are a JSON object with the fields {', '.join(shape.fields)}."
    )


def credentials_check_sendable(*, credentials: str) -> None:
    """Refuse a key (or a JSON credential's token fields) that could not be sent as typed.

    A pasted key with a line break, a space, a control or a non-ASCII character is a typing
    accident, not a key: refusing it here says so, instead of a provider error about an answer
    that never came. The message never repeats the key.
    """
    fields = _json_object(credentials)
    if fields is None:
        _check_token("api_key", credentials)
        return
    for name, value in fields.items():
        if isinstance(value, str) and name not in FREE_TEXT_FIELDS:
            _check_token(name, value)


def _check_token(name: str, value: str) -> None:
    if _UNSENDABLE.search(value):
        raise CredentialsNotSendable(
            f"{name} contains characters a key cannot have (a space, a line break, a control "
            "or a non-ASCII character); nothing was sent to the provider. Check that the key "
            "was copied whole and alone."
        )


def _json_object(text: str) -> dict[str, Any] | None:
    """The fields of a JSON object's text, else None."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _credential_object(api_key: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields of an api_key given as an object or as a JSON object's text, else None."""
    if isinstance(api_key, dict):
        return api_key
    return _json_object(api_key) if isinstance(api_key, str) else None


def check_base_url(*, factory: str, url: str) -> None:
    """Refuse a base URL that may not be called (see providers.netguard). Where it points is
    never described: the reason is logged for the operator."""
    if not url:
        return
    longest = TenantLLM._meta.get_field("api_base").max_length
    if len(url) > longest:
        raise BaseURLNotAllowed(f"base_url is longer than {longest} characters.")
    try:
        netguard.check_base_url(url, factory=factory)
    except netguard.InvalidURLError as exc:
        raise BaseURLNotAllowed(f"base_url is not allowed: {exc}") from None
    except netguard.BlockedAddressError as exc:
        logger.warning("base URL refused for %s: %s", factory, exc)
        raise BaseURLNotAllowed(
            f"base_url is not allowed: {UNREACHABLE} (it is outside the networks this "
            "service may call)."
        ) from None


def normalized_base_url(url: str) -> str:
    """The base URL as compared: scheme and host lower-case, no default port, no trailing slash.

    "" (the factory's own hosted address) stays "". A URL that cannot be parsed is compared
    as typed.
    """
    url = (url or "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def base_url_changes(*, stored: str, given: str) -> bool:
    return normalized_base_url(stored) != normalized_base_url(given)


def check_stored_key_destination(*, stored_key: str, stored_base: str, new_base: str) -> None:
    """The rule: a stored key goes only to the base URL it was saved with.

    Called wherever a stored key would be reused with a base URL the caller gives.
    """
    if stored_key and base_url_changes(stored=stored_base, given=new_base):
        raise KeyRequiredForNewBaseURL()
