"""Tenants, their members, and each tenant's model configurations (TenantLLM)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from providers.models import LLMFactory, max_tokens_field
from providers.types import ModelType

from .fields import encrypted_text_field


class Status(models.TextChoices):
    """RAGFlow's status column: "1" for a valid (enabled) row, "0" for an invalid one."""

    VALID = "1", "Valid"
    INVALID = "0", "Invalid"


class QuotaWindow(models.TextChoices):
    """The calendar period a token quota counts over, in QUOTA_TIME_ZONE."""

    NONE = "none", "No window (lifetime)"
    DAILY = "daily", "Calendar day"
    MONTHLY = "monthly", "Calendar month"


class Tenant(models.Model):
    id = models.UUIDField("ID", primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=128)
    status = models.CharField(max_length=1, choices=Status.choices, default=Status.VALID)
    # The tenant's default model per type, as RAGFlow names them ("gpt-4o@OpenAI").
    llm_id = models.CharField("default chat model", max_length=256, blank=True, default="")
    embd_id = models.CharField("default embedding model", max_length=256, blank=True, default="")
    rerank_id = models.CharField("default rerank model", max_length=256, blank=True, default="")
    img2txt_id = models.CharField(
        "default image-to-text model", max_length=256, blank=True, default=""
    )
    asr_id = models.CharField(
        "default speech-to-text model", max_length=256, blank=True, default=""
    )
    tts_id = models.CharField(
        "default text-to-speech model", max_length=256, blank=True, default=""
    )
    ocr_id = models.CharField("default OCR model", max_length=256, blank=True, default="")
    token_quota = models.BigIntegerField(
        null=True, blank=True, help_text="Token allowance for all models together; empty: none."
    )
    quota_window = models.CharField(
        max_length=16, choices=QuotaWindow.choices, default=QuotaWindow.MONTHLY
    )
    unlimited = models.BooleanField(default=False, help_text="Bypass every quota.")
    # Limits for all of the tenant's calls together (issue 11); empty: none.
    rpm = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True, help_text="Empty: no limit."
    )
    tpm = models.PositiveIntegerField(
        "tokens per minute", null=True, blank=True, help_text="Empty: no limit."
    )
    budget = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Spend allowance in US dollars per quota window (catalog prices); empty: none.",
    )
    # Alerts at 50/80/100 % of quotas and budgets are POSTed here, signed with the secret.
    alert_webhook_url = models.CharField(
        "alert webhook URL", max_length=512, blank=True, default=""
    )
    alert_webhook_secret = encrypted_text_field(
        verbose_name="alert webhook secret", blank=True, default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    DEFAULT_FIELDS: dict[str, str] = {
        ModelType.CHAT: "llm_id",
        ModelType.EMBEDDING: "embd_id",
        ModelType.RERANK: "rerank_id",
        ModelType.IMAGE2TEXT: "img2txt_id",
        ModelType.SPEECH2TEXT: "asr_id",
        ModelType.TTS: "tts_id",
        ModelType.OCR: "ocr_id",
    }

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(token_quota__isnull=True) | models.Q(token_quota__gte=0),
                name="tenant_token_quota_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def default_model(self, model_type: str) -> str:
        return getattr(self, self.DEFAULT_FIELDS[model_type])


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    NORMAL = "normal", "Normal"
    INVITE = "invite", "Invited"


class TenantMember(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.NORMAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="tenantmember_unique_user"),
        ]
        indexes = [
            # "Which tenants may this user act for, and as what?" on every request.
            models.Index(fields=["user", "role"], name="tenantmember_user_role_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class ValidationStatus(models.TextChoices):
    """A configuration's last verdict from a live test call (not a validation task's progress)."""

    UNKNOWN = "unknown", "Not validated"
    PENDING = "pending", "Validating"
    VALID = "valid", "Valid"
    FAILED = "failed", "Failed"


class TenantLLM(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="llms")
    factory = models.ForeignKey(LLMFactory, on_delete=models.PROTECT, related_name="tenant_llms")
    llm_name = models.CharField("LLM name", max_length=128)
    model_type = models.CharField(max_length=32, choices=ModelType.choices)
    # Encrypted at rest with CREDENTIALS_ENCRYPTION_KEY. Holds a plain key, or the JSON object
    # of the factories whose credentials have several fields (kept as JSON text inside).
    api_key = encrypted_text_field(verbose_name="API key", blank=True, default="")
    api_base = models.CharField("API base", max_length=512, blank=True, default="")
    max_tokens = max_tokens_field(default=8192)
    # Whether the model can call tools (agents read it). None: not said, the catalog model's
    # flag applies (False for models the catalog does not list).
    is_tools = models.BooleanField(null=True, blank=True, default=None)
    used_tokens = models.BigIntegerField(default=0)
    token_quota = models.BigIntegerField(
        null=True, blank=True, help_text="Token allowance for this model; empty means none."
    )
    quota_window = models.CharField(
        max_length=16, choices=QuotaWindow.choices, default=QuotaWindow.MONTHLY
    )
    status = models.CharField(max_length=1, choices=Status.choices, default=Status.VALID)
    validation_status = models.CharField(
        max_length=16, choices=ValidationStatus.choices, default=ValidationStatus.UNKNOWN
    )
    validated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "factory__name", "llm_name"]
        verbose_name = "tenant model config"
        verbose_name_plural = "tenant model configs"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "factory", "llm_name"],
                name="tenantllm_unique_tenant_factory_name",
            ),
            models.CheckConstraint(
                condition=models.Q(used_tokens__gte=0), name="tenantllm_used_tokens_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(token_quota__isnull=True) | models.Q(token_quota__gte=0),
                name="tenantllm_token_quota_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(max_tokens__gte=0), name="tenantllm_max_tokens_non_negative"
            ),
        ]
        indexes = [
            # LLMBundle resolution and GET /llm/my_llms: a tenant's enabled models of one type.
            models.Index(
                fields=["tenant", "model_type", "status"], name="tenantllm_tenant_type_idx"
            ),
            # Resolving a bare model name within a tenant.
            models.Index(fields=["tenant", "llm_name"], name="tenantllm_tenant_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.llm_name}@{self.factory.name} ({self.tenant})"


TOKEN_SCOPES = ("manage", "invoke")


def default_token_scopes() -> list[str]:
    return list(TOKEN_SCOPES)


class APIToken(models.Model):
    """A personal API token, sent as `Authorization: Bearer <token>`.

    Only a short prefix (to find the row) and a SHA-256 hash of the whole token are stored; the
    token itself is shown once, when it is issued. Tokens are long random strings, so a fast
    hash is enough (there is nothing to brute-force as with passwords).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    # An application key is bound to one tenant; a personal token (tenant empty) acts for any
    # tenant its user belongs to (X-Tenant-ID).
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="api_tokens"
    )
    name = models.CharField(max_length=128, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    # "manage": /api/v1/llm, tenant and usage routes; "invoke": the /v1 gateway.
    scopes = models.JSONField(default=default_token_scopes)
    # Allowed models, "name@factory" or "*@factory"; empty: every model of the tenant.
    allowed_models = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    rpm = models.PositiveIntegerField("requests per minute", null=True, blank=True)
    tpm = models.PositiveIntegerField("tokens per minute", null=True, blank=True)
    token_quota = models.BigIntegerField(null=True, blank=True)
    budget = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    quota_window = models.CharField(
        max_length=16, choices=QuotaWindow.choices, default=QuotaWindow.MONTHLY
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class ValidationKind(models.TextChoices):
    SET_API_KEY = "set_api_key", "Set API key"
    ADD_LLM = "add_llm", "Add model"


class ValidationState(models.TextChoices):
    """The progress of one KeyValidation task."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # A newer request for the same configuration came in first: this one saved nothing.
    SUPERSEDED = "superseded", "Superseded"
    # Not finished by its deadline (no worker took it, or its worker stopped): nothing saved.
    EXPIRED = "expired", "Expired"


ACTIVE_VALIDATION_STATES = (ValidationState.PENDING, ValidationState.RUNNING)


def validation_deadline() -> datetime:
    """When a validation requested now expires: time to wait for a worker, then to run."""
    return timezone.now() + timedelta(
        seconds=settings.KEY_VALIDATION_QUEUE_SECONDS + settings.KEY_VALIDATION_TIME_LIMIT
    )


class KeyValidation(models.Model):
    """One request to validate credentials by live calls, run by a Celery task.

    The candidate key waits here, encrypted, while the task runs: the task receives only this
    row's id, so no key ever travels through the broker. It is wiped when the task finishes.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="validations")
    kind = models.CharField(max_length=16, choices=ValidationKind.choices)
    factory = models.ForeignKey(LLMFactory, on_delete=models.CASCADE, related_name="+")
    llm_name = models.CharField("LLM name", max_length=128, blank=True, default="")
    model_type = models.CharField(max_length=32, choices=ModelType.choices, blank=True, default="")
    api_key = encrypted_text_field(verbose_name="API key", blank=True, default="")
    api_base = models.CharField("API base", max_length=512, blank=True, default="")
    max_tokens = max_tokens_field(null=True, blank=True)
    is_tools = models.BooleanField(null=True, blank=True, default=None)
    verify_only = models.BooleanField(default=False)
    state = models.CharField(
        max_length=16, choices=ValidationState.choices, default=ValidationState.PENDING
    )
    message = models.TextField(blank=True, default="")
    # One entry per model tried: {"model", "model_type", "ok", "error_code", "message"}.
    attempts = models.JSONField(default=list, blank=True)
    # Models of a set_api_key request that a newer add_llm request took over: this request
    # leaves their configurations alone (only the newest request for a model is applied).
    superseded_models = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who asked, for the audit entry written when the key is applied (by the worker, later):
    # {"source", "address", "token_id", "user_id", "label"}.
    requested_via = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A worker claims the request only while it can still finish before this; after it, the
    # request ends "expired" and its candidate key is wiped.
    expires_at = models.DateTimeField(default=validation_deadline)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # GET /llm/tasks/<id> is by primary key; this serves the admin's per-tenant list.
            models.Index(fields=["tenant", "-created_at"], name="keyvalidation_tenant_idx"),
            # The expiry job: pending or running validations past their deadline.
            models.Index(fields=["state", "expires_at"], name="keyvalidation_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.factory_id} {self.llm_name} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state not in ACTIVE_VALIDATION_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == ValidationState.SUCCEEDED


class AuditSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Command"
    SYSTEM = "system", "System"


class AuditEntry(models.Model):
    """One change of a tenant's credentials, models, defaults, limits, keys, members or webhook.

    Written in the same transaction as the change (tenants.services.audit). `changes` holds
    field names and masked values only: keys as `sk-...abcd`, secrets as "set"/"cleared".
    Actors are kept as ids and a label, not foreign keys, so rows outlive users and tokens.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_entries")
    actor_user_id = models.IntegerField(null=True, blank=True)
    actor_token_id = models.IntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=48)
    object = models.CharField(max_length=300, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True)
    source = models.CharField(
        max_length=16, choices=AuditSource.choices, default=AuditSource.SYSTEM
    )
    client_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="auditentry_tenant_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object}"
