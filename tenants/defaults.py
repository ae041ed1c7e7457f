"""System default models for new tenants (RAGFlow's `user_default_llm`).

Configured as JSON in USER_DEFAULT_LLM, or in the file USER_DEFAULT_LLM_FILE names:

    {"factory": "OpenAI", "api_key": "sk-...", "base_url": "",
     "default_models": {
        "chat_model": "gpt-4o-mini",
        "embedding_model": "text-embedding-3-small",
        "rerank_model": {"name": "jina-reranker-v2-base-multilingual", "factory": "Jina",
                         "api_key": "jina_...", "base_url": ""},
        "image2text_model": "", "asr_model": "", "tts_model": "", "ocr_model": ""}}

Each type may name its own factory, key and base URL; otherwise it takes the top-level ones.
A model may also be written "name@factory".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from providers.factories import split_full_name
from providers.types import ModelType

# Keys of `default_models`, RAGFlow's spelling first.
TYPE_KEYS: dict[ModelType, tuple[str, ...]] = {
    ModelType.CHAT: ("chat_model", "llm_model"),
    ModelType.EMBEDDING: ("embedding_model",),
    ModelType.RERANK: ("rerank_model",),
    ModelType.IMAGE2TEXT: ("image2text_model",),
    ModelType.SPEECH2TEXT: ("asr_model", "speech2text_model"),
    ModelType.TTS: ("tts_model",),
    ModelType.OCR: ("ocr_model",),
}
_KNOWN_TOP = {"factory", "api_key", "base_url", "default_models"}
_KNOWN_MODEL = {"name", "factory", "api_key", "base_url"}


class DefaultsConfigError(ValueError):
    """USER_DEFAULT_LLM(_FILE) is unreadable or malformed; the message says how."""


@dataclass(frozen=True)
class ModelDefault:
    model_type: ModelType
    name: str
    factory: str
    api_key: str = field(default="", repr=False)
    base_url: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.name}@{self.factory}"


@dataclass(frozen=True)
class SystemDefaults:
    factory: str = ""
    api_key: str = field(default="", repr=False)
    base_url: str = ""
    models: dict[ModelType, ModelDefault] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.factory or self.models)


def _read_raw() -> dict[str, Any] | None:
    text = settings.USER_DEFAULT_LLM
    path = settings.USER_DEFAULT_LLM_FILE
    if text and path:
        raise DefaultsConfigError("set USER_DEFAULT_LLM or USER_DEFAULT_LLM_FILE, not both")
    source = "USER_DEFAULT_LLM"
    if path:
        source = f"USER_DEFAULT_LLM_FILE ({path})"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DefaultsConfigError(f"{source} cannot be read: {exc.strerror}") from exc
    if not text or not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefaultsConfigError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DefaultsConfigError(f"{source} must be a JSON object")
    data = data.get("user_default_llm", data)  # accept RAGFlow's wrapper key too
    unknown = set(data) - _KNOWN_TOP
    if unknown:
        raise DefaultsConfigError(
            f"{source} has unknown keys: {', '.join(sorted(unknown))} "
            f"(expected {', '.join(sorted(_KNOWN_TOP))})"
        )
    return data


def parse_system_defaults(data: dict[str, Any] | None) -> SystemDefaults:
    if not data:
        return SystemDefaults()
    top_factory = str(data.get("factory") or "")
    top_key = str(data.get("api_key") or "")
    top_base = str(data.get("base_url") or "")
    raw_models = data.get("default_models") or {}
    if not isinstance(raw_models, dict):
        raise DefaultsConfigError("default_models must be an object")
    all_keys = {key for keys in TYPE_KEYS.values() for key in keys}
    unknown = set(raw_models) - all_keys
    if unknown:
        raise DefaultsConfigError(
            f"default_models has unknown keys: {', '.join(sorted(unknown))} "
            f"(expected some of {', '.join(sorted(all_keys))})"
        )
    models: dict[ModelType, ModelDefault] = {}
    for model_type, keys in TYPE_KEYS.items():
        raw = next((raw_models[key] for key in keys if raw_models.get(key)), None)
        if not raw:
            continue
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict):
            raise DefaultsConfigError(f"default_models.{keys[0]} must be a string or an object")
        unknown = set(raw) - _KNOWN_MODEL
        if unknown:
            raise DefaultsConfigError(
                f"default_models.{keys[0]} has unknown keys: {', '.join(sorted(unknown))}"
            )
        name, named_factory = split_full_name(str(raw.get("name") or ""))
        if not name:
            raise DefaultsConfigError(f"default_models.{keys[0]} needs a model name")
        factory = str(raw.get("factory") or named_factory or top_factory)
        if not factory:
            raise DefaultsConfigError(
                f"default_models.{keys[0]} ({name}) names no factory and there is no "
                "top-level factory"
            )
        own_factory = factory != top_factory
        models[model_type] = ModelDefault(
            model_type=model_type,
            name=name,
            factory=factory,
            # A type served by another factory does not inherit the top-level key.
            api_key=str(raw.get("api_key") or ("" if own_factory else top_key)),
            base_url=str(raw.get("base_url") or ("" if own_factory else top_base)),
        )
    return SystemDefaults(factory=top_factory, api_key=top_key, base_url=top_base, models=models)


def load_system_defaults() -> SystemDefaults:
    """The configured defaults; raises DefaultsConfigError with a readable message."""
    return parse_system_defaults(_read_raw())
