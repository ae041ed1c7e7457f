"""The usage ledger (one event per call), its hourly and daily rollups, and quota counters."""

from __future__ import annotations

from django.db import models

from providers.types import ModelType
from tenants.models import Tenant, TenantLLM


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    # A stream its caller stopped reading before the end (e.g. a gateway client hung up).
    ABANDONED = "abandoned", "Abandoned"


# The counters of every rollup row, in the order reports show them; the ledger adds to them,
# the daily rollup sums them, selectors, CSV and admin lists read them.
ROLLUP_SUMS = ("calls", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost")


class _Usage(models.Model):
    """What a call or a group of calls used, and of which model of which tenant."""

    # No foreign-key constraint in the database (the ledger's hot path: a deferred check per
    # inserted row would cost more than the row). The ledger writer keeps the rows' tenants
    # alive itself: it joins the live tenants and holds a key-share lock on them until its
    # batch commits; a tenant's deletion cascades through the ORM and then purges what a
    # writer committed meanwhile (usage.signals).
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    factory = models.CharField(max_length=128)
    llm_name = models.CharField("LLM name", max_length=128)
    model_type = models.CharField(max_length=32, choices=ModelType.choices)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)

    class Meta:
        abstract = True


class UsageEvent(_Usage):
    """One model call. `request_id` makes recording idempotent: a replayed event is skipped."""

    request_id = models.UUIDField("request ID")
    # The configuration that served the call, as recorded: like token_id, its id stays after
    # the configuration is deleted (no index for a deletion to update through: history).
    tenant_llm = models.ForeignKey(
        TenantLLM,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    estimated = models.BooleanField(default=False)
    latency_ms = models.IntegerField("latency (ms)", default=0)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OK)
    error_code = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(help_text="When the call was made.")
    # The tenants.APIToken that made the call through the gateway (None: LLMBundle called
    # from inside). A plain integer: no foreign key out of the partitioned table, and a
    # revoked or deleted key keeps its history.
    token_id = models.IntegerField("API token ID", null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Exactly once: a replayed record (same id, same time) is skipped. On PostgreSQL
            # the table is partitioned by day of created_at, which every unique key must hold.
            models.UniqueConstraint(
                fields=["request_id", "created_at"], name="usageevent_unique_request"
            ),
            models.CheckConstraint(
                condition=models.Q(total_tokens__gte=0), name="usageevent_tokens_non_negative"
            ),
        ]
        indexes = [
            # A tenant's raw events in a time range: the admin's event list of one tenant and
            # usage_event_totals. (Usage sums, API and admin pages, read the rollups.)
            models.Index(fields=["tenant", "created_at"], name="usageevent_tenant_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.llm_name}@{self.factory} {self.total_tokens} tokens ({self.request_id})"


# A rollup's token_id when the calls came through no API token (a key column: never NULL, so
# that the upsert's unique key matches on every backend).
NO_TOKEN = 0


class _Rollup(_Usage):
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    token_id = models.IntegerField("API token ID", default=NO_TOKEN, help_text="0: no API token.")

    class Meta:
        abstract = True


class UsageHourly(_Rollup):
    """Per tenant x factory x model x type x API token and UTC hour; counters only ever grow
    by upsert."""

    bucket = models.DateTimeField(help_text="Start of the UTC hour.")

    class Meta:
        ordering = ["-bucket"]
        verbose_name = "hourly usage"
        verbose_name_plural = "hourly usage"
        indexes = [
            # All tenants over a time range: the hours around whole days on the admin's
            # dashboard (top tenants, totals by type), and the daily rollup's repair.
            models.Index(fields=["bucket"], name="usagehourly_bucket_idx"),
        ]
        constraints = [
            # The ledger's upsert key; its tenant prefix serves one tenant's hours over a range.
            models.UniqueConstraint(
                fields=["tenant", "bucket", "factory", "llm_name", "model_type", "token_id"],
                name="usagehourly_unique_bucket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H}h {self.llm_name}@{self.factory}"


class UsageDaily(_Rollup):
    """Per tenant x factory x model x type x API token and UTC day: whole days of a range.

    The ledger adds to it in the same transaction as to the hourly rows, so it is as exact and
    as fresh; the daily rollup recomputes recent days from the hourly rows (a repair).
    """

    day = models.DateField()

    class Meta:
        ordering = ["-day"]
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        constraints = [
            # The ledger's upsert key; its tenant prefix serves one tenant's days over a range
            # (GET /api/v1/usage, the admin's tenant page).
            models.UniqueConstraint(
                fields=["tenant", "day", "factory", "llm_name", "model_type", "token_id"],
                name="usagedaily_unique_day",
            ),
        ]
        indexes = [
            # All tenants over a range of days: the admin's dashboard (top tenants, totals).
            models.Index(fields=["day"], name="usagedaily_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.llm_name}@{self.factory}"


class QuotaScope(models.TextChoices):
    TENANT = "tenant", "Tenant (all models)"
    CONFIG = "config", "Model configuration"
    KEY = "key", "Application key"
    TENANT_BUDGET = "tenant_budget", "Tenant budget"
    KEY_BUDGET = "key_budget", "Application key budget"


class QuotaCounter(models.Model):
    """Spent (settled plus reserved) in one window of one rule: tokens, or for a budget units of
    10^-8 dollars. The database path of quotas (no QUOTA_REDIS_URL, or Redis down).

    Reservations and settlements are single conditional UPDATEs on this row, so concurrent
    calls cannot both take the last of a window. A row is created seeded from the ledger; the
    limit is part of its key, so a changed quota starts from the ledger again.
    """

    scope = models.CharField(max_length=16, choices=QuotaScope.choices)
    scope_id = models.CharField("scope ID", max_length=64)
    limit = models.BigIntegerField(default=0)
    window_start = models.DateTimeField()
    used = models.BigIntegerField(default=0)
    # How many of the 50/80/100 % alerts this window has fired (usage.quotas.ALERT_PERCENTS).
    alerted = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "scope_id", "limit", "window_start"],
                name="quotacounter_unique_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.scope_id} since {self.window_start:%Y-%m-%d}: {self.used}"


class Alert(models.Model):
    """A quota or budget passed 50, 80 or 100 % in one window: at most one row per threshold
    (the unique constraint makes firing idempotent across processes)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=16, choices=QuotaScope.choices)
    scope_id = models.CharField("scope ID", max_length=64)
    label = models.CharField(max_length=300)
    window = models.CharField(max_length=16)
    window_start = models.DateTimeField()
    percent = models.PositiveSmallIntegerField()
    limit = models.BigIntegerField()
    used = models.BigIntegerField()
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "scope_id", "limit", "window_start", "percent"],
                name="alert_unique_threshold",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "created_at"], name="alert_tenant_time_idx")]

    def __str__(self) -> str:
        return self.message


class WebhookDelivery(models.Model):
    """One attempt to POST an alert to its tenant's webhook."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    url = models.CharField("URL", max_length=512)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"alert {self.alert_id} attempt {self.attempt}: {self.status_code or self.error}"
