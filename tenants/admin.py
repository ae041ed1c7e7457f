from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from .fields import CredentialsUnreadable
from .masking import mask_credentials
from .models import APIToken, KeyValidation, Tenant, TenantLLM, TenantMember
from .services.configs import tenant_llm_save
from .services.key_validation import tenant_llm_request_revalidation
from .services.tenants import tenant_save
from .services.tokens import api_token_issue, api_token_revoke


@admin.display(description="API key")
def masked_key(obj: TenantLLM) -> str:
    """The stored key as the admin may show it (never the key itself)."""
    try:
        return mask_credentials(obj.api_key) if obj.pk else ""
    except CredentialsUnreadable:
        return "cannot be decrypted: wrong CREDENTIALS_ENCRYPTION_KEY (set the key again)"


class TenantLLMForm(forms.ModelForm):
    # The stored key is never sent to the browser: the field starts empty, and leaving it
    # empty on edit keeps the stored key.
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="A plain key, or the JSON object of multi-field credentials. "
        "Leave blank to keep the stored key.",
    )

    class Meta:
        model = TenantLLM
        fields = (
            "tenant",
            "factory",
            "llm_name",
            "model_type",
            "status",
            "api_key",
            "api_base",
            "max_tokens",
            "token_quota",
            "quota_window",
        )

    @property
    def keeps_stored_key(self) -> bool:
        return not self.cleaned_data.get("api_key")

    def save(self, commit: bool = True) -> TenantLLM:
        # Inline rows are saved here; the TenantLLM page saves through save_model below.
        config = super().save(commit=False)
        if commit:
            tenant_llm_save(config=config, keep_stored_key=self.keeps_stored_key)
            self._save_m2m()
        return config


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


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
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

    def save_model(self, request, obj: Tenant, form, change: bool) -> None:
        tenant_save(tenant=obj)


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

    def save_model(self, request, obj: TenantLLM, form: TenantLLMForm, change: bool) -> None:
        tenant_llm_save(config=obj, keep_stored_key=form.keeps_stored_key)

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
