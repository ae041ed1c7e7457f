"""Which adapter class serves which (model type, factory) pair.

Adapter classes register themselves when their module is imported (see
`BaseAdapter.__init_subclass__`). The lookup functions import `providers.adapters` first, whose
`__init__` imports every adapter module, so a lookup sees every adapter whoever imported what.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .api_keys import Credentials
from .errors import UnsupportedModelError
from .types import ModelType, normalize_model_type

if TYPE_CHECKING:
    from .base import BaseAdapter

_registry: dict[tuple[ModelType, str], type[BaseAdapter]] = {}
# Where a factory takes either JSON fields or a plain key, and the two go to different
# protocols: the class for a plain key (`for_plain_key`); `_registry` holds the other.
_plain_key: dict[tuple[ModelType, str], type[BaseAdapter]] = {}


class RegistrationError(RuntimeError):
    """Two adapter classes claim the same (model type, factory) pair."""


def register(cls: type[BaseAdapter]) -> type[BaseAdapter]:
    """Record `cls` for each factory it declares. Usable as a decorator."""
    model_type = normalize_model_type(cls.model_type)
    table = _plain_key if cls.for_plain_key else _registry
    for factory in cls.factories:
        key = (model_type, factory)
        existing = table.get(key)
        # The same class seen again (its module re-imported) replaces itself; anything else
        # claiming a taken pair is a bug that must fail at import, not at the first call.
        if existing is not None and _qualified(existing) != _qualified(cls):
            raise RegistrationError(
                f"{_qualified(cls)} and {_qualified(existing)} both serve "
                f"{model_type.value} for factory {factory!r}"
            )
        table[key] = cls
    return cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_adapters() -> None:
    importlib.import_module("providers.adapters")


def get_adapter_class(
    model_type: str | ModelType, factory: str, credentials: Credentials | None = None
) -> type[BaseAdapter]:
    """The class serving (model type, factory); given the credentials, the one for their form
    (a plain key may go to another protocol than JSON fields, see `for_plain_key`)."""
    _load_adapters()
    try:
        model_type = normalize_model_type(model_type)
    except ValueError as exc:
        raise UnsupportedModelError(str(exc), provider=factory) from None
    cls = _registry.get((model_type, factory))
    if cls is None:
        served = sorted(t.value for t, f in _registry if f == factory)
        hint = f"it serves: {', '.join(served)}" if served else "no adapter knows this factory"
        raise UnsupportedModelError(
            f"factory {factory!r} has no {model_type.value} adapter ({hint})", provider=factory
        )
    if credentials is not None and credentials.key and not credentials.is_json:
        return _plain_key.get((model_type, factory), cls)
    return cls


def supported_factories(model_type: str | ModelType) -> list[str]:
    """Factories with an adapter for `model_type`, sorted by name."""
    _load_adapters()
    model_type = normalize_model_type(model_type)
    return sorted(factory for t, factory in _registry if t == model_type)


def coverage() -> dict[str, set[ModelType]]:
    """Every factory with at least one adapter, and the model types it is served for."""
    _load_adapters()
    result: dict[str, set[ModelType]] = {}
    for model_type, factory in _registry:
        result.setdefault(factory, set()).add(model_type)
    return dict(sorted(result.items()))


def served_classes() -> set[type[BaseAdapter]]:
    """Every registered adapter class."""
    _load_adapters()
    return {*_registry.values(), *_plain_key.values()}


def build_adapter(
    *,
    model_type: str | ModelType,
    factory: str,
    model_name: str,
    api_key: str | dict | Credentials | None,
    base_url: str | None = None,
    **options: Any,
) -> BaseAdapter:
    """An adapter ready to call: `api_key` is the stored string (plain key or JSON object)."""
    credentials = Credentials.parse(api_key)
    cls = get_adapter_class(model_type, factory, credentials)
    return cls(
        factory=factory,
        model_name=model_name,
        credentials=credentials,
        base_url=base_url or None,
        **options,
    )
