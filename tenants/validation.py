"""Live test calls that prove a credential works, one per model type, and their verdicts.

Each call is the smallest real request of its type (RAGFlow's probes: an embedding of one
sentence, a "Hi" chat, a one-document rerank; for the other types a tiny image, a short silent
WAV, a one-word speech). A failure is explained by its cause: the key, the network, the model,
the provider or the request.

A verdict holds only our classified message, with a short excerpt of the provider's own error
text scrubbed of every piece of the key (providers.scrub): never what some other server sent.
An address the network policy refuses, a closed port and a server that is not a model server
all read "could not reach a model server at this address" (providers.errors.UNREACHABLE).
"""

from __future__ import annotations

import base64
import io
import logging
import traceback
import wave
from dataclasses import asdict, dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from providers.api_keys import Credentials
from providers.errors import UNREACHABLE, ErrorCode, MaxRetriesExceededError, ProviderError
from providers.netguard import BlockedAddressError
from providers.registry import build_adapter
from providers.scrub import scrub
from providers.types import ModelType
from ragllm.errors import ApplicationError, InvalidInput, UpstreamError, UpstreamRateLimited

logger = logging.getLogger(__name__)

# A 1x1 white PNG.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


def _silent_wav(seconds: float = 0.2, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


TINY_WAV = _silent_wav()

CAUSES = {
    ErrorCode.AUTH_ERROR: ("key", "the provider rejected the credentials"),
    ErrorCode.QUOTA_EXCEEDED: ("key", "the account behind the key has no quota or credit left"),
    ErrorCode.CONNECTION_ERROR: ("network", UNREACHABLE),
    ErrorCode.TIMEOUT: ("network", "the provider did not answer in time"),
    ErrorCode.MODEL_ERROR: ("model", "the model is not available"),
    ErrorCode.RATE_LIMIT_EXCEEDED: ("provider", "the provider is rate-limiting this key"),
    ErrorCode.SERVER_ERROR: ("provider", "the provider failed"),
    ErrorCode.CONTENT_FILTERED: ("provider", "the provider filtered the test request"),
    ErrorCode.INVALID_REQUEST: ("request", "the provider refused the request"),
    ErrorCode.GENERIC_ERROR: ("provider", "the call failed"),
}


@dataclass
class Attempt:
    model: str
    model_type: str
    ok: bool
    cause: str = ""  # key | network | model | provider | request | config
    error_code: str = ""
    message: str = ""
    detail: str = ""  # the message without its "Fail to access ..." label: why it failed

    def as_dict(self) -> dict:
        return asdict(self)


def _probe(adapter, model_type: str) -> bool:
    if model_type == ModelType.EMBEDDING:
        result = adapter.encode(["Test if the api key is available"])
        return bool(result.vectors) and len(result.vectors[0]) > 0
    if model_type == ModelType.CHAT:
        result = adapter.chat([{"role": "user", "content": "Hi"}], gen_conf={"max_tokens": 16})
        return bool(result.text.strip()) or bool(result.tool_calls)
    if model_type == ModelType.RERANK:
        result = adapter.similarity("What's the weather?", ["Is it sunny today?"])
        return len(result.scores) > 0
    if model_type == ModelType.IMAGE2TEXT:
        result = adapter.describe_with_prompt(TINY_PNG, "What is in this picture?")
        return bool(result.text.strip())
    if model_type == ModelType.SPEECH2TEXT:
        adapter.transcription(TINY_WAV, filename="probe.wav")
        return True  # silence may transcribe to nothing; an answer at all proves the key
    if model_type == ModelType.TTS:
        stream = adapter.tts("Hello")
        try:
            return any(chunk for chunk in stream)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    if model_type == ModelType.OCR:
        result = adapter.ocr(TINY_PNG, mime_type="image/png")
        return result is not None
    raise ValueError(f"no probe for model type {model_type!r}")


def probe_model(
    *, model_type: str, factory: str, llm_name: str, api_key: str, api_base: str
) -> Attempt:
    """Make one live test call; never raises for provider trouble, returns the verdict."""
    label = f"Fail to access {model_type} model({llm_name}) using this api key"

    def failed(cause: str, code: str, why: str) -> Attempt:
        return Attempt(
            llm_name,
            model_type,
            ok=False,
            cause=cause,
            error_code=code,
            message=f"{label}: {why}",
            detail=why,
        )

    try:
        adapter = build_adapter(
            model_type=model_type,
            factory=factory,
            model_name=llm_name,
            api_key=api_key,
            base_url=api_base or None,
        )
        if _probe(adapter, model_type):
            return Attempt(llm_name, model_type, ok=True)
        return failed(
            "provider", ErrorCode.GENERIC_ERROR, "the provider answered with an empty result."
        )
    except SoftTimeLimitExceeded:
        raise  # the task's time is up: the task ends the validation, not as a provider fault
    except BlockedAddressError:
        return failed("network", ErrorCode.CONNECTION_ERROR, f"{UNREACHABLE} (network problem).")
    except ProviderError as exc:
        cause, code, why = explain(exc)
        return failed(cause, code, why)
    except Exception as exc:
        # An adapter bug must not take the validation down, nor leak details: log it, scrubbed
        # of the key (the traceback stays server-side).
        trace = "".join(traceback.format_exception(exc))
        logger.error(
            "probe of %s %s@%s crashed: %s",
            model_type,
            llm_name,
            factory,
            scrub(trace, Credentials.parse(api_key).secrets()),
        )
        why = "the provider's answer could not be understood."
        return failed("provider", ErrorCode.GENERIC_ERROR, why)


def explain(exc: ProviderError) -> tuple[str, str, str]:
    """(cause, error code, explanation) of a failed call: the classified message, then a short
    scrubbed excerpt of the provider's error text when it sent one."""
    # After retries, the cause is the last error's (a refused connection stays a network
    # problem however many times it was tried).
    retried = isinstance(exc, MaxRetriesExceededError)
    error = exc.last_error if retried else exc
    code = error.code
    cause, explanation = CAUSES.get(code, ("provider", "the call failed"))
    if code == ErrorCode.CONNECTION_ERROR:
        # Our own words (unreachable, an unresolved name, a broken answer), never a reason
        # or a retry count: a closed port and a refused address must read alike.
        return cause, str(code), f"{error.detail} ({cause} problem)."
    tries = f"; tried {exc.retries + 1} times" if retried else ""
    why = f"{explanation} ({cause} problem{tries})."
    status = f" (HTTP {error.status})" if error.status else ""
    if error.provider_message:
        why += f' The provider said{status}: "{error.provider_message}"'
    elif status:
        why += f" HTTP {error.status}."
    return cause, str(code), why


def validation_failure(*, message: str, attempts: list[dict], data: Any = None) -> ApplicationError:
    """The error of a failed validation, by the causes of its attempts.

    The caller's problem (key, model, request, config) is invalid input; a provider that only
    rate-limited is that; anything else is the provider failing.
    """
    causes = {a.get("cause") for a in attempts if not a.get("ok")}
    codes = {a.get("error_code") for a in attempts if not a.get("ok")}
    if causes & {"key", "model", "request", "config"} or not causes:
        return InvalidInput(message, data=data)
    if codes == {ErrorCode.RATE_LIMIT_EXCEEDED}:
        return UpstreamRateLimited(message, data=data)
    return UpstreamError(message, data=data)
