"""Fish Audio text to speech on the fake provider: POST /fishaudio/v1/tts.

Checks what Fish Audio checks (Bearer key, a JSON body with `text`, a known reference_id;
like Fish Audio it serves its default model when the `model` header names none it knows; the
real service also takes msgpack bodies) and answers with chunked audio bytes in the asked
format. Errors are Fish Audio's {"status", "message"}; 422 validation errors are {"detail": [...]}.
Behaviour is chosen by the `model` header (MODELS).
"""

from __future__ import annotations

from .server import FakeProviderServer, RecordedRequest, Reply

API_KEY = "fake-fish-audio-key-0001"
VOICE = "802e3bc2b27e49c2995d23ef70e6ac89"
OTHER_VOICE = "7f92f8afb8ec43bf81429cc1c9199cb1"
AUDIO_CHUNKS = [b"ID3\x04fish-" + bytes([i]) * 2048 for i in range(4)]
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm", "opus": "audio/ogg"}


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/fishaudio/v1/tts", handle)


def error(status: int, message: str, **headers: str) -> Reply:
    return Reply.json({"status": status, "message": message}, status=status, headers=headers)


MODELS = {
    "fake-429": lambda: error(429, "Too many requests", **{"Retry-After": "2"}),
    "fake-500": lambda: error(500, "Internal server error"),
    "fake-credit": lambda: error(402, "Insufficient API credit"),
}


def handle(request: RecordedRequest) -> Reply:
    if request.bearer != API_KEY:
        return error(401, "Invalid token")
    model = request.headers.get("model")
    if model in MODELS:
        return MODELS[model]()
    body = request.json
    if not request.headers.get("content-type", "").startswith("application/json") or not isinstance(
        body, dict
    ):
        return error(400, "The body must be JSON or msgpack.")
    text = body.get("text")
    if not isinstance(text, str) or not text:
        return Reply.json(
            {"detail": [{"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]},
            status=422,
        )
    if body.get("reference_id") not in (None, VOICE, OTHER_VOICE):
        return error(404, "Reference not found")
    audio_format = body.get("format", "mp3")
    if audio_format not in CONTENT_TYPES:
        return Reply.json(
            {"detail": [{"loc": ["body", "format"], "msg": "Invalid format", "type": "enum"}]},
            status=422,
        )
    reply = Reply.stream(AUDIO_CHUNKS, CONTENT_TYPES[audio_format])
    if model == "fake-drop":
        reply.drop_after = 2
    if model == "fake-slow":
        reply.delay = 2.0
    return reply
