"""Mistral OCR on the fake provider: POST /mistral/v1/ocr.

Checks the Bearer key, the model and the document (a base64 data URL of the declared type) the
way Mistral does, and answers with one page of markdown per form feed (\\f) in the decoded
document. Errors use Mistral's shapes: {"message", "request_id"} for 401 and 429, and
{"object": "error", "message", "type", "param", "code"} for request errors. Behaviour is chosen
by the model name (MODELS).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

API_KEY = "fake-mistral-key-0001"


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/mistral/v1/ocr", handle)


def request_error(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None
) -> Reply:
    body = {"object": "error", "message": message, "type": type_, "param": None, "code": code}
    return Reply.json(body, status=status)


MODELS = {
    "fake-429": lambda: Reply.json(
        {"message": "Requests rate limit exceeded", "request_id": "fake"},
        status=429,
        headers={"Retry-After": "2"},
    ),
    "fake-500": lambda: Reply.json({"message": "Internal server error"}, status=500),
    "missing-model": lambda: request_error(
        400, "Invalid model: missing-model", type_="invalid_model", code="1500"
    ),
    "fake-malformed": lambda: Reply.raw(b'{"pages": [{"index": 0, "mark'),
}


def decode(url: Any, prefix: str) -> bytes | None:
    if not isinstance(url, str) or not url.startswith(prefix):
        return None
    header, _, data = url.partition(",")
    if not header.endswith(";base64"):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return None


def handle(request: RecordedRequest) -> Reply:
    if request.bearer != API_KEY:
        return Reply.json({"message": "Unauthorized", "request_id": "fake"}, status=401)
    body = request.json
    if not isinstance(body, dict) or not body.get("model"):
        return request_error(422, "model: Field required")
    if body["model"] in MODELS:
        return MODELS[body["model"]]()
    document = body.get("document") or {}
    if document.get("type") == "document_url":
        content = decode(document.get("document_url"), "data:application/")
    elif document.get("type") == "image_url":
        content = decode(document.get("image_url"), "data:image/")
    else:
        return request_error(422, "document: Input should be a DocumentURLChunk or ImageURLChunk")
    if content is None:
        return request_error(400, "Invalid document URL: expected a base64 data URL")
    texts = content.decode("utf-8", errors="replace").split("\f")
    pages = [
        {
            "index": index,
            "markdown": f"# Page {index + 1}\n\n{text.strip()}",
            "images": [],
            "dimensions": {"dpi": 200, "height": 2200, "width": 1700},
        }
        for index, text in enumerate(texts)
    ]
    reply = {
        "pages": list(reversed(pages)),  # clients must order pages by index
        "model": "mistral-ocr-2505",
        "document_annotation": None,
        "usage_info": {"pages_processed": len(pages), "doc_size_bytes": len(content)},
    }
    return Reply.json(reply)
