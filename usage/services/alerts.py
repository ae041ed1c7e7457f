"""Alerts at 50, 80 and 100 % of a quota or budget, and their signed webhooks.

A counter's settlement says which thresholds it crossed (atomically, in Redis or in the
database row); `alerts_fire` makes one `Alert` row per threshold and window (a unique
constraint: a second firing anywhere changes nothing), logs it, and once the transaction
commits queues `usage.tasks.deliver_alert_webhook` with the alert's id when the tenant has a
webhook. The task POSTs JSON to Tenant.alert_webhook_url, checked by the SSRF guard
(ALERT_WEBHOOK_ALLOWED_NETWORKS) at send time, signed with HMAC-SHA256 over
`<timestamp>.<body>` with the tenant's secret; each attempt is a `WebhookDelivery` row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction

from tenants.models import Tenant

from ..models import Alert, WebhookDelivery
from ..quotas import ALERT_PERCENTS, COST, QuotaRule, amount_text, from_units, window_name

logger = logging.getLogger(__name__)

DELIVER_TASK = "usage.tasks.deliver_alert_webhook"
SIGNATURE_HEADER = "X-Ragllm-Signature"
TIMESTAMP_HEADER = "X-Ragllm-Timestamp"
WEBHOOK_TIMEOUT_SECONDS = 10.0


def alerts_fire(
    *, rule: QuotaRule, start: datetime, used: int, levels: Iterable[int]
) -> list[Alert]:
    """One alert per threshold level (1-3) of `rule` in the window starting at `start`; a
    threshold that already fired in this window is skipped. Returns the new alerts."""
    fired = []
    what = "budget" if rule.kind == COST else "token quota"
    for level in levels:
        percent = ALERT_PERCENTS[level - 1]
        message = (
            f"{rule.label} has used {percent} % of its {what}: {amount_text(rule, used)} of "
            f"{amount_text(rule, rule.quota)} {window_name(rule.window)}"
        )
        if not rule.tenant_id:
            logger.warning("quota alert: %s", message)
            continue
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    tenant_id=rule.tenant_id,
                    scope=rule.scope,
                    scope_id=rule.scope_id,
                    label=rule.label[:300],
                    window=rule.window,
                    window_start=start,
                    percent=percent,
                    limit=rule.quota,
                    used=used,
                    message=message,
                )
        except IntegrityError:
            continue  # fired already (another process, or the other path)
        logger.warning("quota alert: %s", message)
        fired.append(alert)
        transaction.on_commit(lambda pk=alert.pk, tenant=rule.tenant_id: _queue(pk, tenant))
    return fired


def _queue(alert_id: int, tenant_id: str) -> None:
    url = Tenant.objects.filter(pk=tenant_id).values_list("alert_webhook_url", flat=True).first()
    if not url:
        return
    from ragllm.celery import app as celery_app

    celery_app.tasks[DELIVER_TASK].delay(alert_id)


def alert_payload(alert: Alert) -> dict:
    """The webhook's JSON body."""
    is_cost = alert.scope in ("tenant_budget", "key_budget")
    value = (lambda n: str(from_units(n))) if is_cost else (lambda n: n)
    return {
        "type": "quota.alert",
        "alert_id": alert.pk,
        "tenant_id": alert.tenant_id.hex,
        "scope": alert.scope,
        "scope_id": alert.scope_id,
        "label": alert.label,
        "kind": "budget_usd" if is_cost else "tokens",
        "percent": alert.percent,
        "limit": value(alert.limit),
        "used": value(alert.used),
        "window": alert.window,
        "window_start": alert.window_start.isoformat(),
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
    }


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def alert_webhook_deliver(*, alert_id: int, attempt: int) -> bool | None:
    """POST one alert to its tenant's webhook, logging the attempt. True: delivered; False:
    failed, worth retrying; None: nothing to do or not retryable (no URL, refused address)."""
    import httpx

    from providers.netguard import WEBHOOK, BlockedAddressError, install_guard, policy_named

    alert = Alert.objects.select_related("tenant").filter(pk=alert_id).first()
    if alert is None or not alert.tenant.alert_webhook_url:
        return None
    url = alert.tenant.alert_webhook_url
    body = json.dumps(alert_payload(alert), separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ragllm-alerts/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(
            secret=alert.tenant.alert_webhook_secret or "", timestamp=timestamp, body=body
        ),
    }
    delivery = WebhookDelivery(alert=alert, attempt=attempt, url=url[:512])
    policy = policy_named(WEBHOOK)
    try:
        policy.check_url(url, resolve_host=True)
        transport = httpx.HTTPTransport()
        install_guard(transport, policy)
        with httpx.Client(
            transport=transport, timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False
        ) as client:
            response = client.post(url, content=body, headers=headers)
        delivery.status_code = response.status_code
        delivery.ok = 200 <= response.status_code < 300
        if not delivery.ok:
            delivery.error = f"HTTP {response.status_code}"
    except BlockedAddressError as exc:
        delivery.error = f"refused by the network policy: {exc}"[:500]
        delivery.save()
        logger.warning("alert %s webhook not sent: %s", alert_id, delivery.error)
        return None
    except (httpx.HTTPError, OSError) as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"[:500]
    delivery.save()
    if not delivery.ok:
        logger.warning("alert %s webhook attempt %d failed: %s", alert_id, attempt, delivery.error)
    return delivery.ok
