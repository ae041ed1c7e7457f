"""Model types, and how RAGFlow's catalog spells them."""

from __future__ import annotations

from django.db import models


class ModelType(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"
    IMAGE2TEXT = "image2text", "Image to text"
    SPEECH2TEXT = "speech2text", "Speech to text"
    TTS = "tts", "Text to speech"
    OCR = "ocr", "OCR"


# The newer RAGFlow catalog says "reranker" and "vision" in a few entries.
_ALIASES = {
    "reranker": ModelType.RERANK,
    "vision": ModelType.IMAGE2TEXT,
}


def normalize_model_type(value: str | ModelType) -> ModelType:
    """Return the ModelType for any spelling RAGFlow uses; ValueError otherwise."""
    if isinstance(value, ModelType):
        return value
    if not isinstance(value, str):
        raise ValueError(f"model type must be a string, not {type(value).__name__}")
    key = value.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return ModelType(key)
    except ValueError:
        known = ", ".join(ModelType.values)
        raise ValueError(f"unknown model type {value!r} (expected one of: {known})") from None


# Factory tags as they appear in llm_factories.json ("LLM,TEXT EMBEDDING,TTS").
# MODERATION has no model type of ours and is ignored.
TAG_TO_TYPE: dict[str, ModelType] = {
    "LLM": ModelType.CHAT,
    "TEXT EMBEDDING": ModelType.EMBEDDING,
    "TEXT RE-RANK": ModelType.RERANK,
    "IMAGE2TEXT": ModelType.IMAGE2TEXT,
    "SPEECH2TEXT": ModelType.SPEECH2TEXT,
    "TTS": ModelType.TTS,
    "OCR": ModelType.OCR,
}


def types_from_tags(tags: str) -> set[ModelType]:
    """The model types named by a comma-separated factory tag string; unknown tags are skipped."""
    found = set()
    for tag in (tags or "").split(","):
        model_type = TAG_TO_TYPE.get(tag.strip().upper())
        if model_type is not None:
            found.add(model_type)
    return found
