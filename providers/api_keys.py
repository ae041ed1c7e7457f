"""What a stored `api_key` holds: a plain key or RAGFlow's JSON credential fields, and which
of them are secret.

RAGFlow stores factory-specific credentials as a JSON object in the api_key column:
VolcEngine {ark_api_key, endpoint_id}, Tencent Hunyuan {hunyuan_sid, hunyuan_sk}, Bedrock
{auth_mode, bedrock_ak, bedrock_sk, bedrock_region, aws_role_arn}, Azure-OpenAI {api_key,
api_version}, BaiduYiyan {yiyan_ak, yiyan_sk}, Fish Audio {fish_audio_ak, fish_audio_refid},
Google Cloud {google_project_id, google_region, google_service_account_key}, OpenRouter
{api_key, provider_order}, ...
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequestError

# Fields that identify or configure rather than authenticate: they are shown as they are (the
# admin and the API mask everything else) and never scrubbed from messages. Everything else in
# a JSON credential is treated as secret, so a new factory's fields are masked by default.
NON_SECRET_FIELDS = frozenset(
    {
        "api_version",
        "auth_mode",
        "aws_role_arn",
        "bedrock_region",
        "endpoint_id",
        "ep_id",
        "fish_audio_refid",
        "google_project_id",
        "google_region",
        "provider_order",
        "region",
        "spark_app_id",
    }
)


class Credentials:
    """An immutable view of one stored credential. Its repr never shows a secret."""

    __slots__ = ("_fields", "_plain")

    def __init__(self, plain: str = "", fields: Mapping[str, Any] | None = None) -> None:
        self._plain = plain
        self._fields = dict(fields or {})

    @classmethod
    def parse(cls, raw: str | Mapping[str, Any] | Credentials | None) -> Credentials:
        if isinstance(raw, Credentials):
            return raw
        if raw is None:
            return cls()
        if isinstance(raw, Mapping):
            return cls(fields=raw)
        if not isinstance(raw, str):
            raise TypeError(f"credentials must be a string or a mapping, not {type(raw).__name__}")
        text = raw.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return cls(fields=parsed)
        # Not JSON: a plain key (a key that merely starts with "{" stays a plain key).
        return cls(plain=text)

    @property
    def is_json(self) -> bool:
        return bool(self._fields)

    @property
    def key(self) -> str:
        """The plain key, or the JSON object's `api_key`; "" when there is none."""
        if self._fields:
            value = self._fields.get("api_key")
            return str(value).strip() if value is not None else ""
        return self._plain

    @property
    def field_names(self) -> list[str]:
        return sorted(self._fields)

    def get(self, name: str, default: Any = None) -> Any:
        value = self._fields.get(name, default)
        return value.strip() if isinstance(value, str) else value

    def require(self, *names: str, provider: str = "", model: str = "") -> tuple[Any, ...]:
        """The values of the named fields, or InvalidRequestError naming every missing one."""
        missing = [name for name in names if self.get(name) in (None, "")]
        if missing:
            raise InvalidRequestError(
                f"credentials are missing required field(s): {', '.join(missing)}",
                provider=provider,
                model=model,
                secrets=self.secrets(),
            )
        return tuple(self.get(name) for name in names)

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never appear in a message or a log line."""
        found: list[str] = []
        if self._plain:
            found.append(self._plain)
        for name, value in self._fields.items():
            if name not in NON_SECRET_FIELDS:
                _collect_strings(value, found)
        return tuple(dict.fromkeys(s for s in found if s))

    def __bool__(self) -> bool:
        return bool(self._plain or self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self._plain, self._fields) == (other._plain, other._fields)

    def __hash__(self) -> int:
        return hash((self._plain, json.dumps(self._fields, sort_keys=True, default=str)))

    def __repr__(self) -> str:
        if self._fields:
            return f"Credentials(json fields={self.field_names})"
        return f"Credentials(key={'<set>' if self._plain else '<empty>'})"

    __str__ = __repr__


_SECRET_WORDS = ("key", "secret", "token", "password", "sk", "ak")


def _collect_strings(value: Any, into: list[str]) -> None:
    # A Google service-account key arrives as a nested object or as its JSON text: scrub the
    # whole text and, inside it, the values whose names say they are secret (private_key...).
    if isinstance(value, str):
        into.append(value.strip())
        if value.lstrip().startswith("{"):
            with contextlib.suppress(ValueError):
                _collect_strings(json.loads(value), into)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            if any(word in str(name).lower() for word in _SECRET_WORDS):
                _collect_strings(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_strings(item, into)
