"""Fish Audio text to speech.

- POST {base}/v1/tts with `Authorization: Bearer <key>`, the TTS model in a `model` header
  (s1, s2-pro, ...; Fish Audio picks its default when it is absent) and a JSON body
  {"text", "reference_id", "format": "mp3"} -> the audio bytes, streamed (chunked), with no
  JSON around them. Errors are JSON {"status", "message"}; 402 means the API credit ran out, 404
  an unknown reference_id (the voice), 422 a validation error {"detail": [...]}.
- Credentials (RAGFlow's JSON): {fish_audio_ak, fish_audio_refid}: the key and the voice model
  to speak with (a `voice` given to tts() replaces it).
- Fish Audio reports no usage: the input text is counted, estimated.
"""

from __future__ import annotations

import httpx

from ..errors import ModelError, ProviderError
from ..http import Request
from ..kinds.audio import TTSModel
from ..runner import Flow

AUDIO_FORMAT = "mp3"


class FishAudioTTS(TTSModel, factories=("Fish Audio",)):
    default_base_url = "https://api.fish.audio"
    required_fields = ("fish_audio_ak", "fish_audio_refid")

    @property
    def reference_id(self) -> str:
        """The voice to speak with, unless tts() is given another."""
        return self.credentials.get("fish_audio_refid")

    def resolve_base_url(self, given: str | None) -> str:
        # RAGFlow's default was the endpoint itself (https://api.fish.audio/v1/tts).
        url = super().resolve_base_url(given)
        for suffix in ("/v1/tts", "/v1"):
            url = url.removesuffix(suffix)
        return url

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.credentials.get('fish_audio_ak')}"}
        model = self.wire_model_name.strip()
        if model:
            headers["model"] = model
        return headers

    def speech_request(self, text: str, *, voice: str | None) -> Request:
        body = {"text": text, "reference_id": voice or self.reference_id, "format": AUDIO_FORMAT}
        return self.post("v1/tts", json=body)

    def speech_flow(self, text: str, *, voice: str | None) -> Flow[httpx.Response]:
        try:
            return (yield from super().speech_flow(text, voice=voice))
        except ProviderError as error:
            if error.status != 404:
                raise
            # The voice (reference_id) does not exist.
            raise self.context.error(
                ModelError,
                f"unknown voice {voice or self.reference_id!r}: {error.detail}",
                status=404,
            ) from error
