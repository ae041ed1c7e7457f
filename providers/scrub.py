"""Scrubbing secrets out of text before it is stored in an error, a log line or a reply.

Every ProviderError message passes through `scrub()` with the secrets of the call (the key,
the JSON credential's secret fields, an access token), and is also cleaned of anything that
looks like an echoed bearer token or key parameter.

Providers echo keys in altered forms: cut short ("sk-abc...xyz"), upper-cased, base64-encoded
(a Basic auth header), or in pieces. So not only the key is removed but every run of text in
which each stretch of MIN_SECRET_LENGTH characters is a piece of the key or of its base64
form, case-insensitively: any substring of the key of that length or more disappears.
`excerpt()` is what may be kept of a provider's error text: short, on one line, scrubbed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote

# Shorter "secrets" are not scrubbed: replacing every "abc" in a message would destroy it, and
# no real provider key is that short. Also the shortest piece of a key that is removed.
MIN_SECRET_LENGTH = 6
EXCERPT_LENGTH = 200
_MASK = "***"
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]{6,}")
# Gemini and a few others take the key in the query string, and URLs end up in messages.
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&](?:key|api[_-]?key|access[_-]?token|token|sig|signature)=)[^&\s\"'<>]+"
)
# A header echo such as `api-key: abcd...` or `x-api-key=abcd...`.
_HEADER_SECRET_RE = re.compile(r"(?i)\b((?:x-)?api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets (whole, cut, re-cased, base64-encoded or in pieces), bearer tokens and
    key parameters from text."""
    secrets = tuple(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)
    if secrets:
        text = _mask(text, _pieces(secrets))
    text = _BEARER_RE.sub(rf"\1 {_MASK}", text)
    text = _QUERY_SECRET_RE.sub(rf"\1{_MASK}", text)
    return _HEADER_SECRET_RE.sub(rf"\1{_MASK}", text)


def excerpt(text: str, secrets: Iterable[str] = (), limit: int = EXCERPT_LENGTH) -> str:
    """What may be kept of a provider's error text: one line, scrubbed, at most `limit`
    characters."""
    text = scrub(" ".join(str(text or "").split()), secrets)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pieces(secrets: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Every lower-cased MIN_SECRET_LENGTH-character piece of the secrets' forms, and the
    whole texts that are only removed whole."""
    pieces: set[str] = set()
    whole: set[str] = set()
    for secret in secrets:
        # The raw key, and the forms it takes once URL-quoted or JSON-escaped in an echo.
        forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
        if secret.lstrip().startswith("{"):
            # A JSON credential's text: its secret fields are scrubbed on their own, and
            # pieces of its structure ("https:", "type") are words of any message.
            whole.update(forms)
            continue
        forms.update(_base64_forms(secret))
        for form in forms:
            lowered = form.lower()
            pieces.update(
                lowered[i : i + MIN_SECRET_LENGTH]
                for i in range(len(lowered) - MIN_SECRET_LENGTH + 1)
            )
    return frozenset(pieces), tuple(sorted(whole, key=len, reverse=True))


def _base64_forms(secret: str) -> set[str]:
    """The key's base64 text at each of the three byte alignments it can have inside a longer
    encoded text (`user:key`, `Bearer key`), standard and URL-safe, without the characters
    that depend on the bytes around it."""
    forms: set[str] = set()
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        # The first group mixes in the bytes before; the last one, those after.
        inner = encoded[4 if offset else 0 : len(encoded) - 4]
        if len(inner) >= MIN_SECRET_LENGTH:
            forms.update({inner, inner.replace("+", "-").replace("/", "_")})
    return forms


def _mask(text: str, known: tuple[frozenset[str], tuple[str, ...]]) -> str:
    pieces, whole = known
    for secret in whole:
        text = text.replace(secret, _MASK)
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters change length when lower-cased
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    size = MIN_SECRET_LENGTH
    hidden = [False] * len(text)
    for i in range(len(text) - size + 1):
        if lowered[i : i + size] in pieces:
            hidden[i : i + size] = [True] * size
    if not any(hidden):
        return text
    out: list[str] = []
    for i, char in enumerate(text):
        if not hidden[i]:
            out.append(char)
        elif i == 0 or not hidden[i - 1]:
            out.append(_MASK)
    return "".join(out)
