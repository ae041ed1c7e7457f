"""The admin's forms for tenants and model configurations.

They hold no rules of their own: `clean()` runs the services' checks (so a refused base URL or
key shows on its field) and saving goes through the same services as the API. A changed key or
base URL is validated by the same Celery task as add_llm before it replaces the stored one.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from ragllm.errors import ApplicationError, MissingArguments

from .models import KeyValidation, Tenant, TenantLLM
from .selectors import tenant_default_model_choices, tenant_llm_find_enabled
from .services.configs import tenant_llm_check_edit, tenant_llm_edit
from .services.credential_input import credential_input_from_text
from .services.key_requests import tenant_llm_check_model, tenant_llm_request_model
from .services.limits import LIMIT_FIELDS, MAX_SECRET, tenant_limits_check, tenant_limits_set
from .services.tenants import tenant_default_models_set, tenant_save


def _add_service_error(form: forms.BaseForm, exc: ApplicationError) -> None:
    """Show a service's refusal on the field it is about, or above the form."""
    field = getattr(exc, "field", None)
    if isinstance(exc, MissingArguments):
        field = next((name for name in exc.names if name in form.fields), None)
    form.add_error(field if field in form.fields else None, exc.message)


class TenantLLMForm(forms.ModelForm):
    # The stored key is never sent to the browser: the field starts empty, and leaving it
    # empty on edit keeps the stored key.
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="A plain key, or the JSON object of multi-field credentials. Leave blank to "
        "keep the stored key. A new key (or base URL) is validated by a live call before it "
        "replaces the stored one.",
    )

    # add_llm's is_tools: whether the model may be sent tools; unset, the catalog says.
    is_tools = forms.NullBooleanField(
        label="Tools (function calling)",
        required=False,
        widget=forms.NullBooleanSelect(),
        help_text="Whether agents may send this model tools. “As the catalog says” follows "
        "the catalog's flag for the model (no for a model the catalog does not list).",
    )

    class Meta:
        model = TenantLLM
        fields = (
            "tenant",
            "factory",
            "llm_name",
            "model_type",
            "status",
            "is_tools",
            "api_key",
            "api_base",
            "max_tokens",
            "token_quota",
            "quota_window",
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "is_tools" in self.fields:
            self.fields["is_tools"].widget.choices = [
                ("unknown", "As the catalog says"),
                ("true", "Yes"),
                ("false", "No"),
            ]
        # The validation the last save requested, if any (the admin links to it).
        self.validation: KeyValidation | None = None
        if self.instance.pk:
            # Which tenant, factory and model a stored key belongs to never changes: moving
            # it would send the key somewhere it was not given for.
            for name in ("tenant", "factory", "llm_name"):
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[name].help_text = "Fixed once created."

    def clean(self) -> dict:
        data = super().clean()
        if self.errors or not self.has_changed():
            return data
        try:
            if self.instance.pk:
                tenant_llm_check_edit(
                    config=self.instance,
                    api_key=data.get("api_key") or "",
                    api_base=self._value("api_base"),
                    model_type=self._value("model_type"),
                    status=self._value("status"),
                )
            else:
                self._check_new(data)
        except ApplicationError as exc:
            _add_service_error(self, exc)
        return data

    def _check_new(self, data: dict) -> None:
        tenant = data.get("tenant")
        if tenant is None or tenant.pk is None:
            raise ApplicationError("Save the tenant first, then add its model configurations.")
        tenant_llm_check_model(**self._new_model_request())

    def _new_model_request(self) -> dict:
        """The add_llm request a new configuration is (its key typed as one text)."""
        data = self.cleaned_data
        key, fields = credential_input_from_text(
            factory=data["factory"].name, text=data.get("api_key") or ""
        )
        return {
            "tenant": data["tenant"],
            "factory": data["factory"],
            "llm_name": data["llm_name"],
            "model_type": data["model_type"],
            "api_base": data.get("api_base") or "",
            "api_key": key,
            "fields": fields,
        }

    def _value(self, name: str):
        """The value given for `name`, or the stored one when this form does not show it."""
        if name in self.fields:
            value = self.cleaned_data.get(name)
            return "" if value is None and name == "api_base" else value
        return getattr(self.instance, name)

    def save(self, commit: bool = True) -> TenantLLM:
        # The TenantLLM page saves through `apply` (TenantLLMAdmin.save_model, which knows the
        # user); a form saved on its own (commit=True) goes through `apply` too. The tenant
        # page lists configs read-only, so no inline row is ever saved through here.
        config = super().save(commit=False)
        return self.apply() if commit else config

    def apply(self, *, user: AbstractBaseUser | None = None) -> TenantLLM:
        """Save through the services. A new configuration exists once its key is proven."""
        data = self.cleaned_data
        if self.instance.pk is None:
            self.validation = tenant_llm_request_model(
                **self._new_model_request(),
                max_tokens=data.get("max_tokens"),
                is_tools=data.get("is_tools"),
                user=user,
            )
            return self.instance
        self.validation = tenant_llm_edit(
            config=self.instance,
            api_key=data.get("api_key") or "",
            api_base=self._value("api_base"),
            model_type=self._value("model_type"),
            max_tokens=self._value("max_tokens"),
            token_quota=self._value("token_quota"),
            quota_window=self._value("quota_window"),
            status=self._value("status"),
            is_tools=self._value("is_tools"),
            user=user,
        )
        return TenantLLM.objects.select_related("factory", "tenant").get(pk=self.instance.pk)


class TenantForm(forms.ModelForm):
    """A tenant; its default models are chosen among its enabled models of each type; its
    limits and webhook are saved through tenant_limits_set (checked, audited)."""

    # Write-only: the stored secret is never sent to the browser.
    alert_webhook_secret = forms.CharField(
        label="alert webhook secret",
        required=False,
        strip=True,
        max_length=MAX_SECRET,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs the alerts (HMAC-SHA256). Leave blank to keep the stored one.",
    )
    clear_alert_webhook_secret = forms.BooleanField(
        label="clear the webhook secret", required=False
    )

    class Meta:
        model = Tenant
        fields = (
            "name",
            "status",
            "token_quota",
            "quota_window",
            "unlimited",
            "budget",
            "rpm",
            "tpm",
            "alert_webhook_url",
            *Tenant.DEFAULT_FIELDS.values(),
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.alert_webhook_secret:
            secret = self.fields["alert_webhook_secret"]
            secret.help_text = "A secret is set (never shown): type a new one, or leave blank."
        choices = (
            tenant_default_model_choices(tenant=self.instance)
            if self.instance.pk
            else {model_type: [] for model_type in Tenant.DEFAULT_FIELDS}
        )
        for model_type, name in Tenant.DEFAULT_FIELDS.items():
            if name not in self.fields:
                continue
            options = [("", "(none)"), *((n, n) for n in choices[model_type])]
            current = getattr(self.instance, name)
            if current and current not in choices[model_type]:
                options.append((current, f"{current} (not an enabled {model_type} model)"))
            self.fields[name] = forms.ChoiceField(
                label=self.fields[name].label,
                choices=options,
                required=False,
                help_text=f"One of the tenant's enabled {model_type} models.",
            )

    def changed_limits(self) -> dict:
        """The limit and webhook fields changed on the form (the secret: only when typed, or
        cleared with its box)."""
        limits = {
            name: self.cleaned_data.get(name)
            for name in LIMIT_FIELDS
            if name in self.changed_data and name in self.fields
        }
        if "alert_webhook_url" in limits:
            limits["alert_webhook_url"] = limits["alert_webhook_url"] or ""
        secret = self.cleaned_data.get("alert_webhook_secret") or ""
        if self.cleaned_data.get("clear_alert_webhook_secret"):
            limits["alert_webhook_secret"] = ""
        elif secret:
            limits["alert_webhook_secret"] = secret
        else:
            limits.pop("alert_webhook_secret", None)
        return limits

    def changed_defaults(self) -> dict[str, str]:
        return {
            name: self.cleaned_data.get(name) or ""
            for name in Tenant.DEFAULT_FIELDS.values()
            if name in self.changed_data
        }

    def clean(self) -> dict:
        data = super().clean()
        by_field = {name: model_type for model_type, name in Tenant.DEFAULT_FIELDS.items()}
        for name, value in self.changed_defaults().items():
            if not value:
                continue
            try:
                tenant_llm_find_enabled(tenant=self.instance, name=value, model_type=by_field[name])
            except ApplicationError as exc:
                self.add_error(name, exc.message)
        if not self.errors:
            try:
                tenant_limits_check(**self.changed_limits())
            except ApplicationError as exc:
                _add_service_error(self, exc)
        return data

    def apply(self, tenant: Tenant) -> Tenant:
        """Save the tenant, its default models through the same service as the API."""
        defaults = self.changed_defaults()
        for name in defaults:  # written below, by the service, once checked
            setattr(tenant, name, self.initial.get(name) or "")
        limits = self.changed_limits()
        with transaction.atomic():
            if not tenant._state.adding:
                for name in LIMIT_FIELDS:  # written by tenant_limits_set, audited
                    if name in self.initial:
                        setattr(tenant, name, self.initial[name])
            tenant = tenant_save(tenant=tenant)
            if limits:
                tenant = tenant_limits_set(tenant=tenant, **limits)
            if defaults:
                tenant = tenant_default_models_set(tenant=tenant, values=defaults)
        return tenant
