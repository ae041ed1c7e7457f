"""Speech to text and text to speech.

A speech-to-text family describes `transcription_request(audio, filename=..., language=...)`
and `parse_transcription(data)`; a TTS family `speech_request(text, voice=...)`, whose answer
is the audio itself, streamed: `tts()` returns an AudioStream of its bytes, `atts()` an
AsyncAudioStream read on the event loop. TTS providers report no usage, so the input text is
counted (estimated). The `response_format` option (mp3, wav, opus...) picks the audio format
where the family lets the caller choose.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from ..base import BaseAdapter
from ..http import Request
from ..results import TranscriptionResult, Usage
from ..runner import Flow, aiter_body, arun, iter_body, run
from ..streams import AsyncAudioStream, AudioState, AudioStream
from ..types import ModelType


class Speech2TextModel(BaseAdapter):
    model_type = ModelType.SPEECH2TEXT

    def transcription(
        self, audio: bytes, *, filename: str = "audio.wav", language: str | None = None
    ) -> TranscriptionResult:
        return run(self.transcription_flow(audio, filename=filename, language=language))

    async def atranscription(
        self, audio: bytes, *, filename: str = "audio.wav", language: str | None = None
    ) -> TranscriptionResult:
        return await arun(self.transcription_flow(audio, filename=filename, language=language))

    def transcription_request(
        self, audio: bytes, *, filename: str, language: str | None
    ) -> Request:
        raise NotImplementedError

    def parse_transcription(self, data: Any) -> TranscriptionResult:
        raise NotImplementedError

    def transcription_flow(
        self, audio: bytes, *, filename: str, language: str | None
    ) -> Flow[TranscriptionResult]:
        request = self.transcription_request(audio, filename=filename, language=language)
        response = yield from self.fetch(request)
        return self.parse_transcription(self.json_of(response))


class AudioChunks:
    """The bytes of an audio body as they come (a providers.runner Decoder)."""

    stopped = False

    def feed(self, chunk: bytes) -> tuple[bytes, ...]:
        return (chunk,)

    def end(self) -> Iterator[bytes]:
        return iter(())


class TTSModel(BaseAdapter):
    model_type = ModelType.TTS

    def tts(self, text: str, *, voice: str | None = None) -> AudioStream:
        response = run(self.speech_flow(text, voice=voice))
        state = self.audio_state(text, response)
        return AudioStream(iter_body(response, AudioChunks()), state, release=response.close)

    async def atts(self, text: str, *, voice: str | None = None) -> AsyncAudioStream:
        """The audio read on this event loop as it arrives; `aclose()` hangs up at once."""
        response = await arun(self.speech_flow(text, voice=voice))
        state = self.audio_state(text, response)
        return AsyncAudioStream(aiter_body(response, AudioChunks()), state, release=response.aclose)

    def audio_state(self, text: str, response: httpx.Response) -> AudioState:
        usage = Usage(prompt_tokens=self.count_tokens(text), estimated=True)
        return AudioState(self.context, usage, response.headers.get("content-type"))

    def speech_request(self, text: str, *, voice: str | None) -> Request:
        raise NotImplementedError

    def speech_flow(self, text: str, *, voice: str | None) -> Flow[httpx.Response]:
        return self.open(self.speech_request(text, voice=voice))
