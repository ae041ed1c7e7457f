"""Our own API tokens: issued once (the raw token is never stored), touched, revoked."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ..models import APIToken
from ..process_cache import invalidate
from ..selectors import TOKEN_PREFIX, token_hash


def api_token_issue(*, user: AbstractBaseUser, name: str = "") -> tuple[APIToken, str]:
    """A new API token for `user`. The raw token is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = APIToken.objects.create(
        user=user, name=name[:128], prefix=prefix, token_hash=token_hash(raw)
    )
    return token, raw


def api_token_touch(*, token: APIToken) -> None:
    """Record use, at most once a minute per token (not a write on every request)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)


def api_token_revoke(*, token: APIToken) -> None:
    """Revoke `token`; every process stops accepting it (its cached identity is dropped here
    at once, in the other processes within a second)."""
    APIToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    transaction.on_commit(invalidate)
