import re

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from ragllm.admin import EMPTY, name_and_id, number, short_id, shortened
from ragllm.celery import worker_available
from ragllm.errors import ApplicationError

from .admin_keys import issued_tokens_page
from .fields import CredentialsUnreadable
from .forms import TenantForm, TenantLLMForm
from .masking import mask_credentials
from .models import (
    KeyValidation,
    QuotaWindow,
    Tenant,
    TenantLLM,
    TenantMember,
    ValidationState,
)
from .selectors import tenant_llm_defaults_among
from .services.configs import tenant_llm_delete, tenant_llm_delete_configs
from .services.key_validation import VALIDATE_TASK, tenant_llm_request_revalidation
from .services.members import tenant_member_remove, tenant_member_save
from .services.tokens import api_token_issue


@admin.display(description="API key")
def masked_key(obj: TenantLLM) -> str:
    """The stored key as the admin may show it (never the key itself)."""
    try:
        return mask_credentials(obj.api_key) if obj.pk else ""
    except CredentialsUnreadable:
        return "cannot be decrypted: wrong CREDENTIALS_ENCRYPTION_KEY (set the key again)"


_FAILED_PREFIX = re.compile(r"^Fail to access \w+ model\((.*?)\) using this api key: ", re.M)


@admin.display(description="tenant", ordering="tenant__name")
def tenant_short(obj) -> str:
    return name_and_id(obj.tenant.name, obj.tenant.pk)


@admin.display(description="used tokens", ordering="used_tokens")
def used(obj: TenantLLM) -> str:
    return number(obj.used_tokens)


@admin.display(description="token quota", ordering="token_quota")
def quota(obj: TenantLLM) -> str:
    if obj.token_quota is None:
        return EMPTY
    per = {QuotaWindow.DAILY: "a day", QuotaWindow.MONTHLY: "a month"}
    return f"{number(obj.token_quota)} {per.get(obj.quota_window, 'in all')}"


@admin.display(description="enabled", boolean=True, ordering="status")
def enabled(obj: TenantLLM) -> bool:
    return obj.status == "1"


@admin.display(description="validation", ordering="validation_status")
def validation(obj: TenantLLM) -> str:
    """The last verdict, with its date (and the error on hover when it failed)."""
    verdict = obj.get_validation_status_display()
    when = f" {obj.validated_at:%Y-%m-%d}" if obj.validated_at else ""
    if obj.last_error:
        return format_html('<span title="{}">{}{}</span>', obj.last_error, verdict, when)
    return f"{verdict}{when}"


class TenantLLMInline(admin.TabularInline):
    """The tenant's model configs, read-only and compact: each links to its own page, where
    it is edited through the same services as the API (key validation included)."""

    model = TenantLLM
    extra = 0
    can_delete = False
    fields = (
        "model_link",
        "factory",
        "model_type",
        "masked_key",
        "api_base",
        "used",
        "quota",
        "enabled",
        "validation",
    )
    readonly_fields = fields
    verbose_name = "model config"
    verbose_name_plural = "model configs"

    masked_key = staticmethod(masked_key)
    used = staticmethod(used)
    quota = staticmethod(quota)
    enabled = staticmethod(enabled)
    validation = staticmethod(validation)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("factory")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # added from the model configs page, with validation

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="LLM name")
    def model_link(self, obj: TenantLLM) -> str:
        url = reverse("admin:tenants_tenantllm_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.llm_name)


class TenantMemberInline(admin.TabularInline):
    model = TenantMember
    extra = 0
    autocomplete_fields = ("user",)


def save_members(formset) -> None:
    """An inline formset of members, saved through the members service (audited)."""
    for member in formset.save(commit=False):
        tenant_member_save(member=member)
    for member in formset.deleted_objects:
        tenant_member_remove(member=member)


def report_validation(request, validation: KeyValidation | None, *, new: bool = False) -> None:
    """Say what a save set off: a validation of new credentials, and whether a worker runs."""
    if validation is None:
        return
    url = reverse("admin:tenants_keyvalidation_change", args=[validation.pk])
    what = (
        "is created once its credentials are proven"
        if new
        else "keeps its stored credentials and shows “Validating” until the new ones are proven"
    )
    messages.info(
        request,
        format_html(
            '{} / {}: the configuration {} (<a href="{}">validation</a>).',
            validation.llm_name,
            validation.factory.name,
            what,
            url,
        ),
    )
    if not worker_available(VALIDATE_TASK):
        messages.warning(
            request,
            "No Celery worker answered: the validation waits for one and expires if none "
            "takes it in time (start one: celery -A ragllm worker).",
        )


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ("name", "short_id", "status", "llm_id", "embd_id", "created")
    list_filter = ("status",)
    search_fields = ("name", "id", "members__user__email", "members__user__username")
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = (TenantMemberInline, TenantLLMInline)
    fieldsets = (
        (None, {"fields": ("id", "name", "status")}),
        (
            "Quota, budget and limits",
            {"fields": ("token_quota", "quota_window", "unlimited", "budget", "rpm", "tpm")},
        ),
        (
            "Alerts",
            {
                "fields": (
                    "alert_webhook_url",
                    "alert_webhook_secret",
                    "clear_alert_webhook_secret",
                )
            },
        ),
        (
            "Default models",
            {
                "fields": (
                    "llm_id",
                    "embd_id",
                    "rerank_id",
                    "img2txt_id",
                    "asr_id",
                    "tts_id",
                    "ocr_id",
                )
            },
        ),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )

    def save_model(self, request, obj: Tenant, form: TenantForm, change: bool) -> None:
        form.apply(obj)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is TenantMember:
            save_members(formset)
        else:
            super().save_formset(request, form, formset, change)

    @admin.display(description="ID", ordering="id")
    def short_id(self, obj: Tenant) -> str:
        return short_id(obj.pk)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Tenant) -> str:
        return f"{obj.created_at:%Y-%m-%d}"

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            add = reverse("admin:tenants_tenantllm_add")
            context["add_model_config_url"] = f"{add}?tenant={obj.pk}"
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)


@admin.register(TenantMember)
class TenantMemberAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "user__username", "tenant__name")
    list_select_related = ("user", "tenant")
    autocomplete_fields = ("user", "tenant")

    def save_model(self, request, obj: TenantMember, form, change: bool) -> None:
        tenant_member_save(member=obj)

    def delete_model(self, request, obj: TenantMember) -> None:
        tenant_member_remove(member=obj)

    def delete_queryset(self, request, queryset) -> None:
        for member in queryset.select_related("user"):
            tenant_member_remove(member=member)


@admin.register(TenantLLM)
class TenantLLMAdmin(admin.ModelAdmin):
    form = TenantLLMForm
    list_display = (
        "llm_name",
        "factory",
        "tenant_short",
        "model_type",
        "masked_key",
        "used",
        "quota",
        "enabled",
        "validation",
    )
    list_filter = ("model_type", "status", "validation_status", "factory")
    search_fields = ("llm_name", "factory__name", "tenant__name", "tenant__id")
    list_select_related = ("factory", "tenant")
    autocomplete_fields = ("tenant", "factory")
    readonly_fields = (
        "masked_key",
        "used_tokens",
        "validation_status",
        "validated_at",
        "last_error",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("tenant", "factory", "llm_name", "model_type", "status", "is_tools")}),
        ("Credentials", {"fields": ("masked_key", "api_key", "api_base")}),
        (
            "Limits and usage",
            {"fields": ("max_tokens", "token_quota", "quota_window", "used_tokens")},
        ),
        ("Validation", {"fields": ("validation_status", "validated_at", "last_error")}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )

    masked_key = staticmethod(masked_key)
    tenant_short = staticmethod(tenant_short)
    used = staticmethod(used)
    quota = staticmethod(quota)
    enabled = staticmethod(enabled)
    validation = staticmethod(validation)

    actions = ("validate_now", "delete_selected")

    # A new configuration is what add_llm takes; its limits, quota and status are edited once
    # it exists (it is created when its key is proven).
    add_fieldsets = (
        (None, {"fields": ("tenant", "factory", "llm_name", "model_type", "is_tools")}),
        ("Credentials", {"fields": ("api_key", "api_base")}),
        ("Limits", {"fields": ("max_tokens",)}),
    )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def save_model(self, request, obj: TenantLLM, form: TenantLLMForm, change: bool) -> None:
        form.apply(user=request.user)
        report_validation(request, form.validation, new=not change)

    def log_addition(self, request, obj, message):
        # A new configuration is created by its validation, not by this save.
        if obj.pk is not None:
            return super().log_addition(request, obj, message)
        return None

    def response_add(self, request, obj: TenantLLM, post_url_continue=None):
        if obj.pk is None:
            return HttpResponseRedirect(reverse("admin:tenants_keyvalidation_changelist"))
        return super().response_add(request, obj, post_url_continue)

    # --- Deleting goes through delete_llm's service: a tenant's default model is refused ---

    def get_deleted_objects(self, objs, request):
        """A tenant's default model shows as what blocks the deletion, on the confirmation
        page (its own or "delete selected"'s), before anything is posted."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        configs = list(objs)
        by_tenant: dict[object, list[TenantLLM]] = {}
        for config in configs:
            by_tenant.setdefault(config.tenant_id, []).append(config)
        for group in by_tenant.values():
            tenant = group[0].tenant
            for name, model_type in tenant_llm_defaults_among(tenant=tenant, configs=group):
                protected.append(
                    f"{name} is the default {model_type} model of tenant {tenant.name}: "
                    "choose another default first."
                )
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj: TenantLLM) -> None:
        tenant_llm_delete(tenant=obj.tenant, factory=obj.factory, llm_name=obj.llm_name)

    def delete_queryset(self, request, queryset) -> None:
        tenant_llm_delete_configs(configs=queryset.select_related("tenant", "factory"))

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:  # refused meanwhile (a default set since the page)
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(permissions=["delete"], description="Delete selected model configs")
    def delete_selected(self, request, queryset):
        # Django's confirmation page and deletion (through delete_queryset), all or nothing.
        try:
            with transaction.atomic():
                return django_delete_selected(self, request, queryset)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return None

    @admin.action(description="Validate now (live test call on the worker)")
    def validate_now(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        tenant_llm_request_revalidation(config_ids=ids)
        self.message_user(
            request, f"Validation of {len(ids)} configuration(s) was queued.", messages.SUCCESS
        )


@admin.register(KeyValidation)
class KeyValidationAdmin(admin.ModelAdmin):
    list_display = ("short_id", "tenant_short", "what", "state", "created", "outcome")
    list_filter = ("state", "kind")
    search_fields = ("tenant__name", "factory__name", "llm_name", "id")
    list_select_related = ("tenant", "factory")
    exclude = ("api_key",)
    readonly_fields = [
        f.name for f in KeyValidation._meta.get_fields() if f.concrete and f.name != "api_key"
    ]

    tenant_short = staticmethod(tenant_short)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A record of what was asked and what came of it: the services end it (and wipe its
        # key), the beat job expires it; nobody deletes or edits it by hand.
        return False

    @admin.display(description="ID", ordering="id")
    def short_id(self, obj: KeyValidation) -> str:
        return short_id(obj.pk)

    @admin.display(description="request", ordering="factory__name")
    def what(self, obj: KeyValidation) -> str:
        target = f"{obj.llm_name}@{obj.factory.name}" if obj.llm_name else obj.factory.name
        verify = ", verify only" if obj.verify_only else ""
        return f"{obj.get_kind_display()}: {target}{verify}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: KeyValidation) -> str:
        return f"{obj.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="outcome")
    def outcome(self, obj: KeyValidation) -> str:
        """One line: why it failed, what it saved, or what it is waiting for."""
        if obj.state == ValidationState.FAILED:
            # "Fail to access chat model(gpt-4o) using this api key: why. Details" as
            # "gpt-4o: why."; the whole message shows on hover.
            summary = _FAILED_PREFIX.sub(r"\1: ", obj.message).strip()
            summary = re.split(r"(?<=\.)\s", summary, maxsplit=1)[0]
            return shortened(summary, 90, whole=obj.message)
        if obj.state == ValidationState.SUCCEEDED:
            return "The key works (nothing saved)." if obj.verify_only else "Validated and saved."
        if obj.state == ValidationState.RUNNING:
            return "Testing the key with live calls…"
        if obj.state == ValidationState.PENDING:
            return "Waiting for a worker…"
        return shortened(obj.message, 90)


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class RagllmUserAdmin(UserAdmin):
    actions = ("issue_api_token",)

    @admin.action(description="Issue API token (shown once)")
    def issue_api_token(self, request, queryset) -> TemplateResponse:
        # The raw tokens go into this one response body only: never a message (a cookie or the
        # session), never a log. The page must not be cached either.
        issued = [
            (user, api_token_issue(user=user, name=f"admin:{request.user.get_username()}")[1])
            for user in queryset
        ]
        return issued_tokens_page(request, self, issued)
