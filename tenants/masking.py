"""Showing stored credentials without revealing them: masked keys, public JSON fields kept."""

from __future__ import annotations

import json

from providers.api_keys import NON_SECRET_FIELDS


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
                key: (value if key in NON_SECRET_FIELDS else mask_key(str(value)))
                for key, value in data.items()
                if value not in (None, "")
            }
            return json.dumps(shown, sort_keys=True)
    return mask_key(raw)
