"""The admin of API tokens (personal tokens and application keys) and of the audit log.

An application key is created here through the same service as POST /api/v1/tokens; its
token is shown once, on a page of its own (the "Issue API token" page), never in a message,
a cookie or a log. Its settings are edited through api_token_update; revoking goes through
api_token_revoke. The audit log is read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from ragllm.admin import EMPTY, name_and_id, shortened
from ragllm.errors import ApplicationError

from .models import TOKEN_SCOPES, APIToken, AuditEntry, Role, TenantMember
from .services.tokens import (
    api_token_check_settings,
    api_token_create,
    api_token_revoke,
    api_token_update,
)

_SETTINGS = ("name", "scopes", "models", "expires_at", "rpm", "tpm", "token_quota", "budget")
_SETTINGS += ("quota_window",)


class ApplicationKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in TOKEN_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=list(TOKEN_SCOPES),
        help_text="manage: the /api/v1 routes; invoke: the /v1 gateway.",
    )
    models = forms.CharField(
        label="allowed models",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: name@factory or *@factory. Empty: every model of the tenant.",
    )

    class Meta:
        model = APIToken
        fields = ("tenant", "user", *_SETTINGS[:1], "expires_at", "rpm", "tpm")
        fields += ("token_quota", "budget", "quota_window")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True
        if "user" in self.fields:
            self.fields["user"].required = False
            self.fields[
                "user"
            ].help_text = "The member whose access the key uses; empty: the tenant's owner."
        if "tenant" in self.fields:
            self.fields["tenant"].required = True
        if self.instance.pk:
            self.initial["scopes"] = list(self.instance.scopes or ())
            self.initial["models"] = "\n".join(self.instance.allowed_models or ())

    def settings(self) -> dict:
        data = self.cleaned_data
        values = {name: data.get(name) for name in _SETTINGS if name != "models"}
        values["models"] = [line.strip() for line in (data.get("models") or "").splitlines()]
        values["models"] = [entry for entry in values["models"] if entry]
        return values

    def clean(self) -> dict:
        data = super().clean()
        tenant = data.get("tenant") or self.instance.tenant
        if tenant is None or self.errors:
            return data
        try:
            api_token_check_settings(tenant=tenant, **self.settings())
        except ApplicationError as exc:
            field = getattr(exc, "field", None)
            self.add_error(field if field in self.fields else None, exc.message)
        if not self.instance.pk:
            owner = TenantMember.objects.filter(tenant=tenant, role=Role.OWNER).first()
            user = data.get("user") or (owner.user if owner else None)
            if user is None or not TenantMember.objects.filter(tenant=tenant, user=user).exists():
                self.add_error("user", "Choose a member of the tenant.")
            data["user"] = user
        return data


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "short_name", "tenant_or_personal", "short_user", "scope_list")
    list_display += ("expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__email", "user__username", "name", "tenant__name")
    list_select_related = ("user", "tenant")
    autocomplete_fields = ("tenant", "user")
    form = ApplicationKeyForm
    actions = ("revoke",)
    _info = ("prefix", "created_at", "last_used_at", "revoked_at")

    def has_change_permission(self, request, obj=None) -> bool:
        # Personal tokens and revoked keys have nothing to edit: their page is read-only.
        if obj is not None and (obj.tenant_id is None or obj.revoked_at is not None):
            return False
        return super().has_change_permission(request, obj)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("tenant", "user", *_SETTINGS)
        if obj.tenant_id is None or obj.revoked_at is not None:
            return ("user", "name", "prefix", "scopes_shown", *self._info[1:])
        return ("tenant_shown", "user_shown", *_SETTINGS, *self._info)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.tenant_id is None or obj.revoked_at is not None:
            return ("user", "name", "prefix", "scopes_shown", *self._info[1:])
        return ("tenant_shown", "user_shown", *self._info)

    @admin.display(description="tenant")
    def tenant_or_personal(self, obj: APIToken) -> str:
        return name_and_id(obj.tenant.name, obj.tenant.pk) if obj.tenant_id else "personal"

    @admin.display(description="name", ordering="name")
    def short_name(self, obj: APIToken) -> str:
        return shortened(obj.name, 40) if obj.name else EMPTY

    @admin.display(description="user", ordering="user__username")
    def short_user(self, obj: APIToken) -> str:
        return shortened(obj.user.get_username(), 28)

    @admin.display(description="scopes")
    def scope_list(self, obj: APIToken) -> str:
        return ", ".join(obj.scopes or ()) or EMPTY

    @admin.display(description="scopes")
    def scopes_shown(self, obj: APIToken) -> str:
        return self.scope_list(obj)

    @admin.display(description="tenant")
    def tenant_shown(self, obj: APIToken) -> str:
        return self.tenant_or_personal(obj)

    @admin.display(description="user")
    def user_shown(self, obj: APIToken) -> str:
        return obj.user.get_username()

    def save_model(self, request, obj: APIToken, form: ApplicationKeyForm, change: bool) -> None:
        if change:
            fresh = APIToken.objects.select_related("tenant").get(pk=obj.pk)
            api_token_update(token=fresh, **form.settings())
            return
        token, raw = api_token_create(
            user=form.cleaned_data["user"], tenant=form.cleaned_data["tenant"], **form.settings()
        )
        obj.pk = token.pk
        request._ragllm_issued = [(token.user, raw)]  # this response only

    def response_add(self, request, obj: APIToken, post_url_continue=None):
        issued = getattr(request, "_ragllm_issued", None)
        if not issued:
            return super().response_add(request, obj, post_url_continue)
        return issued_tokens_page(request, self, issued)

    def log_addition(self, request, obj, message):
        return None  # the key is audited by its service (the admin's log needs the object)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset.select_related("tenant"):
            api_token_revoke(token=token)
        self.message_user(request, "Tokens revoked.", messages.SUCCESS)


def issued_tokens_page(request, model_admin, issued) -> TemplateResponse:
    """The one page that shows new tokens: never cached, never in a message or a cookie."""
    opts = model_admin.model._meta
    response = TemplateResponse(
        request,
        "admin/tenants/api_token_issued.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": opts,
            "issued": issued,
            "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        },
    )
    add_never_cache_headers(response)
    return response


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "tenant_short", "kind", "object", "actor_label", "source")
    list_display += ("client_address",)
    list_filter = ("kind", "source")
    search_fields = ("tenant__name", "tenant__id", "object", "actor_label")
    list_select_related = ("tenant",)
    date_hierarchy = "created_at"

    @admin.display(description="tenant", ordering="tenant__name")
    def tenant_short(self, obj: AuditEntry) -> str:
        return name_and_id(obj.tenant.name, obj.tenant.pk)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    # Entries go only with their tenant: deleting a tenant in the admin deletes them (so the
    # permission stays), but there is no delete page, action or button of their own.
    actions = None

    def delete_view(self, request, object_id, extra_context=None):
        raise PermissionDenied

    def render_change_form(self, request, context, *args, **kwargs):
        context["show_delete"] = False
        return super().render_change_form(request, context, *args, **kwargs)
