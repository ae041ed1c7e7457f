"""What each endpoint accepts, checked before anything else happens (no provider call, no
quota reserved): missing or mistyped fields are 400s naming the field, as OpenAI's API says
them. Unknown fields are ignored, as OpenAI ignores them for forward compatibility.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass, field
from typing import Any

from .errors import invalid

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
AUDIO_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})
# Generation options passed to the provider as they are (adapters translate the names).
_NUMBERS = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens")


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise invalid("You must provide a model parameter.", "model")
    if not isinstance(model, str):
        raise invalid("'model' must be a string.", "model")
    return model


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- chat ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatInput:
    model: str
    messages: list[dict[str, Any]]
    gen_conf: dict[str, Any]
    tools: list[dict[str, Any]] | None
    stream: bool
    include_usage: bool
    has_images: bool


def chat_input(body: dict[str, Any]) -> ChatInput:
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise invalid("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array of messages.", "messages")
    has_images = False
    for index, message in enumerate(messages):
        has_images = _check_message(message, index) or has_images
    gen_conf: dict[str, Any] = {}
    for name, (low, high) in _NUMBERS.items():
        value = body.get(name)
        if value is not None:
            if not _is_number(value) or not low <= value <= high:
                raise invalid(f"'{name}' must be a number from {low} to {high}.", name)
            gen_conf[name] = value
    for name in _POSITIVE_INTS:
        value = body.get(name)
        if value is not None:
            if not _is_int(value) or value < 1:
                raise invalid(f"'{name}' must be a positive integer.", name)
            gen_conf[name] = value
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
            raise invalid("'stop' must be a string or an array of at most 4 strings.", "stop")
        if stop:
            gen_conf["stop"] = stop
    if body.get("seed") is not None:
        if not _is_int(body["seed"]):
            raise invalid("'seed' must be an integer.", "seed")
        gen_conf["seed"] = body["seed"]
    response_format = body.get("response_format")
    if response_format is not None:
        if (
            not isinstance(response_format, dict)
            or response_format.get("type") not in RESPONSE_FORMATS
        ):
            raise invalid(
                "'response_format' must be an object whose type is text, json_object or "
                "json_schema.",
                "response_format",
            )
        gen_conf["response_format"] = response_format
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid("Only n=1 is supported: ask again for more choices.", "n")
    tools = _tools(body)
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if not (tool_choice in ("none", "auto", "required") or isinstance(tool_choice, dict)):
            raise invalid("'tool_choice' must be none, auto, required or an object.", "tool_choice")
        if tools is None and tool_choice != "none":
            raise invalid("'tool_choice' is only allowed when 'tools' are given.", "tool_choice")
        gen_conf["tool_choice"] = tool_choice
    for name, kind in (
        ("user", str),
        ("parallel_tool_calls", bool),
        ("reasoning_effort", str),
        ("logit_bias", dict),
    ):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, kind):
                raise invalid(f"'{name}' must be a {kind.__name__.replace('str', 'string')}.", name)
            gen_conf[name] = value
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        if not isinstance(options, dict):
            raise invalid("'stream_options' must be an object.", "stream_options")
        include_usage = options.get("include_usage") is True
    return ChatInput(model, messages, gen_conf, tools, stream, include_usage, has_images)


def _check_message(message: Any, index: int) -> bool:
    """Raise on a malformed message; True when it carries an image."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise invalid(f"'{where}' must be an object.", "messages")
    if message.get("role") not in ROLES:
        raise invalid(f"Invalid value for '{where}.role': {message.get('role')!r}.", "messages")
    content = message.get("content")
    if content is None:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            return False
        raise invalid(f"Missing required parameter: '{where}.content'.", "messages")
    if isinstance(content, str):
        return False
    if not isinstance(content, list):
        raise invalid(f"'{where}.content' must be a string or an array of parts.", "messages")
    images = False
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str) or not url:
                raise invalid(f"An image part of '{where}' has no url.", "messages")
            images = True
            continue
        raise invalid(
            f"Invalid content part in '{where}.content': expected text or image_url.", "messages"
        )
    return images


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise invalid("'tools' must be an array.", "tools")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise invalid(f"'tools[{index}]' must be a function tool with a name.", "tools")
    return tools or None


# --- embeddings, rerank ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmbeddingInput:
    model: str
    texts: list[str]
    base64: bool
    dimensions: int | None


def embedding_input(body: dict[str, Any]) -> EmbeddingInput:
    model = _model(body)
    texts = body.get("input")
    if texts is None:
        raise invalid("Missing required parameter: 'input'.", "input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        raise invalid(
            "'input' must be a non-empty string or a non-empty array of strings.", "input"
        )
    if not all(isinstance(text, str) and text for text in texts):
        raise invalid(
            "'input' must hold non-empty strings (token arrays are not accepted).", "input"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid("'encoding_format' must be float or base64.", "encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise invalid("'dimensions' must be a positive integer.", "dimensions")
    return EmbeddingInput(model, texts, encoding == "base64", dimensions)


@dataclass(frozen=True, slots=True)
class RerankInput:
    model: str
    query: str
    documents: list[str]
    top_n: int | None
    return_documents: bool


def rerank_input(body: dict[str, Any]) -> RerankInput:
    model = _model(body)
    query = body.get("query")
    if not isinstance(query, str) or not query:
        raise invalid("'query' must be a non-empty string.", "query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise invalid("'documents' must be a non-empty array.", "documents")
    texts = []
    for document in documents:
        if isinstance(document, dict):
            document = document.get("text")
        if not isinstance(document, str):
            raise invalid("Each document must be a string or an object with a text.", "documents")
        texts.append(document)
    top_n = body.get("top_n")
    if top_n is not None and (not _is_int(top_n) or top_n < 1):
        raise invalid("'top_n' must be a positive integer.", "top_n")
    return RerankInput(model, query, texts, top_n, body.get("return_documents") is True)


# --- audio ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptionInput:
    model: str
    audio: bytes
    filename: str
    language: str | None
    text_format: bool


@dataclass
class _Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


def _form(content_type: str, body: bytes) -> _Form:
    if not content_type.startswith("multipart/form-data"):
        raise invalid("Transcriptions take multipart/form-data (file, model).")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    form = _Form()
    if not message.is_multipart():
        raise invalid("The multipart body could not be read.")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form.files[name] = (filename, payload)
        else:
            form.fields[name] = payload.decode("utf-8", "replace")
    return form


def transcription_input(content_type: str, body: bytes) -> TranscriptionInput:
    form = _form(content_type, body)
    upload = form.files.get("file")
    if upload is None or not upload[1]:
        raise invalid("Missing required parameter: 'file'.", "file")
    model = _model(form.fields)
    response_format = form.fields.get("response_format") or "json"
    if response_format not in ("json", "text"):
        raise invalid("'response_format' must be json or text.", "response_format")
    language = form.fields.get("language") or None
    return TranscriptionInput(
        model, upload[1], upload[0] or "audio.wav", language, response_format == "text"
    )


@dataclass(frozen=True, slots=True)
class SpeechInput:
    model: str
    text: str
    voice: str | None
    response_format: str | None


def speech_input(body: dict[str, Any]) -> SpeechInput:
    model = _model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise invalid("'input' must be a non-empty string.", "input")
    if len(text) > 4096:
        raise invalid("'input' is longer than 4096 characters.", "input")
    voice = body.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise invalid("'voice' must be a string.", "voice")
    response_format = body.get("response_format")
    if response_format is not None and response_format not in AUDIO_FORMATS:
        raise invalid(
            f"'response_format' must be one of {', '.join(sorted(AUDIO_FORMATS))}.",
            "response_format",
        )
    return SpeechInput(model, text, voice or None, response_format)
