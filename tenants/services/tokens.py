"""Our own API tokens: personal tokens and application keys, issued once (the raw token is
never stored), changed, touched, revoked. Every change of an application key is audited.

A personal token (tenant empty) acts for any tenant its user belongs to; an application key
is bound to one tenant and carries scopes, allowed models, an expiry and limits (enforced by
the gateway and usage; set here).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from providers.models import LLM, LLMFactory
from ragllm.errors import InvalidInput

from ..models import TOKEN_SCOPES, APIToken, QuotaWindow, Tenant, TenantLLM
from ..process_cache import invalidate
from ..selectors import TOKEN_PREFIX, token_hash
from .audit import audit_diff, audit_record, audit_value

MAX_INT = 2_147_483_647
MAX_BIGINT = 9_223_372_036_854_775_807
MAX_BUDGET = Decimal("9999999999.9999")
MAX_MODELS = 200
# The settings of an application key, as the API, the admin and the commands name them.
KEY_SETTINGS = (
    "name",
    "scopes",
    "models",
    "expires_at",
    "rpm",
    "tpm",
    "token_quota",
    "budget",
    "quota_window",
)
_FIELD = {"models": "allowed_models"}


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _new_raw() -> tuple[str, str]:
    prefix = secrets.token_hex(4)
    return prefix, f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def api_token_issue(*, user: AbstractBaseUser, name: str = "") -> tuple[APIToken, str]:
    """A new personal API token for `user` (both scopes, any of its tenants). The raw token is
    returned once and never stored."""
    prefix, raw = _new_raw()
    token = APIToken.objects.create(
        user=user, name=name[:128], prefix=prefix, token_hash=token_hash(raw)
    )
    return token, raw


# --- Checks --------------------------------------------------------------------------------


def _scopes(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise _invalid("scopes", f"scopes must be a non-empty list of {', '.join(TOKEN_SCOPES)}.")
    unknown = [s for s in value if s not in TOKEN_SCOPES]
    if unknown:
        raise _invalid(
            "scopes", f"Unknown scope {unknown[0]!r}: scopes are {', '.join(TOKEN_SCOPES)}."
        )
    return [s for s in TOKEN_SCOPES if s in value]


def _models(tenant: Tenant, value: Any) -> list[str]:
    """Well-formed `name@factory` / `*@factory` entries naming the catalog or the tenant's
    own models, without repeats."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_MODELS:
        raise _invalid("models", f"models must be a list of at most {MAX_MODELS} model ids.")
    entries: list[str] = []
    for entry in value:
        if not isinstance(entry, str) or "@" not in entry:
            raise _invalid(
                "models", f"models: {str(entry)[:80]!r} is not `name@factory` or `*@factory`."
            )
        name, _, factory_name = entry.strip().rpartition("@")
        if not name or not factory_name or len(entry) > 300:
            raise _invalid(
                "models", f"models: {entry[:80]!r} is not `name@factory` or `*@factory`."
            )
        factory = LLMFactory.objects.filter(name=factory_name).first()
        if factory is None:
            raise _invalid(
                "models", f"models: factory {factory_name[:80]!r} is not in the catalog."
            )
        known = name == "*" or (
            LLM.objects.filter(factory=factory, llm_name=name).exists()
            or TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=name).exists()
        )
        if not known:
            raise _invalid(
                "models",
                f"models: {name[:80]}@{factory.name} is neither in the catalog nor configured "
                "for this tenant.",
            )
        full = f"{name}@{factory.name}"
        if full not in entries:
            entries.append(full)
    return entries


def _expires_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise _invalid("expires_at", "expires_at must be a date and time.")
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value <= timezone.now():
        raise _invalid("expires_at", "expires_at must be in the future.")
    return value


def limit_int(field: str, value: Any, maximum: int = MAX_INT) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _invalid(field, f"{field} must be a whole number from 0 to {maximum:,}, or null.")
    return value


def limit_budget(value: Any, field: str = "budget") -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or not 0 <= amount <= MAX_BUDGET:
        raise _invalid(
            field, f"{field} must be an amount in US dollars from 0 to {MAX_BUDGET}, or null."
        )
    if amount != amount.quantize(Decimal("0.0001")):
        raise _invalid(field, f"{field} has more than 4 decimal places.")
    return amount


def limit_window(value: Any, field: str = "quota_window") -> str:
    if value not in QuotaWindow.values:
        raise _invalid(field, f"{field} must be one of {', '.join(QuotaWindow.values)}.")
    return value


def _invalid(field: str, message: str) -> InvalidInput:
    error = InvalidInput(message)
    error.field = field  # the admin's forms show it on this field
    return error


def api_token_check_settings(*, tenant: Tenant, **values: Any) -> dict[str, Any]:
    """The given settings of an application key, checked and normalized, as model fields."""
    checks = {
        "name": lambda v: _name(v),
        "scopes": _scopes,
        "models": lambda v: _models(tenant, v),
        "expires_at": _expires_at,
        "rpm": lambda v: limit_int("rpm", v),
        "tpm": lambda v: limit_int("tpm", v),
        "token_quota": lambda v: limit_int("token_quota", v, MAX_BIGINT),
        "budget": limit_budget,
        "quota_window": limit_window,
    }
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in checks:
            raise ValueError(f"unknown key setting {name!r}")
        if value is not UNSET:
            out[_FIELD.get(name, name)] = checks[name](value)
    return out


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 128:
        raise _invalid("name", "name must be 1 to 128 characters.")
    return value.strip()


_SETTINGS = tuple(_FIELD.get(name, name) for name in KEY_SETTINGS)  # the model's field names


def _settings(token: APIToken) -> dict[str, Any]:
    return {field: getattr(token, field) for field in _SETTINGS}


def _label(token: APIToken) -> str:
    return f"APIToken {token.name} ({token.prefix}…)"


# --- Writes --------------------------------------------------------------------------------


@transaction.atomic
def api_token_create(
    *,
    user: AbstractBaseUser,
    tenant: Tenant,
    name: str,
    scopes: list[str] | tuple[str, ...] = TOKEN_SCOPES,
    models: list[str] | None = None,
    expires_at: datetime | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    token_quota: int | None = None,
    budget: Decimal | None = None,
    quota_window: str = QuotaWindow.MONTHLY,
) -> tuple[APIToken, str]:
    """A new application key bound to `tenant`, made by `user` (whose membership it acts
    with). The raw token is returned once and never stored."""
    fields = api_token_check_settings(
        tenant=tenant,
        name=name,
        scopes=list(scopes),
        models=models,
        expires_at=expires_at,
        rpm=rpm,
        tpm=tpm,
        token_quota=token_quota,
        budget=budget,
        quota_window=quota_window,
    )
    prefix, raw = _new_raw()
    token = APIToken.objects.create(
        user=user, tenant=tenant, prefix=prefix, token_hash=token_hash(raw), **fields
    )
    audit_record(
        tenant=tenant,
        kind="key.created",
        object=_label(token),
        changes={k: audit_value(v) for k, v in _settings(token).items()},
    )
    return token, raw


@transaction.atomic
def api_token_update(*, token: APIToken, **values: Any) -> APIToken:
    """Change an application key's settings (those given; UNSET or absent: unchanged)."""
    if token.tenant_id is None:
        raise InvalidInput("A personal token has no settings to change; issue an application key.")
    if token.revoked_at is not None:
        raise InvalidInput("This key is revoked; create a new one.")
    fields = api_token_check_settings(tenant=token.tenant, **values)
    before = _settings(token)
    for field, value in fields.items():
        setattr(token, field, value)
    changes = audit_diff(before, _settings(token))
    if changes:
        token.save(update_fields=list(fields))
        audit_record(
            tenant=token.tenant_id, kind="key.changed", object=_label(token), changes=changes
        )
    return token


def api_token_touch(*, token: APIToken) -> None:
    """Record use, at most once a minute per token (not a write on every request)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)


@transaction.atomic
def api_token_revoke(*, token: APIToken) -> bool:
    """Revoke `token`; every process stops accepting it (its cached identity is dropped here
    at once, in the other processes within a second). False if it was already revoked."""
    now = timezone.now()
    revoked = APIToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        token.revoked_at = now
        if token.tenant_id is not None:
            audit_record(
                tenant=token.tenant_id,
                kind="key.revoked",
                object=_label(token),
                changes={"revoked_at": now.isoformat()},
            )
    transaction.on_commit(invalidate)
    return bool(revoked)
