from django import forms
from django.contrib import admin

from .credentials import mask_credentials
from .models import Tenant, TenantLLM, TenantMember


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
        )

    def clean_api_key(self) -> str:
        value = self.cleaned_data.get("api_key") or ""
        if not value and self.instance.pk:
            return TenantLLM.objects.only("api_key").get(pk=self.instance.pk).api_key
        return value


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

    @admin.display(description="API key")
    def masked_key(self, obj: TenantLLM) -> str:
        return mask_credentials(obj.api_key) if obj.pk else ""


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
        ("Limits and usage", {"fields": ("max_tokens", "token_quota", "used_tokens")}),
        ("Validation", {"fields": ("validation_status", "validated_at", "last_error")}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="API key")
    def masked_key(self, obj: TenantLLM) -> str:
        return mask_credentials(obj.api_key) if obj.pk else ""
