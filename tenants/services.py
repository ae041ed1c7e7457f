"""Writes for tenants: creation, membership and model configurations."""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from providers.factories import (
    BEDROCK_AUTH_MODES,
    CREDENTIAL_SHAPES,
    SELF_HOSTED_FACTORIES,
    required_credential_fields,
)
from providers.models import LLM, LLMFactory
from providers.models import Status as CatalogStatus
from providers.netguard import BlockedAddressError, check_url
from providers.types import ModelType
from ragllm.api import ApiError, Conflict, MissingArguments, NotFound

from .defaults import ModelDefault, SystemDefaults, load_system_defaults
from .models import (
    APIToken,
    KeyValidation,
    Role,
    Status,
    Tenant,
    TenantLLM,
    TenantMember,
    ValidationKind,
    ValidationState,
    ValidationStatus,
)
from .resolution import invalidate as invalidate_resolutions
from .selectors import TOKEN_PREFIX, token_hash
from .validation import Attempt, probe_model

logger = logging.getLogger(__name__)


def _default_tenant_name(user: AbstractBaseUser) -> str:
    display = (getattr(user, "get_full_name", lambda: "")() or user.get_username()).strip()
    return f"{display}'s tenant"[:128]


def tenant_llm_init_defaults(*, tenant: Tenant, defaults: SystemDefaults) -> list[TenantLLM]:
    """Create the tenant's default model configs (RAGFlow's `get_init_tenant_llm`).

    One row per catalog model of each default factory, with the key and base URL of the
    type's configuration or else the factory's, deduplicated by (factory, model name): the
    first configuration naming a factory wins. The default models themselves always get a row,
    even when the catalog lists no models for their factory (self-hosted ones).
    """
    # (factory, api_key, base_url) in the order RAGFlow walks them, without repeats.
    factory_configs: list[tuple[str, str, str]] = []
    for model_default in defaults.models.values():
        config = (model_default.factory, model_default.api_key, model_default.base_url)
        if config not in factory_configs:
            factory_configs.append(config)
    if defaults.factory and not any(c[0] == defaults.factory for c in factory_configs):
        factory_configs.append((defaults.factory, defaults.api_key, defaults.base_url))

    factories = {
        factory.name: factory
        for factory in LLMFactory.objects.filter(name__in={c[0] for c in factory_configs})
    }
    rows: dict[tuple[str, str], TenantLLM] = {}

    def add(factory: LLMFactory, name: str, model_type: str, max_tokens: int, key: str, base: str):
        rows.setdefault(
            (factory.name, name),
            TenantLLM(
                tenant=tenant,
                factory=factory,
                llm_name=name,
                model_type=model_type,
                api_key=key,
                api_base=base,
                max_tokens=max_tokens or 8192,
            ),
        )

    for factory_name, api_key, base_url in factory_configs:
        factory = factories.get(factory_name)
        if factory is None:
            logger.warning("default factory %s is not in the catalog; skipped", factory_name)
            continue
        catalog = LLM.objects.filter(factory=factory, status=CatalogStatus.VALID)
        for llm in catalog.order_by("pk"):
            add(factory, llm.llm_name, llm.model_type, llm.max_tokens, api_key, base_url)
    for model_default in defaults.models.values():
        factory = factories.get(model_default.factory)
        if factory is not None:
            add(
                factory,
                model_default.name,
                model_default.model_type,
                8192,
                model_default.api_key,
                model_default.base_url,
            )
    return TenantLLM.objects.bulk_create(rows.values(), ignore_conflicts=True)


def _apply_default_names(tenant: Tenant, models: dict[str, ModelDefault]) -> None:
    for model_type, model_default in models.items():
        setattr(tenant, Tenant.DEFAULT_FIELDS[model_type], model_default.full_name)


@transaction.atomic
def tenant_create_for_user(*, user: AbstractBaseUser, name: str | None = None) -> Tenant:
    """The user's own tenant, with owner membership and the system default models.

    Idempotent: a user who already owns a tenant gets that one back.
    """
    owned = (
        Tenant.objects.filter(members__user=user, members__role=Role.OWNER)
        .order_by("created_at")
        .first()
    )
    if owned is not None:
        return owned
    defaults = load_system_defaults()
    tenant = Tenant(name=(name or _default_tenant_name(user))[:128])
    _apply_default_names(tenant, defaults.models)
    tenant.save()
    TenantMember.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    tenant_llm_init_defaults(tenant=tenant, defaults=defaults)
    return tenant


def tenant_rename(*, tenant: Tenant, name: str) -> Tenant:
    tenant.name = name[:128]
    tenant.save(update_fields=["name", "updated_at"])
    return tenant


@transaction.atomic
def user_create_with_tenant(
    *, email: str, name: str | None = None, password: str | None = None
) -> tuple[AbstractBaseUser, Tenant, bool]:
    """Create (or find) the user with this email and its tenant. Returns (user, tenant, created)."""
    user_model = get_user_model()
    email = user_model.objects.normalize_email(email).strip()
    user = user_model.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        # Creating the user sends post_save, which creates its tenant (tenants.signals).
        user = user_model.objects.create_user(username=email, email=email, password=password)
    tenant = tenant_create_for_user(user=user, name=name)
    if name and tenant.name != name:
        tenant = tenant_rename(tenant=tenant, name=name)
    return user, tenant, created


# --- API tokens -------------------------------------------------------------------------------


def api_token_issue(*, user: AbstractBaseUser, name: str = "") -> tuple[APIToken, str]:
    """A new API token for `user`. The raw token is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = APIToken.objects.create(
        user=user, name=name[:128], prefix=prefix, token_hash=token_hash(raw)
    )
    return token, raw


def api_token_touch(*, token: APIToken) -> None:
    """Record use, at most once a minute per token (not a write on every request)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)


def api_token_revoke(*, token: APIToken) -> None:
    APIToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# --- Credentials and names from API input ------------------------------------------------------


def credentials_from_input(
    *, factory: str, api_key: str | None, fields: dict[str, Any]
) -> str | None:
    """The api_key to store: the plain key, or the factory's JSON object built from `fields`.

    None means "no new credential given" (edits then keep the stored one).
    """
    shape = CREDENTIAL_SHAPES.get(factory)
    if shape is None:
        return api_key if api_key else None
    values = {name: fields.get(name) for name in shape.fields}
    if factory in {"Azure-OpenAI", "OpenRouter"} and not values.get("api_key"):
        values["api_key"] = api_key
    if not any(
        values.get(name) not in (None, "") for name in shape.fields if name != "api_version"
    ):
        return None
    for name, default in shape.defaults.items():
        if values.get(name) in (None, ""):
            values[name] = default
    if factory == "Bedrock" and values["auth_mode"] not in BEDROCK_AUTH_MODES:
        raise ApiError(
            f"auth_mode must be one of {', '.join(BEDROCK_AUTH_MODES)}, not {values['auth_mode']!r}"
        )
    missing = [
        n for n in required_credential_fields(factory, values) if values.get(n) in (None, "")
    ]
    if missing:
        raise MissingArguments(missing)
    return json.dumps({k: v for k, v in values.items() if v not in (None, "")}, sort_keys=True)


def check_base_url(*, factory: str, url: str) -> None:
    """Refuse a base URL that may not be called (see providers.netguard)."""
    if not url:
        return
    try:
        check_url(url, allow_private=factory in SELF_HOSTED_FACTORIES)
    except BlockedAddressError as exc:
        raise ApiError(f"base_url is not allowed: {exc}") from exc


# --- Key validation (runs as a Celery task) ----------------------------------------------------


def key_validation_request(
    *,
    tenant: Tenant,
    kind: str,
    factory: LLMFactory,
    api_key: str,
    api_base: str = "",
    llm_name: str = "",
    model_type: str = "",
    max_tokens: int | None = None,
    verify_only: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> KeyValidation:
    """Record a validation request and enqueue its task (which gets the row id, not the key).

    With enqueue=False the caller runs it itself (key_validation_run), as commands do.
    """
    from .tasks import validate_credentials

    validation = KeyValidation.objects.create(
        tenant=tenant,
        kind=kind,
        factory=factory,
        api_key=api_key,
        api_base=api_base,
        llm_name=llm_name,
        model_type=model_type,
        max_tokens=max_tokens,
        verify_only=verify_only,
        requested_by=user if user is not None and user.pk else None,
    )
    if enqueue:
        transaction.on_commit(lambda: validate_credentials.delay(str(validation.pk)))
    return validation


def tenant_llm_request_key(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    api_key: str | None,
    fields: dict[str, Any],
    base_url: str = "",
    verify: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> KeyValidation:
    """set_api_key: check the input, then ask for the factory's key to be validated."""
    key = credentials_from_input(factory=factory.name, api_key=api_key, fields=fields)
    if not key:
        raise MissingArguments(["api_key"])
    check_base_url(factory=factory.name, url=base_url)
    return key_validation_request(
        tenant=tenant,
        kind=ValidationKind.SET_API_KEY,
        factory=factory,
        api_key=key,
        api_base=base_url,
        verify_only=verify,
        user=user,
        enqueue=enqueue,
    )


def tenant_llm_request_model(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    llm_name: str,
    model_type: str,
    api_base: str = "",
    api_key: str | None = None,
    fields: dict[str, Any] | None = None,
    max_tokens: int | None = None,
    verify: bool = False,
    user: AbstractBaseUser | None = None,
) -> KeyValidation:
    """add_llm: check the input, then ask for this one model to be validated and saved.

    Without a new credential the stored one is used (editing keeps the key); self-hosted
    factories may have none at all.
    """
    from providers.factories import strip_name_suffix
    from providers.registry import supported_factories

    if factory.name not in supported_factories(model_type):
        raise ApiError(f"Factory {factory.name} does not serve {model_type} models.")
    llm_name = strip_name_suffix(llm_name.strip())
    check_base_url(factory=factory.name, url=api_base)
    key = credentials_from_input(factory=factory.name, api_key=api_key, fields=fields or {})
    if key is None:
        stored = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
        if stored is not None:
            key = stored.api_key
        elif factory.name in SELF_HOSTED_FACTORIES:
            key = ""
        else:
            raise MissingArguments(["api_key"])
    return key_validation_request(
        tenant=tenant,
        kind=ValidationKind.ADD_LLM,
        factory=factory,
        api_key=key,
        api_base=api_base,
        llm_name=llm_name,
        model_type=model_type,
        max_tokens=max_tokens,
        verify_only=verify,
        user=user,
    )


def key_validation_wait(*, validation: KeyValidation, timeout: float) -> KeyValidation:
    """Poll until the task has finished or `timeout` seconds passed; the latest row either way."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        current = KeyValidation.objects.get(pk=validation.pk)
        if current.finished or time.monotonic() >= deadline:
            return current
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


def _catalog_probe_order(factory: LLMFactory) -> list[LLM]:
    """RAGFlow's walk: catalog order, at most one model per type among embedding/chat/rerank."""
    chosen: list[LLM] = []
    seen: set[str] = set()
    probe_types = (ModelType.EMBEDDING, ModelType.CHAT, ModelType.RERANK)
    for llm in LLM.objects.filter(factory=factory, status=CatalogStatus.VALID).order_by("pk"):
        if llm.model_type in probe_types and llm.model_type not in seen:
            seen.add(llm.model_type)
            chosen.append(llm)
    return chosen


def key_validation_run(*, validation_id: str) -> KeyValidation | None:
    """Run one validation: claim it, make the live calls, save the key if asked, wipe it.

    Idempotent: a validation already claimed by another run (or finished) is left alone, except
    one stuck in "running" for longer than a worker could take, which is taken over.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=_validation_budget() * 2)
    claimed = (
        KeyValidation.objects.filter(pk=validation_id)
        .filter(
            Q(state=ValidationState.PENDING)
            | Q(state=ValidationState.RUNNING, started_at__lt=stale)
        )
        .update(state=ValidationState.RUNNING, started_at=now)
    )
    if not claimed:
        return KeyValidation.objects.filter(pk=validation_id).first()
    validation = KeyValidation.objects.select_related("factory").get(pk=validation_id)
    factory = validation.factory
    attempts: list[Attempt] = []
    if validation.kind == ValidationKind.SET_API_KEY:
        for llm in _catalog_probe_order(factory):
            attempt = probe_model(
                model_type=llm.model_type,
                factory=factory.name,
                llm_name=llm.llm_name,
                api_key=validation.api_key,
                api_base=validation.api_base,
            )
            attempts.append(attempt)
            if attempt.ok:
                break
    else:
        attempts.append(
            probe_model(
                model_type=validation.model_type,
                factory=factory.name,
                llm_name=validation.llm_name,
                api_key=validation.api_key,
                api_base=validation.api_base,
            )
        )
    succeeded = any(a.ok for a in attempts)
    if not attempts:
        message = f"Factory {factory.name} lists no embedding, chat or rerank model to test."
    else:
        message = "" if succeeded else "\n".join(a.message for a in attempts if not a.ok)
    if succeeded and not validation.verify_only:
        _apply_validated(validation)
    # One UPDATE finishes the row and wipes the candidate key: it now lives (encrypted) in
    # TenantLLM if it was saved, and nowhere if it was not.
    KeyValidation.objects.filter(pk=validation.pk).update(
        state=ValidationState.SUCCEEDED if succeeded else ValidationState.FAILED,
        message=message,
        attempts=[a.as_dict() for a in attempts],
        api_key="",
        finished_at=timezone.now(),
    )
    return KeyValidation.objects.get(pk=validation.pk)


def _validation_budget() -> float:
    from django.conf import settings

    return float(settings.LLM_TIMEOUT_SECONDS) * 3


@transaction.atomic
def _apply_validated(validation: KeyValidation) -> None:
    now = timezone.now()
    common = {
        "api_key": validation.api_key,
        "api_base": validation.api_base,
        "validation_status": ValidationStatus.VALID,
        "validated_at": now,
        "last_error": "",
    }
    if validation.kind == ValidationKind.SET_API_KEY:
        rows = [
            TenantLLM(
                tenant_id=validation.tenant_id,
                factory=validation.factory,
                llm_name=llm.llm_name,
                model_type=llm.model_type,
                max_tokens=llm.max_tokens,
                **common,
            )
            for llm in LLM.objects.filter(factory=validation.factory, status=CatalogStatus.VALID)
        ]
        update_fields = [*common, "max_tokens", "model_type", "updated_at"]
    else:
        rows = [
            TenantLLM(
                tenant_id=validation.tenant_id,
                factory=validation.factory,
                llm_name=validation.llm_name,
                model_type=validation.model_type,
                max_tokens=validation.max_tokens or 8192,
                **common,
            )
        ]
        update_fields = [*common, "max_tokens", "model_type", "updated_at"]
    for row in rows:
        row.updated_at = now
    TenantLLM.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["tenant", "factory", "llm_name"],
        update_fields=update_fields,
    )
    # bulk writes send no signals: drop cached resolutions holding the old key.
    transaction.on_commit(invalidate_resolutions)


def key_validation_prune(*, older_than_days: int = 30) -> int:
    """Forget finished validations (their keys are already wiped) after a while."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = KeyValidation.objects.filter(
        state__in=[ValidationState.SUCCEEDED, ValidationState.FAILED], finished_at__lt=cutoff
    ).delete()
    return deleted


def tenant_llm_revalidate(*, config: TenantLLM) -> Attempt:
    """Re-test a stored configuration with its stored key and record the verdict."""
    attempt = probe_model(
        model_type=config.model_type,
        factory=config.factory.name,
        llm_name=config.llm_name,
        api_key=config.api_key,
        api_base=config.api_base,
    )
    TenantLLM.objects.filter(pk=config.pk).update(
        validation_status=ValidationStatus.VALID if attempt.ok else ValidationStatus.FAILED,
        validated_at=timezone.now(),
        last_error="" if attempt.ok else attempt.message[:4000],
    )
    return attempt


def tenant_llm_mark_pending(*, config_ids: list[int]) -> int:
    return TenantLLM.objects.filter(pk__in=config_ids).update(
        validation_status=ValidationStatus.PENDING
    )


# --- Model configurations ----------------------------------------------------------------------


def tenant_llm_delete(*, tenant: Tenant, factory: LLMFactory, llm_name: str) -> None:
    config = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
    if config is None:
        raise NotFound(f"Model({llm_name}@{factory.name}) is not configured for this tenant.")
    _refuse_if_default(tenant, [config])
    config.delete()


def tenant_llm_set_status(*, tenant: Tenant, factory: LLMFactory, llm_name: str, enabled: bool):
    config = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
    if config is None:
        raise NotFound(f"Model({llm_name}@{factory.name}) is not configured for this tenant.")
    if not enabled:
        _refuse_if_default(tenant, [config])
    TenantLLM.objects.filter(pk=config.pk).update(
        status=Status.VALID if enabled else Status.INVALID, updated_at=timezone.now()
    )
    invalidate_resolutions()


@transaction.atomic
def tenant_factory_delete(*, tenant: Tenant, factory: LLMFactory) -> int:
    configs = list(TenantLLM.objects.filter(tenant=tenant, factory=factory))
    if not configs:
        raise NotFound(f"Factory {factory.name} is not configured for this tenant.")
    _refuse_if_default(tenant, configs)
    deleted, _ = TenantLLM.objects.filter(pk__in=[c.pk for c in configs]).delete()
    return deleted


def _refuse_if_default(tenant: Tenant, configs: list[TenantLLM]) -> None:
    names = {f"{c.llm_name}@{c.factory.name}" for c in configs}
    for model_type, field_name in Tenant.DEFAULT_FIELDS.items():
        if getattr(tenant, field_name) in names:
            raise Conflict(
                f"{getattr(tenant, field_name)} is the tenant's default {model_type} model; "
                "choose another default first."
            )


def tenant_default_models_set(*, tenant: Tenant, values: dict[str, str]) -> Tenant:
    """Set default models by RAGFlow field name (llm_id, embd_id...). "" clears a default.

    A default must name a model the tenant has enabled, of that type.
    """
    by_field = {field_name: model_type for model_type, field_name in Tenant.DEFAULT_FIELDS.items()}
    changed: list[str] = []
    for field_name, value in values.items():
        model_type = by_field[field_name]
        value = (value or "").strip()
        if value:
            config = tenant_llm_find_enabled(tenant=tenant, name=value, model_type=model_type)
            value = f"{config.llm_name}@{config.factory.name}"
        setattr(tenant, field_name, value)
        changed.append(field_name)
    if changed:
        tenant.save(update_fields=[*changed, "updated_at"])
    return tenant


def tenant_llm_find_enabled(*, tenant: Tenant, name: str, model_type: str) -> TenantLLM:
    """The tenant's enabled config for `name` ("model@factory" or bare) usable as `model_type`."""
    from .resolution import split_name

    llm_name, factory_name = split_name(name)
    configs = TenantLLM.objects.select_related("factory").filter(
        tenant=tenant, llm_name=llm_name, status=Status.VALID
    )
    if factory_name:
        configs = configs.filter(factory__name=factory_name)
    matches = [c for c in configs if _serves(c, model_type)]
    if not matches:
        raise ApiError(
            f"Model({name}) is not an enabled {model_type} model of this tenant.", http_status=400
        )
    if len(matches) > 1:
        raise ApiError(
            f"Model name {llm_name} is ambiguous; write it as name@factory.", http_status=400
        )
    return matches[0]


def _serves(config: TenantLLM, model_type: str) -> bool:
    if config.model_type == model_type:
        return True
    catalog = LLM.objects.filter(factory_id=config.factory_id, llm_name=config.llm_name).first()
    return catalog is not None and catalog.serves(model_type)
