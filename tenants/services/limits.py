"""A tenant's limits and alert webhook: token quota and window, budget, RPM, TPM, the
webhook URL (checked by the SSRF guard) and its secret (stored encrypted, never shown).

Enforcement lives in usage and the gateway; this is where the settings are written, by the
API (/api/v1/tenant/limits), the admin's tenant page and commands alike, each change audited.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.db import transaction

from providers import netguard
from ragllm.errors import InvalidInput

from ..models import Tenant
from .audit import audit_diff, audit_record
from .tenants import tenant_lock
from .tokens import MAX_BIGINT, MAX_INT, UNSET, limit_budget, limit_int, limit_window

logger = logging.getLogger(__name__)

# Audit kind of each field.
_KINDS = {
    "token_quota": "quota.changed",
    "quota_window": "quota.changed",
    "unlimited": "quota.changed",
    "budget": "budget.changed",
    "rpm": "limits.changed",
    "tpm": "limits.changed",
    "alert_webhook_url": "webhook.changed",
    "alert_webhook_secret": "webhook.changed",
}
LIMIT_FIELDS = tuple(_KINDS)
MAX_SECRET = 512


def _invalid(field: str, message: str) -> InvalidInput:
    error = InvalidInput(message)
    error.field = field
    return error


def tenant_webhook_check_url(*, url: str) -> str:
    """The webhook URL as stored ("" for none); refused when it is not http(s) or points where
    the service may not call (the hosted factories' policy: public addresses and
    LLM_HOSTED_ALLOWED_NETWORKS). Where it points is never described to the caller."""
    url = (url or "").strip()
    if not url:
        return ""
    longest = Tenant._meta.get_field("alert_webhook_url").max_length
    if len(url) > longest:
        raise _invalid(
            "alert_webhook_url", f"alert_webhook_url is longer than {longest} characters."
        )
    try:
        with contextlib.suppress(netguard.UnresolvedHostError):
            netguard.policy_named(netguard.HOSTED).check_url(url, resolve_host=True)
    except netguard.InvalidURLError as exc:
        raise _invalid("alert_webhook_url", f"alert_webhook_url is not allowed: {exc}") from None
    except netguard.BlockedAddressError as exc:
        logger.warning("alert webhook URL refused: %s", exc)
        raise _invalid(
            "alert_webhook_url",
            "alert_webhook_url is not allowed: it is outside the networks this service may call.",
        ) from None
    return url


def _secret(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_SECRET:
        raise _invalid(
            "alert_webhook_secret",
            f"alert_webhook_secret must be text of at most {MAX_SECRET} characters.",
        )
    return value.strip()


def tenant_limits_check(**values: Any) -> dict[str, Any]:
    """The given settings, checked and normalized (UNSET ones left out)."""
    checks = {
        "token_quota": lambda v: limit_int("token_quota", v, MAX_BIGINT),
        "quota_window": limit_window,
        "unlimited": bool,
        "budget": limit_budget,
        "rpm": lambda v: limit_int("rpm", v, MAX_INT),
        "tpm": lambda v: limit_int("tpm", v, MAX_INT),
        "alert_webhook_url": lambda v: tenant_webhook_check_url(url=v or ""),
        "alert_webhook_secret": _secret,
    }
    out = {}
    for name, value in values.items():
        if name not in checks:
            raise ValueError(f"unknown tenant limit {name!r}")
        if value is not UNSET:
            out[name] = checks[name](value)
    return out


@transaction.atomic
def tenant_limits_set(*, tenant: Tenant, **values: Any) -> Tenant:
    """Set some of the tenant's limits and webhook settings; one audit entry per kind changed."""
    fields = tenant_limits_check(**values)
    tenant_lock(tenant_id=tenant.pk)
    tenant.refresh_from_db(fields=LIMIT_FIELDS)
    before = {name: getattr(tenant, name) for name in fields}
    for name, value in fields.items():
        setattr(tenant, name, value)
    changes = audit_diff(before, fields, secrets=("alert_webhook_secret",))
    if not changes:
        return tenant
    tenant.save(update_fields=[*changes, "updated_at"])  # post_save: caches invalidated
    by_kind: dict[str, dict[str, Any]] = {}
    for name, change in changes.items():
        by_kind.setdefault(_KINDS[name], {})[name] = change
    for kind, kind_changes in by_kind.items():
        audit_record(tenant=tenant, kind=kind, object=f"Tenant {tenant.name}", changes=kind_changes)
    return tenant
