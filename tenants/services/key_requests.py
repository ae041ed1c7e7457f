"""What set_api_key and add_llm ask for: the caller's input checked, then a validation
requested (see key_validation). The admin's forms and the commands use the same functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from providers.factories import SELF_HOSTED_FACTORIES, strip_name_suffix
from providers.models import LLM, LLMFactory
from providers.models import Status as CatalogStatus
from providers.registry import supported_factories
from ragllm.errors import InvalidInput, MissingArguments

from ..models import KeyValidation, Tenant, TenantLLM, ValidationKind
from .credential_input import (
    KeyRequiredForNewBaseURL,
    base_url_changes,
    check_base_url,
    check_stored_key_destination,
    credentials_from_input,
)
from .key_validation import key_validation_request


class UnsupportedModelType(InvalidInput):
    """The factory has no adapter for this model type."""

    def __init__(self, *, factory: str, llm_name: str, model_type: str) -> None:
        super().__init__(f"Factory {factory} does not serve {model_type} models.")
        self.factory = factory
        self.llm_name = llm_name
        self.model_type = model_type


def tenant_llm_request_key(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    api_key: str | dict[str, Any] | None,
    fields: Mapping[str, Any],
    base_url: str = "",
    verify: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
    synchronous: bool = False,
) -> KeyValidation:
    """set_api_key: check the input, then ask for the factory's key to be validated."""
    key = credentials_from_input(factory=factory.name, api_key=api_key, fields=fields)
    check_base_url(factory=factory.name, url=base_url)
    if not key:
        # Nothing is ever reused here, but a caller changing the base URL without the key
        # should learn why that cannot be.
        stored = TenantLLM.objects.filter(tenant=tenant, factory=factory)
        bases = set(stored.values_list("api_base", flat=True))
        if base_url and any(base_url_changes(stored=b, given=base_url) for b in bases):
            raise KeyRequiredForNewBaseURL()
        raise MissingArguments(["api_key"])
    if not LLM.objects.filter(factory=factory, status=CatalogStatus.VALID).exists():
        # RAGFlow's wording. Self-hosted factories list no models: their models are added
        # one by one (add_llm), each with its own base URL.
        raise InvalidInput(f"No models configured for {factory.name} (source: {factory.name}).")
    return key_validation_request(
        tenant=tenant,
        kind=ValidationKind.SET_API_KEY,
        factory=factory,
        api_key=key,
        api_base=base_url,
        verify_only=verify,
        user=user,
        enqueue=enqueue,
        synchronous=synchronous,
    )


def tenant_llm_check_model(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    llm_name: str,
    model_type: str,
    api_base: str = "",
    api_key: str | dict[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """add_llm's checks, writing nothing: (model name as stored, credentials to validate).

    Without a new credential the stored one is used, but only with the base URL it was saved
    with; self-hosted factories may have none at all. Forms call this to show errors early.
    """
    llm_name = strip_name_suffix(llm_name.strip())
    if factory.name not in supported_factories(model_type):
        raise UnsupportedModelType(factory=factory.name, llm_name=llm_name, model_type=model_type)
    check_base_url(factory=factory.name, url=api_base)
    key = credentials_from_input(factory=factory.name, api_key=api_key, fields=fields or {})
    if key is None:
        stored = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
        if stored is not None:
            check_stored_key_destination(
                stored_key=stored.api_key, stored_base=stored.api_base, new_base=api_base
            )
            key = stored.api_key
        elif factory.name in SELF_HOSTED_FACTORIES:
            key = ""
        else:
            raise MissingArguments(["api_key"])
    return llm_name, key


def tenant_llm_request_model(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    llm_name: str,
    model_type: str,
    api_base: str = "",
    api_key: str | dict[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    is_tools: bool | None = None,
    verify: bool = False,
    user: AbstractBaseUser | None = None,
    synchronous: bool = False,
) -> KeyValidation:
    """add_llm: check the input, then ask for this one model to be validated and saved."""
    llm_name, key = tenant_llm_check_model(
        tenant=tenant,
        factory=factory,
        llm_name=llm_name,
        model_type=model_type,
        api_base=api_base,
        api_key=api_key,
        fields=fields,
    )
    return key_validation_request(
        tenant=tenant,
        kind=ValidationKind.ADD_LLM,
        factory=factory,
        api_key=key,
        api_base=api_base,
        llm_name=llm_name,
        model_type=model_type,
        max_tokens=max_tokens,
        is_tools=is_tools,
        verify_only=verify,
        user=user,
        synchronous=synchronous,
    )
