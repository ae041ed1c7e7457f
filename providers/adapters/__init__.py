"""Every adapter module, imported explicitly so that importing this package registers them all.

Add a new family here; `providers.registry` imports this package before each lookup.
"""

from . import (
    anthropic,
    azure,
    baidu,
    bedrock,
    cohere,
    fishaudio,
    gemini,
    hunyuan,
    jina,
    mistral_ocr,
    ollama,
    openai,
    tei,
    voyage,
)

__all__ = [
    "anthropic",
    "azure",
    "baidu",
    "bedrock",
    "cohere",
    "fishaudio",
    "gemini",
    "hunyuan",
    "jina",
    "mistral_ocr",
    "ollama",
    "openai",
    "tei",
    "voyage",
]
