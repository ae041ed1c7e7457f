"""Token usage and the results every adapter returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed.

    `estimated` is True when the provider did not report usage and we counted with tiktoken.
    A missing total is filled in as prompt + completion; a total the provider gives is kept
    as is (Gemini's total includes thinking tokens that are in neither part).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Usage.{name} must be a non-negative int, got {value!r}")
        if not self.total_tokens:
            # frozen dataclass: object.__setattr__ is the sanctioned way to fill a field.
            object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)

    @classmethod
    def zero(cls) -> Usage:
        return cls()

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            estimated=self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    usage: Usage
    # OpenAI shape: [{"id", "type": "function", "function": {"name", "arguments"}}].
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    usage: Usage


@dataclass(frozen=True, slots=True)
class RerankResult:
    # One score per input text, in input order.
    scores: list[float]
    usage: Usage


@dataclass(frozen=True, slots=True)
class TranscriptionResult:
    text: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class OCRResult:
    text: str
    usage: Usage
    pages: list[str] = field(default_factory=list)
