"""The usage ledger in the admin: read-only lists, plus a usage dashboard and a page per tenant.

Nothing here writes: events, rollups and counters change only through the ledger and quota
services. The two pages read the rollups (exact and fresh) through usage.selectors and
draw their charts with the Chart.js copy under static/vendor/chartjs/ (no CDN); the numbers
reach the page through `json_script`, never through JavaScript built from strings.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ragllm.admin import name_and_id, number, short_id, usd
from tenants.models import APIToken, Tenant
from tenants.selectors import tenant_find

from .models import (
    ROLLUP_SUMS,
    Alert,
    QuotaCounter,
    UsageDaily,
    UsageEvent,
    UsageHourly,
    WebhookDelivery,
)
from .reporting import Period, parse_period
from .selectors.quotas import quota_status
from .selectors.sums import NO_TOKEN_KEY, top_tenants, usage_series, usage_summary

TOP_TENANTS = 20
# A tenant's page charts one point per day: a bounded page, whatever period is asked for.
CHART_MAX_DAYS = 731


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by services only: no add, change or delete from the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _sum_column(field: str):
    """A list column for one of the rollup sums: a count with separators, or the cost in USD."""

    @admin.display(description=field.replace("_tokens", "").replace("_", " "), ordering=field)
    def column(obj) -> str:
        value = getattr(obj, field)
        return usd(value) if field == "cost" else number(value)

    column.__name__ = field
    return column


@admin.display(description="tenant", ordering="tenant__name")
def tenant_column(obj) -> str:
    return name_and_id(obj.tenant.name, obj.tenant_id)


@admin.display(description="model", ordering="llm_name")
def model_column(obj) -> str:
    return f"{obj.llm_name}@{obj.factory}"


SUM_COLUMNS = tuple(_sum_column(field) for field in ROLLUP_SUMS)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created",
        tenant_column,
        model_column,
        "model_type",
        *(column for column in SUM_COLUMNS if column.__name__ not in {"calls", "errors"}),
        "latency",
        "result",
    )
    list_filter = ("outcome", "model_type", "estimated", "created_at")
    search_fields = ("=request_id", "tenant__name", "=tenant__id", "llm_name", "factory")
    list_select_related = ("tenant",)
    # The events table is the largest one: no second COUNT(*) over all of it per page.
    show_full_result_count = False

    @admin.display(description="when (UTC)", ordering="created_at")
    def created(self, obj: UsageEvent) -> str:
        return f"{obj.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: UsageEvent) -> str:
        return f"{number(obj.latency_ms)}\u00a0ms"

    @admin.display(description="outcome", ordering="outcome")
    def result(self, obj: UsageEvent) -> str:
        outcome = obj.get_outcome_display()
        outcome = f"{outcome}: {obj.error_code}" if obj.error_code else outcome
        return f"{outcome} (estimated)" if obj.estimated else outcome


class RollupAdmin(ReadOnlyAdmin):
    list_filter = ("model_type",)
    search_fields = ("tenant__name", "=tenant__id", "llm_name", "factory")
    list_select_related = ("tenant",)


@admin.register(UsageHourly)
class UsageHourlyAdmin(RollupAdmin):
    list_display = ("hour", tenant_column, model_column, "model_type", *SUM_COLUMNS)

    @admin.display(description="hour (UTC)", ordering="bucket")
    def hour(self, obj: UsageHourly) -> str:
        return f"{obj.bucket.astimezone(UTC):%Y-%m-%d %H:00}"


@admin.register(QuotaCounter)
class QuotaCounterAdmin(ReadOnlyAdmin):
    list_display = (
        "scope",
        "scope_short",
        "window_start",
        "limit_shown",
        "used_tokens",
        "alerted",
        "updated_at",
    )
    list_filter = ("scope", "alerted")
    search_fields = ("=scope_id",)

    @admin.display(description="scope ID", ordering="scope_id")
    def scope_short(self, obj: QuotaCounter) -> str:
        return short_id(obj.scope_id)

    @admin.display(description="used", ordering="used")
    def used_tokens(self, obj: QuotaCounter) -> str:
        return number(obj.used)

    @admin.display(description="limit", ordering="limit")
    def limit_shown(self, obj: QuotaCounter) -> str:
        return number(obj.limit)


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ("created_at", "attempt", "url", "status_code", "ok", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Quota and budget alerts (50, 80, 100 %), one per threshold and window."""

    list_display = ("created_at", tenant_column, "scope", "percent", "message", "delivered")
    list_filter = ("scope", "percent")
    list_select_related = ("tenant",)
    inlines = [DeliveryInline]

    @admin.display(description="webhook")
    def delivered(self, obj: Alert) -> str:
        last = obj.deliveries.order_by("-created_at").first()
        if last is None:
            return "-"
        return "delivered" if last.ok else f"failed ({last.status_code or last.error[:40]})"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Every attempt to POST an alert to a tenant's webhook."""

    list_display = ("created_at", "alert", "attempt", "url", "status_code", "ok", "error")
    list_filter = ("ok",)
    list_select_related = ("alert",)


@admin.register(UsageDaily)
class UsageDailyAdmin(RollupAdmin):
    list_display = ("day", tenant_column, model_column, "model_type", *SUM_COLUMNS)

    def get_urls(self):
        # Before the default routes: "<path:object_id>/" would take them otherwise.
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="usage_dashboard",
            ),
            path(
                "tenant/<uuid:tenant_id>/",
                self.admin_site.admin_view(self.tenant_view),
                name="usage_tenant",
            ),
            *super().get_urls(),
        ]

    # --- Pages ----------------------------------------------------------------------------

    def _period(self, request, *, max_days: int | None = None) -> Period:
        try:
            period = parse_period(request.GET.get("from"), request.GET.get("to"))
        except ValueError as exc:
            messages.error(request, f"{exc}. Showing the last 30 days.")
            return parse_period(None, None)
        if max_days is not None and period.end - period.start > timedelta(days=max_days):
            messages.error(
                request, f"The chart shows at most {max_days} days. Showing the last 30 days."
            )
            return parse_period(None, None)
        return period

    def _require_view(self, request) -> None:
        # admin_view() already sent non-staff to the login page; staff need the view right.
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _context(self, request, period: Period, title: str) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "period": period,
            "first_day": period.start.date(),
            "last_day": (period.end - timedelta(microseconds=1)).date(),
            "dashboard_url": reverse("admin:usage_dashboard"),
        }

    def dashboard_view(self, request):
        self._require_view(request)
        ref = request.GET.get("tenant", "").strip()
        if ref:
            found = tenant_find(ref=ref)
            if found is not None:
                return redirect("admin:usage_tenant", tenant_id=found.pk)
            messages.error(request, f"No tenant matches {ref!r} (id, owner email or name).")
        period = self._period(request)
        context = self._context(request, period, "Usage dashboard")
        tenants = top_tenants(start=period.start, end=period.end, limit=TOP_TENANTS)
        totals = usage_summary(tenant=None, start=period.start, end=period.end, group_by="type")
        context |= {
            "tenants": [
                {
                    "name": item.name,
                    "usage": item.usage,
                    "cost": usd(item.usage.cost),
                    "url": reverse("admin:usage_tenant", args=[item.tenant_id]),
                }
                for item in tenants
            ],
            "top": TOP_TENANTS,
            "totals": totals.totals,
            "totals_cost": usd(totals.totals.cost),
            "by_type": [(row, usd(row.cost)) for row in totals.rows],
            "chart": {
                "kind": "tenants",
                "labels": [item.name for item in tenants],
                "tokens": [item.usage.total_tokens for item in tenants],
                "cost": [float(item.usage.cost) for item in tenants],
            },
        }
        return TemplateResponse(request, "admin/usage/dashboard.html", context)

    def tenant_view(self, request, tenant_id):
        self._require_view(request)
        tenant = get_object_or_404(Tenant, pk=tenant_id)
        period = self._period(request, max_days=CHART_MAX_DAYS)
        context = self._context(request, period, f"Usage of {tenant.name}")
        series = usage_series(tenant=tenant, start=period.start, end=period.end)
        by_model = usage_summary(
            tenant=tenant, start=period.start, end=period.end, group_by="model"
        )
        by_token = usage_summary(
            tenant=tenant, start=period.start, end=period.end, group_by="token"
        )
        token_names = _token_labels([row.key for row in by_token.rows])
        context |= {
            "tenant": tenant,
            "tenant_change_url": reverse("admin:tenants_tenant_change", args=[tenant.pk]),
            "quota": quota_status(tenant=tenant),
            "alerts": list(Alert.objects.filter(tenant=tenant).order_by("-created_at")[:20]),
            "rows": [(day, row, usd(row.cost)) for day, row in series.rows],
            "by_model": [(row, usd(row.cost)) for row in by_model.rows],
            "by_token": [(token_names[row.key], row, usd(row.cost)) for row in by_token.rows],
            "totals": by_model.totals,
            "totals_cost": usd(by_model.totals.cost),
            "chart": {
                "kind": "tenant",
                "days": [day.isoformat() for day in series.days],
                "models": [
                    {
                        "label": model,
                        "tokens": series.tokens[model],
                        "cost": [float(c) for c in series.cost[model]],
                    }
                    for model in series.models
                ],
                "cost": [float(c) for c in series.cost_per_day],
            },
        }
        return TemplateResponse(request, "admin/usage/tenant.html", context)


def _token_labels(keys: list[str]) -> dict[str, str]:
    """What the spend-per-key table calls each group_by=token key: the key's name and prefix
    (and its user), "deleted key #id" for one that no longer exists."""
    ids = [int(key) for key in keys if key.isdigit()]
    found = {
        str(pk): f"{name or 'unnamed'} ({prefix}\u2026, {username})"
        for pk, name, prefix, username in APIToken.objects.filter(pk__in=ids).values_list(
            "pk", "name", "prefix", "user__username"
        )
    }
    return {
        key: "No API key (called in-process)"
        if key == NO_TOKEN_KEY
        else found.get(key, f"deleted key #{key}")
        for key in keys
    }
