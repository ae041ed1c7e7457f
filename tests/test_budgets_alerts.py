"""Budgets in money and alerts at 50/80/100 % with signed webhooks (issue 11)."""

import hashlib
import hmac
import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.bundle import LLMBundle
from providers.errors import QuotaExceededError
from tenants.models import Tenant
from tenants.resolution import invalidate
from usage.models import Alert, WebhookDelivery
from usage.quotas import tenant_budget_rule, tenant_rule, to_units
from usage.selectors.quotas import quota_used
from usage.services.alerts import alert_webhook_deliver
from usage.services.quotas import quota_reserve, quota_settle

HISTORY = [{"role": "user", "content": "Hi"}]
SECRET = "whsec-test-0001"


@pytest.fixture(autouse=True)
def _fresh():
    invalidate(broadcast=False)


class Receiver:
    """A loopback HTTP server that records what it is sent and answers `statuses` in turn."""

    def __init__(self, statuses=(200,)):
        self.requests = []
        self.statuses = list(statuses)
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.requests.append((dict(self.headers), body))
                    receiver.arrived.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/ragllm"

    def wait_for(self, count, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count and time.monotonic() < deadline:
                self.arrived.wait(0.1)
        return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def with_webhook(tenant, url, **fields):
    tenant = Tenant.objects.get(pk=tenant.pk)
    tenant.alert_webhook_url = url
    tenant.alert_webhook_secret = SECRET
    for name, value in fields.items():
        setattr(tenant, name, value)
    tenant.save()
    invalidate()
    return tenant


def signature_ok(headers, body):
    timestamp = headers["X-Ragllm-Timestamp"]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-Ragllm-Signature"], "sha256=" + mac.hexdigest())


def test_a_budget_refuses_a_call_before_the_provider_and_settles_the_real_cost(
    tenant, chat_config, fake_provider
):
    # gpt-4o-mini: $0.15 / $0.60 per million tokens; a call uses 12 + 6 tokens.
    tenant = with_webhook(tenant, "", budget=Decimal("0.0001"))
    bundle = LLMBundle(tenant.pk, "chat")
    bundle.chat(HISTORY, gen_conf={"max_tokens": 10})
    real = Decimal(12) * Decimal("0.15") / 10**6 + Decimal(6) * Decimal("0.60") / 10**6
    assert quota_used(rule=tenant_budget_rule(tenant)) == to_units(real)  # 540 units
    sent = len(fake_provider.requests)
    # 1,000 completion tokens at $0.60 per million could cost $0.0006: over the budget.
    with pytest.raises(QuotaExceededError, match=r"budget of tenant .* exceeded: \$0.0000054"):
        bundle.chat(HISTORY, gen_conf={"max_tokens": 1000})
    assert len(fake_provider.requests) == sent


@pytest.mark.django_db(transaction=True)
def test_each_threshold_alerts_once_with_a_signed_webhook(tenant, receiver, tasks):
    tenant = with_webhook(tenant, receiver.url, token_quota=100, quota_window="daily")
    rule = tenant_rule(tenant)
    for _ in range(10):  # 10 x 10 tokens: passes 50, 80 and 100 % once each
        quota_settle(reservation=quota_reserve(rules=(rule,), tokens=10), actual_tokens=10)
    received = receiver.wait_for(3)
    assert len(received) == 3
    bodies = [json.loads(body) for _, body in received]
    assert sorted(b["percent"] for b in bodies) == [50, 80, 100]
    assert all(signature_ok(headers, body) for headers, body in received)
    assert {b["tenant_id"] for b in bodies} == {tenant.pk.hex}
    assert {(b["kind"], b["limit"], b["window"]) for b in bodies} == {("tokens", 100, "daily")}
    assert sorted(Alert.objects.values_list("percent", flat=True)) == [50, 80, 100]
    # Delivered once each, logged.
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.filter(ok=True).count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert WebhookDelivery.objects.filter(ok=True, status_code=200).count() == 3
    # Nothing fires twice in the window, whatever else is spent or given back.
    with pytest.raises(QuotaExceededError):
        quota_reserve(rules=(rule,), tokens=1)
    quota_settle(reservation=quota_reserve(rules=(rule,), tokens=0), actual_tokens=0)
    time.sleep(0.5)
    assert len(receiver.requests) == 3
    assert Alert.objects.count() == 3


def test_a_budget_alerts_in_dollars(tenant, django_capture_on_commit_callbacks):
    tenant = with_webhook(tenant, "", budget=Decimal("1.00"))
    rule = tenant_budget_rule(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        quota_settle(
            reservation=quota_reserve(rules=(rule,), tokens=0, cost_units=to_units("0.6")),
            actual_tokens=0,
            actual_cost_units=to_units("0.55"),
        )
    alert = Alert.objects.get()
    assert alert.percent == 50
    assert alert.message.endswith("has used 50 % of its budget: $0.55 of $1 this month")


def test_a_failed_delivery_is_logged_and_retried(tenant):
    failing = Receiver(statuses=(500, 200))
    try:
        tenant = with_webhook(tenant, failing.url, token_quota=10)
        rule = tenant_rule(tenant)
        quota_settle(reservation=quota_reserve(rules=(rule,), tokens=6), actual_tokens=6)
        alert = Alert.objects.get()
        assert alert_webhook_deliver(alert_id=alert.pk, attempt=1) is False
        assert alert_webhook_deliver(alert_id=alert.pk, attempt=2) is True
        log = list(
            WebhookDelivery.objects.order_by("attempt").values_list(
                "attempt", "status_code", "ok", "error"
            )
        )
        assert log == [(1, 500, False, "HTTP 500"), (2, 200, True, "")]
    finally:
        failing.close()


def test_a_webhook_address_the_policy_refuses_is_never_called(tenant, receiver, settings):
    settings.ALERT_WEBHOOK_ALLOWED_NETWORKS = []  # production's default: public addresses only
    tenant = with_webhook(tenant, receiver.url, token_quota=10)
    quota_settle(reservation=quota_reserve(rules=(tenant_rule(tenant),), tokens=6), actual_tokens=6)
    alert = Alert.objects.get()
    assert alert_webhook_deliver(alert_id=alert.pk, attempt=1) is None  # not retried
    delivery = WebhookDelivery.objects.get()
    assert delivery.error.startswith("refused by the network policy") and not delivery.ok
    assert receiver.requests == []


def test_alerts_and_their_deliveries_show_in_the_admin(tenant, client, superuser, receiver):
    from django.urls import reverse

    client.force_login(superuser)
    tenant = with_webhook(tenant, receiver.url, token_quota=10)
    quota_settle(reservation=quota_reserve(rules=(tenant_rule(tenant),), tokens=6), actual_tokens=6)
    alert = Alert.objects.get()
    alert_webhook_deliver(alert_id=alert.pk, attempt=1)
    message = "has used 50 % of its token quota: 6 tokens of 10 tokens this month"
    page = client.get(reverse("admin:usage_tenant", args=[tenant.pk])).content.decode()
    assert message in page
    listing = client.get(reverse("admin:usage_alert_changelist")).content.decode()
    assert message in listing and "delivered" in listing
    detail = client.get(reverse("admin:usage_alert_change", args=[alert.pk])).content.decode()
    assert receiver.url in detail and ">200<" in detail
    deliveries = client.get(reverse("admin:usage_webhookdelivery_changelist"))
    assert deliveries.status_code == 200 and receiver.url in deliveries.content.decode()
