from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from ragllm.celery import worker_available

from .fields import CredentialsUnreadable
from .forms import TenantForm, TenantLLMForm
from .masking import mask_credentials
from .models import APIToken, KeyValidation, Tenant, TenantLLM, TenantMember
from .services.key_validation import VALIDATE_TASK, tenant_llm_request_revalidation
from .services.tokens import api_token_issue, api_token_revoke


@admin.display(description="API key")
def masked_key(obj: TenantLLM) -> str:
    """The stored key as the admin may show it (never the key itself)."""
    try:
        return mask_credentials(obj.api_key) if obj.pk else ""
    except CredentialsUnreadable:
        return "cannot be decrypted: wrong CREDENTIALS_ENCRYPTION_KEY (set the key again)"


class TenantLLMInline(admin.TabularInline):
    model = TenantLLM
    form = TenantLLMForm
    extra = 0
    fields = (
        "factory",
        "llm_name",
        "model_type",
        "masked_key",
        "api_base",
        "max_tokens",
        "used_tokens",
        "token_quota",
        "status",
        "validation_status",
    )
    readonly_fields = ("masked_key", "used_tokens", "validation_status")
    show_change_link = True
    autocomplete_fields = ("factory",)

    masked_key = staticmethod(masked_key)


class TenantMemberInline(admin.TabularInline):
    model = TenantMember
    extra = 0
    autocomplete_fields = ("user",)


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
    list_display = ("name", "id", "status", "llm_id", "embd_id", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "id", "members__user__email", "members__user__username")
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = (TenantMemberInline, TenantLLMInline)
    fieldsets = (
        (None, {"fields": ("id", "name", "status")}),
        ("Quota", {"fields": ("token_quota", "quota_window", "unlimited")}),
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

    def save_formset(self, request, form, formset, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        for inline_form in formset.forms:
            if isinstance(inline_form, TenantLLMForm):
                report_validation(
                    request, inline_form.validation, new=inline_form.instance.pk is None
                )


@admin.register(TenantMember)
class TenantMemberAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "user__username", "tenant__name")
    list_select_related = ("user", "tenant")
    autocomplete_fields = ("user", "tenant")


@admin.register(TenantLLM)
class TenantLLMAdmin(admin.ModelAdmin):
    form = TenantLLMForm
    list_display = (
        "llm_name",
        "factory",
        "tenant",
        "model_type",
        "masked_key",
        "used_tokens",
        "token_quota",
        "status",
        "validation_status",
        "validated_at",
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
        (None, {"fields": ("tenant", "factory", "llm_name", "model_type", "status")}),
        ("Credentials", {"fields": ("masked_key", "api_key", "api_base")}),
        (
            "Limits and usage",
            {"fields": ("max_tokens", "token_quota", "quota_window", "used_tokens")},
        ),
        ("Validation", {"fields": ("validation_status", "validated_at", "last_error")}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )

    masked_key = staticmethod(masked_key)

    actions = ("validate_now",)

    # A new configuration is what add_llm takes; its limits, quota and status are edited once
    # it exists (it is created when its key is proven).
    add_fieldsets = (
        (None, {"fields": ("tenant", "factory", "llm_name", "model_type")}),
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

    @admin.action(description="Validate now (live test call on the worker)")
    def validate_now(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        tenant_llm_request_revalidation(config_ids=ids)
        self.message_user(
            request, f"Validation of {len(ids)} configuration(s) was queued.", messages.SUCCESS
        )


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__email", "user__username", "name")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = readonly_fields
    actions = ("revoke",)

    def has_add_permission(self, request) -> bool:
        return False  # issued from the user list ("Issue API token") so it can be shown once

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, "Tokens revoked.", messages.SUCCESS)


@admin.register(KeyValidation)
class KeyValidationAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "kind", "factory", "llm_name", "state", "created_at")
    list_filter = ("state", "kind")
    search_fields = ("tenant__name", "factory__name", "llm_name", "id")
    list_select_related = ("tenant", "factory")
    exclude = ("api_key",)
    readonly_fields = [
        f.name for f in KeyValidation._meta.get_fields() if f.concrete and f.name != "api_key"
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


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
        opts = self.model._meta
        response = TemplateResponse(
            request,
            "admin/tenants/api_token_issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": opts,
                "issued": issued,
                "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
            },
        )
        add_never_cache_headers(response)
        return response
