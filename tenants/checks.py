"""System checks: misconfiguration is reported at start-up with messages that say what to do."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404

from .defaults import DefaultsConfigError, load_system_defaults
from .ragflow import PREFIX_PATTERN, RAGFlowMount, app_name, mount_paths


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


@register()
def check_ragflow_wait(app_configs, **kwargs):
    seconds = settings.RAGFLOW_COMPAT_WAIT_SECONDS
    if 0 < seconds < 300:
        return []
    return [
        Error(
            f"RAGFLOW_COMPAT_WAIT_SECONDS must be between 0 and 300 seconds (it is {seconds:g}).",
            hint="RAGFlow's web app gives up on a request after 300 s; e.g. 120.",
            id="ragllm.E031",
        )
    ]


@register(Tags.urls)
def check_ragflow_paths(app_configs, **kwargs):
    """The RAGFlow-compatible routes must reach their views, and no other route may share a
    path with them (the gateway's /v1/... and /api/v1/... included)."""
    prefix = settings.RAGFLOW_COMPAT_PREFIX
    hint = "Set RAGFLOW_COMPAT_PREFIX to a path no other route uses, e.g. ragflow/v1."
    if prefix and not PREFIX_PATTERN.fullmatch(prefix):
        return [
            Error(
                f"RAGFLOW_COMPAT_PREFIX={prefix!r} is not a URL path.", hint=hint, id="ragllm.E032"
            )
        ]
    resolver = get_resolver()
    problems = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver) and entry.app_name == app_name:
            continue
        shared = [f"/{path}" for path in mount_paths(prefix) if _serves(entry, path)]
        if shared:
            problems.append(
                Error(
                    f"The route {entry.pattern} also matches {', '.join(shared)} (RAGFlow-"
                    f"compatible routes, RAGFLOW_COMPAT_PREFIX={prefix}).",
                    hint=hint,
                    id="ragllm.E033",
                )
            )
    for path in mount_paths(prefix):
        match = _resolve(resolver, path)
        view = getattr(match.func, "view_class", None) if match else None
        if view is None or not issubclass(view, RAGFlowMount):
            problems.append(
                Error(
                    f"/{path} does not reach the RAGFlow-compatible routes.",
                    hint="Include tenants.ragflow in ragllm/urls.py, before any route that "
                    "could match its paths.",
                    id="ragllm.E034",
                )
            )
    return problems


def _resolve(resolver, path: str):
    try:
        return resolver.resolve("/" + path)
    except Resolver404:
        return None


def _serves(entry, path: str) -> bool:
    try:
        return entry.resolve(path) is not None
    except Resolver404:
        return False
