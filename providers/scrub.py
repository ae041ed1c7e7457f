"""Scrubbing secrets out of text before it is stored in an error, a log line or a reply.

Every ProviderError message passes through `scrub()` with the secrets of the call (the key,
the JSON credential's secret fields, an access token), and is also cleaned of anything that
looks like an echoed bearer token or key parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote

# Shorter "secrets" are not scrubbed: replacing every "abc" in a message would destroy it, and
# no real provider key is that short.
MIN_SECRET_LENGTH = 6
_MASK = "***"
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]{6,}")
# Gemini and a few others take the key in the query string, and URLs end up in messages.
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&](?:key|api[_-]?key|access[_-]?token|token|sig|signature)=)[^&\s\"'<>]+"
)
# A header echo such as `api-key: abcd...` or `x-api-key=abcd...`.
_HEADER_SECRET_RE = re.compile(r"(?i)\b((?:x-)?api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets, bearer tokens and key parameters from text."""
    variants: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            continue
        # The raw key, and the forms it takes once URL-quoted or JSON-escaped in an echo.
        variants.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, _MASK)
    text = _BEARER_RE.sub(rf"\1 {_MASK}", text)
    text = _QUERY_SECRET_RE.sub(rf"\1{_MASK}", text)
    return _HEADER_SECRET_RE.sub(rf"\1{_MASK}", text)
