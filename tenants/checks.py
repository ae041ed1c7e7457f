"""System checks: misconfiguration is reported at start-up with messages that say what to do."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .defaults import DefaultsConfigError, load_system_defaults


@register(Tags.security, deploy=False)
def check_credential_key(app_configs, **kwargs):
    problems = []
    key = settings.CREDENTIALS_ENCRYPTION_KEY
    if key == settings.SECRET_KEY:
        problems.append(
            Error(
                "CREDENTIALS_ENCRYPTION_KEY must differ from SECRET_KEY.",
                hint="Provider keys would become unreadable when SECRET_KEY is rotated. "
                "Set a separate long random CREDENTIALS_ENCRYPTION_KEY.",
                id="ragllm.E001",
            )
        )
    elif "dev-insecure" in key:
        problems.append(
            Warning(
                "Provider keys are encrypted with the built-in development key.",
                hint="Set CREDENTIALS_ENCRYPTION_KEY before storing real provider keys.",
                id="ragllm.W001",
            )
        )
    elif len(key) < 32:
        problems.append(
            Warning(
                "CREDENTIALS_ENCRYPTION_KEY is shorter than 32 characters.",
                hint="Use a long random value, e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'.",
                id="ragllm.W002",
            )
        )
    return problems


@register()
def check_llm_call_settings(app_configs, **kwargs):
    problems = []
    if settings.LLM_TIMEOUT_SECONDS <= 0:
        problems.append(
            Error("LLM_TIMEOUT_SECONDS must be positive.", hint="e.g. 60", id="ragllm.E010")
        )
    if settings.LLM_MAX_RETRIES < 0:
        problems.append(
            Error("LLM_MAX_RETRIES must be 0 or more.", hint="e.g. 3", id="ragllm.E011")
        )
    if settings.LLM_BASE_DELAY < 0:
        problems.append(
            Error("LLM_BASE_DELAY must be 0 or more seconds.", hint="e.g. 1", id="ragllm.E012")
        )
    return problems


@register()
def check_default_llm_config(app_configs, **kwargs):
    try:
        load_system_defaults()
    except DefaultsConfigError as exc:
        return [
            Error(
                f"System default models are misconfigured: {exc}",
                hint="See USER_DEFAULT_LLM in .env.example for the expected JSON.",
                id="ragllm.E020",
            )
        ]
    return []
